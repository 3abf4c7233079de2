from __future__ import annotations

from celery import shared_task

from .services import expire_overdue


@shared_task
def expire_pauses_task() -> int:
    return expire_overdue()
