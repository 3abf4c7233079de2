"""Approval rules: who may decide a pause, how many approvals it needs, whom to tell when it waits.

A step's gate may say ``approvers``, ``required``, ``escalate_after`` and ``escalate_to``; what it
leaves out comes from the tenant's defaults. The rule is fixed on the Approval row at the pause,
so changing a tenant's defaults never changes a pause that already waits.

A group of people is written either as a list of usernames (``["alice", "bob"]``) or as the string
``"role:approver"`` (every approver of the tenant, now). Stored on the pause, the role is ``null``.

This module stays free of model imports at load time: ``runs.program`` validates gates with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

ROLE_APPROVER = "role:approver"
ROLES = (ROLE_APPROVER,)
RULE_FIELDS = ("approvers", "required", "escalate_after", "escalate_to")
MAX_PEOPLE = 50
MAX_REQUIRED = 20
MAX_USERNAME = 150
MAX_ESCALATE_AFTER = 30 * 86400
DEFAULT_EXPIRES_IN = 86400  # a gate's expires_in when it says none (docs/api.md)


def _group_problem(value: Any) -> str | None:
    """Why ``value`` is not a group of people (None when it is one)."""
    if isinstance(value, str):
        if value in ROLES:
            return None
        return f"must be a list of usernames or {', '.join(repr(r) for r in ROLES)} (got {value[:40]!r})"
    if not isinstance(value, list) or not value:
        return f'must be a non-empty list of usernames, or "{ROLE_APPROVER}"'
    if len(value) > MAX_PEOPLE:
        return f"at most {MAX_PEOPLE} usernames"
    if not all(
        isinstance(name, str) and name.strip() == name and 0 < len(name) <= MAX_USERNAME for name in value
    ):
        return (
            f"usernames must be non-empty strings of at most {MAX_USERNAME} characters, without spaces around"
        )
    if len(set(value)) != len(value):
        return "names someone twice"
    return None


def people(value: Any) -> list[str] | None:
    """A valid group as stored on a pause: its usernames, or None for every approver."""
    if value is None or value == [] or isinstance(value, str):
        return None
    return list(value)


def gate_rule_problems(
    gate: dict[str, Any], *, approver_names: Iterable[str] | None = None, starter: str | None = None
) -> list[tuple[str, str]]:
    """(field, message) for each problem of a gate's rule; ``approver_names``, when known, are the
    usernames of the tenant's approvers (a named person must be one); ``starter``, the username
    of whoever starts the run when four eyes applies (they give none of the approvals)."""
    problems: list[tuple[str, str]] = []
    known = None if approver_names is None else set(approver_names)
    named: dict[str, list[str] | None] = {}
    for field in ("approvers", "escalate_to"):
        if field not in gate:
            continue
        if reason := _group_problem(gate[field]):
            problems.append((f"gate.{field}", reason))
            continue
        named[field] = people(gate[field])
        unknown = sorted(set(named[field] or []) - known) if known is not None else []
        if unknown:
            problems.append(
                (f"gate.{field}", f"not approvers of this tenant: {', '.join(repr(n) for n in unknown[:5])}")
            )
    if "required" in gate:
        required = gate["required"]
        if isinstance(required, bool) or not isinstance(required, int) or not 1 <= required <= MAX_REQUIRED:
            problems.append(("gate.required", f"must be a whole number from 1 to {MAX_REQUIRED}"))
        elif required > 1 and gate.get("kind") != "approval":
            problems.append(
                (
                    "gate.required",
                    "only an approval gate can need more than one approval: "
                    "an input or a choice is one person's answer",
                )
            )
        else:
            listed = named.get("approvers")
            able = set(listed) if listed is not None else known
            if able is not None:
                # Four eyes: whoever starts the run gives none of its approvals.
                barred = starter if starter in able else None
                count = len(able - {barred})
                if required > count:
                    who = "named" if listed is not None else "in the tenant"
                    reason = f" (four eyes: {barred} starts the run)" if barred else ""
                    problems.append(
                        (
                            "gate.required",
                            f"needs {required} approvals but only {count} approver"
                            f"{'' if count == 1 else 's'} {who} can give one{reason}",
                        )
                    )
    if "escalate_after" in gate:
        after = gate["escalate_after"]
        if isinstance(after, bool) or not isinstance(after, int) or not 1 <= after <= MAX_ESCALATE_AFTER:
            problems.append(
                ("gate.escalate_after", f"must be a whole number of seconds from 1 to {MAX_ESCALATE_AFTER}")
            )
        elif (
            isinstance(expires_in := gate.get("expires_in", DEFAULT_EXPIRES_IN), int) and after >= expires_in
        ):
            problems.append(
                ("gate.escalate_after", "must be shorter than expires_in: the pause would expire first")
            )
    elif "escalate_to" in gate:
        problems.append(
            ("gate.escalate_to", "needs escalate_after (the seconds to wait before telling them)")
        )
    return problems


def tenant_rule_problems(tenant: Any) -> list[tuple[str, str]]:
    """(field, message) for each problem of a tenant's default rule (Tenant.clean)."""
    problems: list[tuple[str, str]] = []
    for field in ("default_approvers", "default_escalate_to"):
        value = getattr(tenant, field)
        if value in ([], None, ""):
            continue
        if reason := _group_problem(value):
            problems.append((field, reason))
        elif tenant.pk and (listed := people(value)):
            from tenants.models import Role

            approvers = set(
                tenant.memberships.filter(role=Role.APPROVER, user__is_active=True).values_list(
                    "user__username", flat=True
                )
            )
            if unknown := sorted(set(listed) - approvers):
                problems.append((field, f"not approvers of this tenant: {', '.join(unknown[:5])}"))
    required = tenant.default_required
    if not isinstance(required, int) or not 1 <= required <= MAX_REQUIRED:
        problems.append(("default_required", f"a whole number from 1 to {MAX_REQUIRED}"))
    elif (listed := people(tenant.default_approvers)) is not None and required > len(listed):
        problems.append(
            ("default_required", f"{required} approvals but only {len(listed)} approvers are named")
        )
    after = tenant.default_escalate_after
    if after is not None and not 1 <= after <= MAX_ESCALATE_AFTER:
        problems.append(("default_escalate_after", f"seconds from 1 to {MAX_ESCALATE_AFTER}"))
    return problems


