from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="webhooks.tasks.deliver_webhook_task", ignore_result=True)
def deliver_webhook_task(delivery_id: str) -> str:
    return services.delivery_attempt(delivery_id)


@shared_task(name="webhooks.tasks.dispatch_webhooks_task", ignore_result=True)
def dispatch_webhooks_task() -> int:
    return services.dispatch_due()
