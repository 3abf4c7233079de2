from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models

from runs.models import Run
from tenants.models import Tenant


class Trigger(models.TextChoices):
    APPROVAL = "approval", "Approval"
    MFA = "mfa", "MFA"
    AMBIGUITY = "ambiguity", "Ambiguity"
    BLOCKED = "blocked", "Blocked"


class GateKind(models.TextChoices):
    APPROVAL = "approval"
    INPUT = "input"
    CHOICE = "choice"


class Cause(models.TextChoices):
    GATE = "gate", "The program's gate"
    AMBIGUITY = "ambiguity", "More than one element matched"
    BLOCKED = "blocked", "The step could not proceed"


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Channel(models.TextChoices):
    API = "api", "API"
    DASHBOARD = "dashboard", "Dashboard"
    TAKEOVER = "takeover", "Take over"
    LINK = "link", "Decision link"
    SYSTEM = "system", "System (expiry)"


class MfaLast(models.Func):
    """0 for a one-time code, 1 otherwise: the inbox's urgent order puts codes first among equal
    expiries (approvals.selectors), and an index holds the same expression. Literals, not query
    parameters: SQLite uses an expression index only for the very same expression."""

    template = "CASE WHEN %(expressions)s = 'mfa' THEN 0 ELSE 1 END"
    output_field = models.IntegerField()

    def __init__(self, trigger: Any = None, **extra: Any) -> None:
        super().__init__(trigger if trigger is not None else models.F("trigger"), **extra)


def mfa_last_expression() -> MfaLast:
    return MfaLast()


class Approval(models.Model):
    """One pause of a run: what was asked, what the human saw, and what they decided."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="approvals")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="approvals")
    step_index = models.PositiveIntegerField()
    step_count = models.PositiveIntegerField(default=0)
    action = models.CharField(max_length=32)
    cause = models.CharField(max_length=16, choices=Cause.choices, default=Cause.GATE)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    kind = models.CharField(max_length=16, choices=GateKind.choices)
    prompt = models.TextField(blank=True)
    options = models.JSONField(null=True, blank=True)
    # For ambiguity pauses: which element each option stands for ({"label", "nth"}).
    candidates = models.JSONField(null=True, blank=True)
    pattern = models.CharField(max_length=500, blank=True)

    # What the human saw.
    page_url = models.CharField(max_length=2048, blank=True)
    page_title = models.CharField(max_length=500, blank=True)
    screenshot = models.CharField(max_length=500, blank=True, help_text="Storage path of the screenshot.")
    screenshot_sha256 = models.CharField(max_length=64, blank=True)
    page_text = models.TextField(blank=True, help_text="The page's visible text (trimmed).")
    # Keyed digests of the page at the pause (URL, the step's element, the fields the run set on
    # this document; engine.restore): a restored page must match them before the step acts on it.
    page_state = models.JSONField(null=True, blank=True, editable=False)
    # Where the step's element (and, for an ambiguity, each candidate) was on the screenshot, in
    # CSS pixels of the viewport the screenshot shows: {"viewport": {"width", "height"},
    # "target": {"x", "y", "width", "height"} | null, "candidates": [box | null, ...]}.
    boxes = models.JSONField(null=True, blank=True, editable=False)

    status = models.CharField(max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    # The decision.
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    channel = models.CharField(max_length=16, choices=Channel.choices, blank=True)
    token_name = models.CharField(max_length=100, blank=True)
    decided_ip = models.GenericIPAddressField(null=True, blank=True)
    decided_user_agent = models.CharField(max_length=500, blank=True)
    choice = models.CharField(max_length=500, blank=True)
    note = models.TextField(blank=True)
    input_supplied = models.BooleanField(default=False)
    input_length = models.PositiveIntegerField(null=True, blank=True)
    input_matched_pattern = models.BooleanField(null=True, blank=True)
    # Wrong inputs since the last lock; past TWIN_INPUT_ATTEMPTS the pause is locked for a while.
    bad_inputs = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)
    # The supplied input, encrypted, until the step has used it; then erased.
    sealed_input = models.TextField(blank=True)
    consumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "status", "-created_at"], name="approval_tenant_status"),
            models.Index(fields=["status", "expires_at"], name="approval_expiry"),
            models.Index(fields=["run", "step_index"], name="approval_run_step"),
            # The inbox's orders (approvals.selectors.ORDERS) and its expired notices, pending rows only.
            models.Index(
                "tenant",
                "expires_at",
                mfa_last_expression(),
                "created_at",
                "id",
                name="approval_inbox_urgent",
                condition=models.Q(status="pending"),
            ),
            models.Index(
                fields=["tenant", "created_at", "id"],
                name="approval_inbox_age",
                condition=models.Q(status="pending"),
            ),
            models.Index(
                fields=["tenant", "decided_at"],
                name="approval_inbox_expired",
                condition=models.Q(status="expired"),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["run"], condition=models.Q(status="pending"), name="one_pending_approval_per_run"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.trigger} at step {self.step_index} ({self.status})"