def rule_for(run: Any, step: dict[str, Any], pause: Any) -> dict[str, Any]:
    """The Approval fields of the rule for a pause of ``run`` at ``step`` (``pause``: its cause and
    kind): the gate's own rule when the program's gate paused, else the tenant's defaults."""
    from django.utils import timezone

    tenant = run.tenant
    gate = step.get("gate") if getattr(pause, "cause", "gate") == "gate" else None
    gate = gate if isinstance(gate, dict) else {}
    approvers = gate.get("approvers", tenant.default_approvers)
    required = gate.get("required", tenant.default_required)
    after = gate.get("escalate_after", tenant.default_escalate_after)
    escalate_to = gate.get("escalate_to", tenant.default_escalate_to)
    # An input or a choice is one person's answer, whatever the tenant's default says.
    if getattr(pause, "kind", "approval") != "approval":
        required = 1
    expires_in = getattr(pause, "expires_in", None)
    if after and expires_in and after >= expires_in:
        after = None  # it would expire first: nothing to escalate
    return {
        "approvers": people(approvers),
        "required": max(1, int(required or 1)),
        "escalate_at": timezone.now() + timedelta(seconds=after) if after else None,
        "escalate_to": people(escalate_to),
    }


def may_decide(approval: Any, user: Any) -> bool:
    """Whether ``user`` is one of the pause's approvers (the approver role is checked elsewhere)."""
    if approval.approvers is None:
        return True
    return getattr(user, "get_username", lambda: "")() in approval.approvers


def describe_group(names: list[str] | None) -> str:
    return "every approver" if names is None else ", ".join(names)
