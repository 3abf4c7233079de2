"""The skills pages of the dashboard (the API's routes are in twin_site/urls.py)."""

from django.urls import path

from . import views

urlpatterns = [
    path("skills/", views.skill_list, name="skills"),
    path("skills/<slug:slug>/", views.skill_detail, name="skill"),
    path("skills/<slug:slug>/run", views.skill_run_view, name="skill-run"),
    path("skills/<slug:slug>/archive", views.skill_archive_view, name="skill-archive"),
    path("runs/<uuid:pk>/save-skill", views.run_save_skill, name="run-save-skill"),
]
