from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from approvals import views as approval_views
from approvals.api import ApprovalsView
from runs import api as runs_api
from runs import views as run_views
from skills import api as skills_api
from tenants import signin
from tenants import views as tenant_views
from vault.api import SecretDetailView, SecretsView
from webhooks import api as webhooks_api
from webhooks import views as webhook_views

handler404 = "twin_site.views.not_found"
handler500 = "twin_site.views.server_error"

urlpatterns = [
    # The dashboard
    path("", run_views.home, name="home"),
    path("login/", signin.SignInView.as_view(), name="login"),
    path("login/code/", signin.sign_in_code, name="login-code"),
    path("account/two-factor/", signin.two_factor_setup, name="two-factor-setup"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("tenant/switch", tenant_views.switch_tenant, name="tenant-switch"),
    path("inbox/", approval_views.inbox, name="inbox"),
    path("inbox/count", approval_views.pending_count, name="inbox-count"),
    path("inbox/<uuid:approval_id>/decide", approval_views.decide, name="decide"),
    path("decide/<str:token>", approval_views.decision_link, name="decision-link"),
    path("runs/", run_views.run_list, name="runs"),
    path("runs/new", run_views.run_start, name="run-start"),
    path("runs/<uuid:pk>/", run_views.run_detail, name="run"),
    path("runs/<uuid:pk>/cancel", run_views.run_cancel_view, name="run-cancel"),
    path("runs/<uuid:pk>/live", run_views.run_live, name="run-live"),
    path("runs/<uuid:pk>/video", run_views.run_video, name="run-video"),
    path("runs/<uuid:pk>/video/chapters.vtt", run_views.run_video_chapters, name="run-video-chapters"),
    path("runs/<uuid:pk>/video/poster.jpg", run_views.run_video_poster, name="run-video-poster"),
    path("", include("skills.urls")),
    path("webhooks/", webhook_views.endpoint_list, name="webhooks"),
    path("webhooks/<uuid:pk>/", webhook_views.endpoint_detail, name="webhook"),
    path("webhooks/<uuid:pk>/enabled", webhook_views.endpoint_enabled, name="webhook-enabled"),
    path("webhooks/<uuid:pk>/rotate-secret", webhook_views.endpoint_rotate, name="webhook-rotate"),
    path("webhooks/<uuid:pk>/delete", webhook_views.endpoint_delete_view, name="webhook-delete"),
    path(
        "webhooks/<uuid:pk>/deliveries/<uuid:delivery_id>/redeliver",
        webhook_views.delivery_redeliver_view,
        name="webhook-redeliver",
    ),
    path("admin/", admin.site.urls),
    # The API
    path("api/runs", runs_api.runs_endpoint, name="api-runs"),
    path("api/runs/<uuid:pk>", runs_api.run_detail_endpoint, name="api-run"),
    path("api/runs/<uuid:pk>/events", runs_api.RunEventsView.as_view(), name="api-run-events"),
    path("api/runs/<uuid:pk>/approve", runs_api.ApproveView.as_view(), name="api-run-approve"),
    path("api/runs/<uuid:pk>/reject", runs_api.RejectView.as_view(), name="api-run-reject"),
    path("api/runs/<uuid:pk>/cancel", runs_api.CancelView.as_view(), name="api-run-cancel"),
    path("api/runs/<uuid:pk>/video", runs_api.RunVideoView.as_view(), name="api-run-video"),
    path(
        "api/runs/<uuid:pk>/video/poster", runs_api.RunVideoPosterView.as_view(), name="api-run-video-poster"
    ),
    path("api/runs/<uuid:pk>/compile", skills_api.CompileView.as_view(), name="api-run-compile"),
    path("api/skills", skills_api.SkillsView.as_view(), name="api-skills"),
    path("api/skills/<str:key>", skills_api.SkillDetailView.as_view(), name="api-skill"),
    path("api/skills/<str:key>/versions", skills_api.VersionsView.as_view(), name="api-skill-versions"),
    path(
        "api/skills/<str:key>/versions/<int:number>",
        skills_api.VersionDetailView.as_view(),
        name="api-skill-version",
    ),
    path("api/screenshots/<uuid:approval_id>", runs_api.ScreenshotView.as_view(), name="api-screenshot"),
    path("api/approvals", ApprovalsView.as_view(), name="api-approvals"),
    path("api/secrets", SecretsView.as_view(), name="api-secrets"),
    path("api/secrets/<str:name>", SecretDetailView.as_view(), name="api-secret"),
    path("api/webhooks", webhooks_api.WebhooksView.as_view(), name="api-webhooks"),
    path("api/webhooks/<uuid:pk>", webhooks_api.WebhookDetailView.as_view(), name="api-webhook"),
    path(
        "api/webhooks/<uuid:pk>/rotate-secret",
        webhooks_api.WebhookRotateView.as_view(),
        name="api-webhook-rotate",
    ),
    path(
        "api/webhooks/<uuid:pk>/deliveries",
        webhooks_api.DeliveriesView.as_view(),
        name="api-webhook-deliveries",
    ),
    path(
        "api/webhooks/<uuid:pk>/deliveries/<uuid:delivery_id>/redeliver",
        webhooks_api.RedeliverView.as_view(),
        name="api-webhook-redeliver",
    ),
    path("api/schema", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI: its start-up script is served as a file (the split view), not inline; the
    # UI sets style attributes as it renders, so this page alone allows inline styles.
    path(
        "api/docs",
        csp_update({"style-src": [UNSAFE_INLINE]})(
            SpectacularSwaggerSplitView.as_view(url_name="api-schema")
        ),
        name="api-docs",
    ),
]
