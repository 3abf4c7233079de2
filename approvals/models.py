from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.functional import cached_property

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


class DecisionWord(models.TextChoices):
    """What was decided, in the words of the pause (a blocked step's "fail" is not an approval)."""

    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    ANSWERED = "answered", "Approved with an input"
    CHOSEN = "chosen", "Chose an option"
    RETRY = "retry", "Retry the step"
    SKIP = "skip", "Skip the step"
    FAIL = "fail", "Fail the run"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


BLOCKED_WORDS = {"retry": DecisionWord.RETRY, "skip": DecisionWord.SKIP, "fail": DecisionWord.FAIL}


def decision_word(*, trigger: str, kind: str, approve: bool, choice: str = "") -> str:
    """The word stored for a decision: a blocked pause's option is the decision itself."""
    if not approve:
        return DecisionWord.REJECTED
    if trigger == "blocked" and choice in BLOCKED_WORDS:
        return BLOCKED_WORDS[choice]
    if kind == "input":
        return DecisionWord.ANSWERED
    if kind == "choice":
        return DecisionWord.CHOSEN
    return DecisionWord.APPROVED


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
    # What was decided, in the pause's own words (status says only approved/rejected/...).
    decision = models.CharField(max_length=16, choices=DecisionWord.choices, blank=True)

    # The rule (approvals.rules), fixed at the pause from the step's gate or the tenant's defaults.
    # approvers / escalate_to: usernames, or null for every approver of the tenant.
    approvers = models.JSONField(null=True, blank=True)
    required = models.PositiveSmallIntegerField(default=1, help_text="Approvals needed to resume.")
    approvals_given = models.PositiveSmallIntegerField(default=0)
    escalate_at = models.DateTimeField(null=True, blank=True)
    escalate_to = models.JSONField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
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
            models.Index(
                fields=["escalate_at"],
                name="approval_escalation_due",
                condition=models.Q(status="pending", escalated_at__isnull=True, escalate_at__isnull=False),
            ),
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

    @cached_property
    def voter_names(self) -> list[str]:
        """Who has approved so far (a pause that needs several approvals), in order."""
        if not self.approvals_given:
            return []
        return [vote.user.get_username() for vote in self.votes.select_related("user").order_by("at", "pk")]

    @property
    def approvals_missing(self) -> int:
        return max(self.required - self.approvals_given, 0)

    def decision_sentence(self) -> str:
        """The decision as a person would say it after "You decided:" ("fail the run at step 2
        of “Pay”."), never "approved (fail)"."""
        goal = self.run.goal or "(no goal)"
        goal = goal if len(goal) <= 60 else goal[:59] + "…"
        step = f"step {self.step_index} of “{goal}”"
        word = self.decision or self.status
        sentences: dict[str, str] = {
            DecisionWord.APPROVED: f"approved {step}.",
            DecisionWord.REJECTED: f"rejected {step}.",
            DecisionWord.ANSWERED: f"approved {step} with an input.",
            DecisionWord.CHOSEN: f"chose “{self.choice}” at {step}.",
            DecisionWord.RETRY: f"retry {step}.",
            DecisionWord.SKIP: f"skip {step}.",
            DecisionWord.FAIL: f"fail the run at {step}.",
            DecisionWord.EXPIRED: f"nobody decided {step} in time: it expired.",
            DecisionWord.CANCELLED: f"the run was cancelled at {step}.",
        }
        return sentences.get(word, f"{word} {step}.")

    def decision_label(self) -> str:
        """The decision as a short heading ("Fail the run", "Chose “Savings”", "Approved")."""
        if self.decision == DecisionWord.CHOSEN:
            return f"Chose “{self.choice}”"
        if self.decision:
            return str(self.get_decision_display())
        return str(self.get_status_display()).capitalize()


class ApprovalVote(models.Model):
    """One person's approval of a pause: a pause that needs N has N of these when it resumes."""

    approval = models.ForeignKey(Approval, on_delete=models.CASCADE, related_name="votes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(default=timezone.now)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    token_name = models.CharField(max_length=100, blank=True)
    note = models.TextField(blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["at", "pk"]
        constraints = [
            # Four eyes, extended: the same person cannot give two of the N approvals.
            models.UniqueConstraint(fields=["approval", "user"], name="one_vote_per_person"),
        ]

    def __str__(self) -> str:
        return f"{self.user} approved {self.approval_id}"
