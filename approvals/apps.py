from django.apps import AppConfig

# Run-event handlers, lowest first: after webhook deliveries (webhooks.apps, 10).
EVENT_ORDER = 20


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from runs.events import subscribe

        from .notify import on_run_event

        subscribe(on_run_event, order=EVENT_ORDER)  # a pause queues its email
