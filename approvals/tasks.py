from __future__ import annotations

from celery import shared_task

from .services import escalate_overdue, expire_overdue


@shared_task
def expire_pauses_task() -> int:
    """The periodic sweep (CELERY_BEAT_SCHEDULE "expire-pauses"): escalate what waited too long,
    then expire what is overdue; how many expired."""
    escalate_overdue()
    return expire_overdue()


@shared_task(ignore_result=True)
def pause_email_task(approval_id: str) -> int:
    from .notify import pause_email_send

    return pause_email_send(approval_id)


@shared_task(ignore_result=True)
def escalation_email_task(approval_id: str) -> int:
    from .notify import escalation_email_send

    return escalation_email_send(approval_id)
