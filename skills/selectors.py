"""Reads of skills (changes are in services.py)."""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.db.models import Count, Exists, OuterRef, Prefetch, QuerySet
from django.http import Http404

from approvals.models import Approval, ApprovalStatus, Cause
from runs.cost import APPROVALS_ATTR, run_cost
from runs.models import TERMINAL_STATUSES, Run, RunStatus, Step
from tenants.models import Tenant

from .models import Skill, SkillVersion

# How many of a skill's most recent runs its page lists and charts.
RECENT_RUNS = 50


def skills_for_tenant(tenant: Tenant, *, archived: bool = False) -> QuerySet[Skill]:
    """The tenant's skills, most recently changed first; archived ones only when ``archived``."""
    skills = Skill.objects.filter(tenant=tenant)
    if not archived:
        skills = skills.filter(archived_at__isnull=True)
    return skills.order_by("-updated_at", "slug")


def get_skill(tenant: Tenant, id_or_slug: str, *, archived: bool = True) -> Skill:
    """The tenant's skill by id or slug, or Http404 (another tenant's skill does not exist for you)."""
    skills = skills_for_tenant(tenant, archived=archived)
    try:
        key = uuid.UUID(str(id_or_slug))
    except ValueError:
        found = skills.filter(slug=str(id_or_slug)).first()
    else:
        found = skills.filter(pk=key).first()
    if found is None:
        raise Http404("no such skill")
    return found


# Where skills_overview puts each skill's newest version (a list of one, or none before any version).
NEWEST_ATTR = "newest_versions"


def _newest_versions() -> Prefetch[Any]:
    """The newest version of each skill of a list, fetched for all of them in one query."""
    newer = SkillVersion.objects.filter(skill_id=OuterRef("skill_id"), version__gt=OuterRef("version"))
    return Prefetch("versions", queryset=SkillVersion.objects.filter(~Exists(newer)), to_attr=NEWEST_ATTR)


def newest_version(skill: Skill) -> SkillVersion | None:
    """The skill's newest version (None before it has one): prefetched by skills_overview, else one query."""
    prefetched: list[SkillVersion] | None = getattr(skill, NEWEST_ATTR, None)
    if prefetched is not None:
        return prefetched[0] if prefetched else None
    return skill.versions.order_by("-version").first()


def get_version(skill: Skill, number: int | None = None) -> SkillVersion:
    """A version of the skill (the newest when ``number`` is None), or Http404."""
    versions = skill.versions.all()
    found = (
        versions.order_by("-version").first() if number is None else versions.filter(version=number).first()
    )
    if found is None:
        raise Http404("no such skill version")
    return found


# -- what running a skill has cost and taken -------------------------------------------------------
class Point(NamedTuple):
    """One run of the skill on its chart."""

    created_at: datetime
    duration_s: float
    amount: float
    run_id: uuid.UUID
    status: str


def _duration_s(run: Run) -> float | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return max((run.finished_at - run.started_at).total_seconds(), 0.0)


@dataclass
class Stats:
    runs: int = 0
    completed: int = 0
    finished: int = 0
    success_rate: float | None = None  # completed / ended runs, 0..1; None before any run ended
    median_duration_s: float | None = None  # of the completed runs
    last_run_at: datetime | None = None
    avg_amount: float | None = None
    series: list[Point] = field(default_factory=list)  # oldest first

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "completed": self.completed,
            "success_rate": self.success_rate,
            "median_duration_s": self.median_duration_s,
            "last_run_at": self.last_run_at,
            "avg_amount": self.avg_amount,
            "series": self.series,
        }


def _stats(runs: Iterable[Run]) -> Stats:
    """Figures of ``runs``: how many, how many completed of those that ended, how long they took."""
    stats = Stats()
    durations: list[float] = []
    for run in runs:
        stats.runs += 1
        if stats.last_run_at is None or run.created_at > stats.last_run_at:
            stats.last_run_at = run.created_at
        if run.status in TERMINAL_STATUSES:
            stats.finished += 1
        if run.status == RunStatus.COMPLETED:
            stats.completed += 1
            duration = _duration_s(run)
            if duration is not None:
                durations.append(duration)
    if stats.finished:
        stats.success_rate = stats.completed / stats.finished
    if durations:
        stats.median_duration_s = statistics.median(durations)
    return stats


