from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404

from approvals.models import Approval, ApprovalStatus
from tenants.models import Tenant

from .cost import APPROVALS_ATTR
from .models import Run, RunEvent, RunStatus, Step


def runs_for_tenant(tenant: Tenant) -> QuerySet[Run]:
    return (
        Run.objects.filter(tenant=tenant)
        .select_related("recording", "tenant", "skill_version__skill")
        .prefetch_related(
            Prefetch("steps", queryset=Step.objects.order_by("index")),
            Prefetch(
                "approvals",
                queryset=Approval.objects.filter(status=ApprovalStatus.PENDING),
                to_attr="pending_list",
            ),
            # Every pause, for the run's cost (runs.cost): how many, and how long humans took.
            Prefetch(
                "approvals",
                queryset=Approval.objects.only("id", "run_id", "created_at", "decided_at", "status"),
                to_attr=APPROVALS_ATTR,
            ),
        )
    )


def run_list_for_tenant(tenant: Tenant) -> QuerySet[Run]:
    """The dashboard's runs list: a row's fields and what its cost needs, newest first."""
    return (
        Run.objects.filter(tenant=tenant)
        .select_related("created_by", "tenant", "skill_version__skill")
        .only(
            "id",
            "status",
            "goal",
            "url",
            "current_step",
            "step_total",
            "created_at",
            "started_at",
            "finished_at",
            "updated_at",
            "created_by__username",
            "model_calls",
            "tokens_in",
            "tokens_out",
            "cost_final",
            "planner",
            "tenant__currency",
            "tenant__price_browser_minute",
            "tenant__price_per_1k_tokens",
            "skill_version__version",
            "skill_version__skill__slug",
        )
        .prefetch_related(
            # What each row's cost needs (runs.cost), in two queries for the page.
            Prefetch(
                "steps",
                queryset=Step.objects.only("id", "run_id", "status", "started_at", "finished_at").order_by(
                    "index"
                ),
            ),
            Prefetch(
                "approvals",
                queryset=Approval.objects.only("id", "run_id", "created_at", "decided_at"),
                to_attr=APPROVALS_ATTR,
            ),
        )
        .order_by("-created_at", "-id")
    )


# The runs list's search box takes at most this many characters (more are cut off).
MAX_QUERY = 200
# What a run paused for, in the runs list's "Paused for" filter.
PAUSE_TRIGGERS = {
    "approval": "an approval",
    "mfa": "a one-time code",
    "ambiguity": "a choice between elements",
    "blocked": "a blocked step",
}
WAITING = "waiting-"  # "waiting-mfa": waiting now on that trigger, not only paused for it once
_ID_PREFIX = re.compile(r"[0-9a-f]{4,32}")


@dataclass(frozen=True)
class RunFilters:
    """The runs list's filters as the request gave them, each already valid (or empty)."""

    q: str = ""
    status: str = ""
    skill: str = ""  # a skill's slug
    trigger: str = ""  # a PAUSE_TRIGGERS key, or WAITING + one

    @property
    def active(self) -> bool:
        return bool(self.q or self.status or self.skill or self.trigger)

    def query(self) -> dict[str, str]:
        """The filters for an address (only those set, in a fixed order)."""
        pairs = {"q": self.q, "status": self.status, "skill": self.skill, "trigger": self.trigger}
        return {key: value for key, value in pairs.items() if value}


def clean_query(text: str) -> str:
    """A search as typed: one line, trimmed, bounded."""
    return " ".join((text or "").split())[:MAX_QUERY]


def trigger_label(trigger: str) -> str:
    """ "paused for a one-time code" / "waiting now on a one-time code" ("" when not a trigger)."""
    if trigger.startswith(WAITING):
        what = PAUSE_TRIGGERS.get(trigger.removeprefix(WAITING), "")
        return f"waiting now on {what}" if what else ""
    what = PAUSE_TRIGGERS.get(trigger, "")
    return f"paused for {what}" if what else ""


def _id_range(text: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The ids that start with ``text`` (dashes or not) as a range of the primary key, or None.

    A range, not ``LIKE 'prefix%'`` on the id cast to text: the key's index answers it, and it
    means the same on PostgreSQL (uuid) and SQLite (32 hex characters).
    """
    hexes = text.lower().replace("-", "")
    if not _ID_PREFIX.fullmatch(hexes):
        return None
    return uuid.UUID(hexes.ljust(32, "0")), uuid.UUID(hexes.ljust(32, "f"))


def filter_runs(runs: QuerySet[Run], filters: RunFilters) -> QuerySet[Run]:
    """``runs`` (already the tenant's) narrowed by the runs list's filters.

    The search matches the goal or the start URL (anywhere, any case) or the start of the run's
    id. Every filter keeps the list's order, so the newest matches come first and a page stops
    reading as soon as it has enough (see docs/decisions.md, "timeline").
    """
    if filters.status:
        runs = runs.filter(status=filters.status)
    if filters.q:
        match = Q(goal__icontains=filters.q) | Q(url__icontains=filters.q)
        ids = _id_range(filters.q)
        if ids is not None:
            match |= Q(id__range=ids)
        runs = runs.filter(match)
    if filters.skill:
        runs = runs.filter(skill_version__skill__slug=filters.skill)
    if filters.trigger:
        waiting = filters.trigger.startswith(WAITING)
        trigger = filters.trigger.removeprefix(WAITING)
        pauses = Approval.objects.filter(run_id=OuterRef("pk"), trigger=trigger)
        if waiting:
            pauses = pauses.filter(status=ApprovalStatus.PENDING)
            runs = runs.filter(status=RunStatus.AWAITING_APPROVAL)
        runs = runs.filter(Exists(pauses))
    return runs


def runs_for_tenant_exist(tenant: Tenant) -> bool:
    return Run.objects.filter(tenant=tenant).exists()


def get_run_for_tenant(tenant: Tenant, pk: Any) -> Run:
    """The tenant's run, or 404 (another tenant's run does not exist for you)."""
    try:
        return runs_for_tenant(tenant).get(pk=pk)
    except (Run.DoesNotExist, ValueError, TypeError):
        raise Http404("no such run") from None


def ready_recording(run: Run) -> Any:
    """The run's session video when it can be played, else None."""
    from .models import Recording, RecordingStatus

    try:
        recording = run.recording
    except Recording.DoesNotExist:
        return None
    return recording if recording.status == RecordingStatus.READY and recording.path else None


def run_status(pk: Any) -> str | None:
    return Run.objects.filter(pk=pk).values_list("status", flat=True).first()


def events_for_run(run: Run, *, after: int | None = None) -> QuerySet[RunEvent]:
    """The run's events, oldest first (``after``: only those after that event id)."""
    events = RunEvent.objects.filter(run_id=run.pk, tenant_id=run.tenant_id)
    if after is not None:
        events = events.filter(pk__gt=after)
    return events.select_related("actor").order_by("pk")
