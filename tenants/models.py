from __future__ import annotations

import hashlib
import secrets
from decimal import Decimal

from django.conf import settings
from django.db import models


class FourEyes(models.TextChoices):
    # On whenever the tenant has someone else to decide: a tenant with one approver (the demo)
    # keeps working, and adding a second approver turns it on without anyone remembering to.
    AUTO = "auto", "Automatic: on with two or more approvers"
    ON = "on", "On"
    OFF = "off", "Off"


CONSEQUENTIAL_WORDS = ("pay", "buy", "purchase", "order", "confirm", "transfer", "send", "delete", "remove")


def default_consequential_patterns() -> list[str]:
    return [rf"\b{word}\b" for word in CONSEQUENTIAL_WORDS]


class Tenant(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    four_eyes = models.CharField(
        max_length=8,
        choices=FourEyes.choices,
        default=FourEyes.AUTO,
        help_text="Four eyes: an approver may not decide a pause of a run they started themselves. "
        "Automatic turns it on as soon as the tenant has at least two approvers.",
    )
    approval_emails = models.TextField(
        blank=True,
        help_text="Addresses (one per line) that get an email with decision links when a run pauses.",
    )
    # The approval rule of a pause whose gate says nothing (approvals.rules; docs/api.md "Approval rules").
    default_approvers = models.JSONField(
        default=list,
        blank=True,
        help_text='Who may decide pauses: a list of usernames (["alice", "bob"]), or "role:approver" '
        "(every approver of the tenant). Empty: every approver.",
    )
    default_required = models.PositiveSmallIntegerField(
        default=1, help_text="Approvals an approval pause needs before the run resumes."
    )
    default_escalate_after = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Seconds after a pause with no decision to notify the escalation group (empty: never).",
    )
    default_escalate_to = models.JSONField(
        default=list,
        blank=True,
        help_text='Whom to notify then: usernames, or "role:approver". Empty: every approver.',
    )
    require_two_factor = models.BooleanField(
        default=False,
        help_text=(
            "Members must sign in with a one-time code from an authenticator app; "
            "those without one enroll before they can do anything else."
        ),
    )
    # What a run costs (runs.cost): browser time and model tokens at these prices.
    currency = models.CharField(max_length=3, default="USD")
    price_browser_minute = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        default=Decimal("0.002"),
        help_text="Price of one minute of browser time.",
    )
    price_per_1k_tokens = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        default=Decimal("0.002"),
        help_text="Price of 1,000 model tokens (prompt and completion alike).",
    )
    # The agent (engine.planner): its own model endpoint (else TWIN_LLM_*), and its policy.
    llm_base_url = models.CharField(
        max_length=500,
        blank=True,
        help_text="The tenant's own OpenAI-compatible API root (e.g. http://127.0.0.1:11434/v1); "
        "empty: the server's TWIN_LLM_BASE_URL.",
    )
    llm_model = models.CharField(max_length=200, blank=True, help_text="The model name at that endpoint.")
    llm_key_secret = models.CharField(
        max_length=100,
        blank=True,
        help_text="The name of the vault secret that holds the endpoint's API key (empty: none).",
    )
    agent_vision = models.BooleanField(
        default=False, help_text="Send the model a screenshot of the page with each snapshot."
    )
    agent_auto_compile = models.BooleanField(
        default=True,
        help_text="A planned run that completes compiles into a skill by itself, so the same goal "
        "next time replays it with no model call.",
    )
    agent_repair_with_model = models.BooleanField(
        default=False,
        help_text="When a replayed skill no longer finds its element, hand that one step back to the "
        "model (if one is configured) instead of pausing for a person.",
    )
    agent_consequential_patterns = models.JSONField(
        default=default_consequential_patterns,
        blank=True,
        help_text="Regular expressions (RE2, case-insensitive): a planned click or press on an element "
        "whose accessible name matches one pauses for approval before it acts.",
    )
    agent_approval_origins = models.JSONField(
        default=list,
        blank=True,
        help_text="Origins (https://shop.example) on which every planned action needs approval.",
    )
    agent_max_steps = models.PositiveIntegerField(default=40, help_text="Planned steps per round.")
    agent_max_model_calls = models.PositiveIntegerField(default=120, help_text="Model calls per round.")
    agent_max_tokens = models.PositiveIntegerField(default=1_000_000, help_text="Model tokens per round.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        """The agent's settings are checked where they are edited: a pattern Twin cannot run, or an
        origin that is not one, is refused with its reason rather than silently matching nothing."""
        from django.core.exceptions import ValidationError

        from runs.program import PatternInvalid, compile_pattern
        from vault.services import SecretError, normalize_origin

        errors: dict[str, list[str]] = {}
        patterns = self.agent_consequential_patterns
        if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
            errors["agent_consequential_patterns"] = ["a list of regular expressions (strings)"]
        elif len(patterns) > 100:
            errors["agent_consequential_patterns"] = ["at most 100 patterns"]
        else:
            for pattern in patterns:
                try:
                    compile_pattern(f"(?i){pattern}")
                except PatternInvalid as exc:
                    errors.setdefault("agent_consequential_patterns", []).append(f"{pattern!r} {exc}")
        origins = self.agent_approval_origins
        if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
            errors["agent_approval_origins"] = ["a list of origins such as https://shop.example"]
        else:
            normalized = []
            for origin in origins:
                try:
                    normalized.append(normalize_origin(origin))
                except SecretError as exc:
                    errors.setdefault("agent_approval_origins", []).append(f"{origin!r}: {exc}")
            self.agent_approval_origins = normalized
        from approvals.rules import tenant_rule_problems

        # An emptied JSON box in admin is None: the rule's "every approver" is the empty list.
        self.default_approvers = self.default_approvers or []
        self.default_escalate_to = self.default_escalate_to or []
        for field, message in tenant_rule_problems(self):
            errors.setdefault(field, []).append(message)
        if self.llm_base_url and not self.llm_base_url.startswith(("http://", "https://")):
            errors["llm_base_url"] = ["an http(s) URL, the API root (e.g. https://api.openai.com/v1)"]
        if self.llm_base_url and not self.llm_model:
            errors["llm_model"] = ["the model to ask at that endpoint"]
        if errors:
            raise ValidationError(errors)

    def approver_count(self) -> int:
        return self.memberships.filter(role=Role.APPROVER, user__is_active=True).count()

    def four_eyes_applies(self) -> bool:
        """Whether, right now, whoever started a run is refused a decision on it."""
        if self.four_eyes == FourEyes.AUTO:
            return self.approver_count() >= 2
        return self.four_eyes == FourEyes.ON

    def approval_email_list(self) -> list[str]:
        return [a.strip() for a in self.approval_emails.replace(",", "\n").splitlines() if a.strip()]


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    APPROVER = "approver", "Approver"
    # Sees what a viewer sees in the dashboard, and the tenant's audit trail in Django admin.
    AUDITOR = "auditor", "Auditor"


# Each role can do everything the roles before it can; an auditor acts like a viewer.
ROLE_RANK = {Role.VIEWER: 0, Role.AUDITOR: 0, Role.OPERATOR: 1, Role.APPROVER: 2}


class Membership(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="one_membership_per_tenant")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"

    def allows(self, role: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]


TOKEN_PREFIX = "twin_"


def hash_token(raw: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token; only its hash is stored, the token itself is shown once."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="tokens")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, default="api")
    prefix = models.CharField(max_length=16, help_text="The first characters, to tell tokens apart.")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, *, tenant: Tenant, user: object, name: str = "api") -> tuple[ApiToken, str]:
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            tenant=tenant, user=user, name=name, prefix=raw[: len(TOKEN_PREFIX) + 6], digest=hash_token(raw)
        )
        return token, raw


class IdempotentRequest(models.Model):
    """The first answer to a POST sent with an ``Idempotency-Key``, replayed to its retries."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the method, path and body.")
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True)
    twin_status = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="one_request_per_key")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"
