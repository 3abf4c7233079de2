from __future__ import annotations

from celery import shared_task

from .services import expire_overdue


@shared_task
def expire_pauses_task() -> int:
    return expire_overdue()


@shared_task(ignore_result=True)
def pause_email_task(approval_id: str) -> int:
    from .notify import pause_email_send

    return pause_email_send(approval_id)
