"""Email the tenant's approver addresses when a run pauses, with its decision links."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string

from runs.events import record_event

from .links import link_url
from .models import Approval, ApprovalStatus

log = logging.getLogger(__name__)


def on_run_event(run: Any, event: Any, data: dict[str, Any]) -> None:
    """Subscribed to every run event (runs.events.subscribe, in ApprovalsConfig.ready)."""
    notify_on_event(run, event.type, data)


def notify_on_event(run: Any, event_type: str, data: dict[str, Any]) -> None:
    """Called with every run event, in its transaction: a pause queues its email."""
    if event_type != "run.awaiting_approval" or not run.tenant.approval_emails.strip():
        return
    approval_id = data.get("approval_id") or (
        Approval.objects.filter(run_id=run.pk, status=ApprovalStatus.PENDING)
        .values_list("pk", flat=True)
        .first()
    )
    if not approval_id:
        return
    approval_id = str(approval_id)

    def send() -> None:
        from .tasks import pause_email_task

        try:
            pause_email_task.apply_async(args=(approval_id,), queue="webhooks")
        except Exception as exc:  # Redis is transport: the pause is in the inbox and the API anyway
            log.warning("could not queue the email for pause %s: %s", approval_id, exc)

    transaction.on_commit(send)


def escalation_people(approval: Approval) -> list[Any]:
    """The active approvers of the pause's tenant that its escalation group names (every approver
    for the role)."""
    from django.contrib.auth import get_user_model

    from tenants.models import Role

    users = get_user_model().objects.filter(
        is_active=True,
        memberships__tenant_id=approval.tenant_id,
        memberships__role=Role.APPROVER,
    )
    if approval.escalate_to is not None:
        users = users.filter(username__in=approval.escalate_to)
    return list(users.order_by("username"))


def escalation_email_send(approval_id: str) -> int:
    """Email the escalation group of a pause that still waits; how many addresses (0 if decided)."""
    approval = Approval.objects.select_related("run", "tenant").filter(pk=approval_id).first()
    if approval is None or approval.status != ApprovalStatus.PENDING:
        return 0
    recipients = sorted({user.email for user in escalation_people(approval) if user.email})
    if approval.escalate_to is None:  # every approver: the tenant's approval addresses too
        recipients = sorted(set(recipients) | set(approval.tenant.approval_email_list()))
    if not recipients:
        return 0
    waited = int(((approval.escalated_at or approval.created_at) - approval.created_at).total_seconds())
    subject = f"[Twin] Still waiting: step {approval.step_index} of {approval.step_count} of "
    extra = {"escalated": True, "waited": f"{waited // 60} min" if waited >= 120 else f"{waited} s"}
    return _send(approval, subject, recipients, extra, {"escalation": True})


def pause_email_send(approval_id: str) -> int:
    """Send the pause's email; how many addresses it went to (0 when decided meanwhile)."""
    approval = Approval.objects.select_related("run", "tenant").filter(pk=approval_id).first()
    if approval is None or approval.status != ApprovalStatus.PENDING:
        return 0
    recipients = approval.tenant.approval_email_list()
    if not recipients:
        return 0
    subject = f"[Twin] Step {approval.step_index} of {approval.step_count} needs a decision: "
    return _send(approval, subject, recipients, {}, {})


def _send(
    approval: Approval, subject: str, recipients: list[str], extra: dict[str, Any], data: dict[str, Any]
) -> int:
    """The pause's email (its decision links) to ``recipients``, and its ``approval.notified`` event."""
    context = {
        "approval": approval,
        "run": approval.run,
        "open_url": link_url(approval),
        "approve_url": link_url(approval, "approve"),
        "reject_url": link_url(approval, "reject"),
        **extra,
    }
    send_mail(
        (subject + (approval.run.goal[:60] or "a run")).replace("\n", " "),
        render_to_string("approvals/email.txt", context),
        settings.DEFAULT_FROM_EMAIL,
        recipients,
        html_message=render_to_string("approvals/email.html", context),
    )
    with transaction.atomic():
        # The run as it is now (the mail took a while: it may have been decided meanwhile); the
        # event's live message carries its status, and ``?wait=`` waiters believe it.
        approval.run.refresh_from_db(fields=["status"])
        record_event(
            approval.run,
            "approval.notified",
            step_index=approval.step_index,
            data={"approval_id": str(approval.pk), "channel": "email", "recipients": len(recipients), **data},
        )
    return len(recipients)
