from django.apps import AppConfig

# Run-event handlers, lowest first: webhook deliveries, then notifications (approvals.apps).
EVENT_ORDER = 10


class WebhooksConfig(AppConfig):
    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from runs.events import subscribe

        from .services import on_run_event

        subscribe(on_run_event, order=EVENT_ORDER)  # queues the messages an event owes
