from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from approvals.api import ApprovalsView
from runs import api as runs_api
from vault.api import SecretDetailView, SecretsView

handler404 = "twin_site.views.not_found"
handler500 = "twin_site.views.server_error"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/runs", runs_api.runs_endpoint, name="api-runs"),
    path("api/runs/<uuid:pk>", runs_api.run_detail_endpoint, name="api-run"),
    path("api/runs/<uuid:pk>/approve", runs_api.ApproveView.as_view(), name="api-run-approve"),
    path("api/runs/<uuid:pk>/reject", runs_api.RejectView.as_view(), name="api-run-reject"),
    path("api/runs/<uuid:pk>/cancel", runs_api.CancelView.as_view(), name="api-run-cancel"),
    path("api/screenshots/<uuid:approval_id>", runs_api.ScreenshotView.as_view(), name="api-screenshot"),
    path("api/approvals", ApprovalsView.as_view(), name="api-approvals"),
    path("api/secrets", SecretsView.as_view(), name="api-secrets"),
    path("api/secrets/<str:name>", SecretDetailView.as_view(), name="api-secret"),
    path("api/schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
