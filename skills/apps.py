from django.apps import AppConfig


class SkillsConfig(AppConfig):
    name = "skills"
    verbose_name = "Skills"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from runs.events import subscribe

        from .learning import on_run_event

        subscribe(on_run_event, order=50)