def _series(runs: list[Run]) -> list[Point]:
    """The chart's points: the newest ended runs (of ``runs``, newest first), oldest first, each
    with its wall time and its cost (runs.cost, from its steps and pauses: two queries in all)."""
    ended = [r.pk for r in runs if r.status in TERMINAL_STATUSES and _duration_s(r) is not None]
    priced = (
        Run.objects.filter(pk__in=ended[:RECENT_RUNS])
        .select_related("tenant")
        .prefetch_related(
            Prefetch(
                "steps", queryset=Step.objects.only("id", "run_id", "status", "started_at", "finished_at")
            ),
            Prefetch(
                "approvals",
                queryset=Approval.objects.only("id", "run_id", "created_at", "decided_at", "status"),
                to_attr=APPROVALS_ATTR,
            ),
        )
        .order_by("created_at", "id")
    )
    points = []
    for run in priced:
        cost = run_cost(run)
        points.append(Point(run.created_at, float(cost["wall_s"]), float(cost["amount"]), run.pk, run.status))
    return points


STAT_FIELDS = (
    "id",
    "tenant",
    "skill_version",
    "status",
    "created_at",
    "started_at",
    "finished_at",
)


def _runs_of(skill: Skill) -> QuerySet[Run]:
    return Run.objects.filter(tenant_id=skill.tenant_id, skill_version__skill=skill).order_by(
        "-created_at", "-id"
    )


def skill_runs(skill: Skill) -> QuerySet[Run]:
    """The runs that replayed any version of the skill, newest first (the skill's tenant only)."""
    return _runs_of(skill).select_related("tenant", "skill_version", "created_by")


def skill_stats(skill: Skill) -> dict[str, Any]:
    """{"runs", "completed", "success_rate", "median_duration_s", "last_run_at", "avg_amount",
    "series"}: ``series`` is the chart's points, (created_at, duration_s, amount, run_id, status)
    of the newest ended runs (at most RECENT_RUNS), oldest first; ``avg_amount`` their mean cost."""
    runs = list(_runs_of(skill).only(*STAT_FIELDS))
    stats = _stats(runs)
    stats.series = _series(runs)
    if stats.series:
        stats.avg_amount = sum(p.amount for p in stats.series) / len(stats.series)
    return stats.as_dict()


@dataclass
class SkillRow:
    skill: Skill
    versions: int
    stats: Stats


def skills_overview(tenant: Tenant, *, archived: bool = False) -> list[SkillRow]:
    """The skills list: each skill with its version count, its newest version (newest_version) and
    run figures (four queries)."""
    skills = list(
        skills_for_tenant(tenant, archived=archived)
        .annotate(version_count=Count("versions"))
        .prefetch_related(_newest_versions())
    )
    by_skill: dict[uuid.UUID, list[Run]] = {s.pk: [] for s in skills}
    runs = (
        Run.objects.filter(tenant=tenant, skill_version__skill__in=[s.pk for s in skills])
        .select_related("skill_version")
        .only(*STAT_FIELDS, "skill_version__skill_id")
        .order_by("-created_at")
    )
    for run in runs:
        assert run.skill_version is not None
        by_skill[run.skill_version.skill_id].append(run)
    return [SkillRow(skill=s, versions=s.version_count, stats=_stats(by_skill[s.pk])) for s in skills]


# -- saving a run -------------------------------------------------------------------------------------
def repaired_replay(run: Run) -> bool:
    """A replay of a skill that a person got past a pause nobody planned (an ambiguity or a block):
    what it did is the skill's fix."""
    return bool(
        run.skill_version_id
        and run.approvals.exclude(cause=Cause.GATE).filter(status=ApprovalStatus.APPROVED).exists()
    )


def save_label(run: Run) -> str:
    """The run page's button: "" when the run cannot be saved."""
    if run.status != RunStatus.COMPLETED:
        return ""
    return "Save the fix" if repaired_replay(run) else "Save as skill"
