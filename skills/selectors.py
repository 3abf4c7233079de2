"""Reads of skills (changes are in services.py)."""

from __future__ import annotations

import importlib
import statistics
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from django.db.models import Count, QuerySet
from django.http import Http404

from approvals.models import ApprovalStatus, Cause
from runs.models import TERMINAL_STATUSES, Run, RunStatus
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
    """The tenant's skill by id or slug, or Http404."""
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


def _wall_time_amount(run: Run) -> float:
    """The run's cost at its tenant's prices, counting its wall time as browser time."""
    tenant = run.tenant
    minutes = Decimal(str((_duration_s(run) or 0.0) / 60))
    tokens = Decimal(run.tokens_in + run.tokens_out)
    return float(minutes * tenant.price_browser_minute + tokens / 1000 * tenant.price_per_1k_tokens)


def _amount_of() -> Callable[[Run], float]:
    """How a run's cost in money is read: ``runs.cost`` when it is installed, else wall time at
    the tenant's prices (the same prices, a slightly larger browser time)."""
    try:
        run_cost = importlib.import_module("runs.cost").run_cost
    except (ImportError, AttributeError):
        return _wall_time_amount

    def amount(run: Run) -> float:
        cost = run_cost(run)
        value = cost.get("amount") if isinstance(cost, dict) else getattr(cost, "amount", None)
        return float(value) if value is not None else _wall_time_amount(run)

    return amount


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


def _stats(runs: Iterable[Run], *, amounts: bool) -> Stats:
    """Figures of ``runs`` (newest first); the chart's series only when ``amounts``."""
    stats = Stats()
    durations: list[float] = []
    amount_of = _amount_of() if amounts else None
    for run in runs:
        stats.runs += 1
        if stats.last_run_at is None or run.created_at > stats.last_run_at:
            stats.last_run_at = run.created_at
        if run.status in TERMINAL_STATUSES:
            stats.finished += 1
        duration = _duration_s(run)
        if run.status == RunStatus.COMPLETED:
            stats.completed += 1
            if duration is not None:
                durations.append(duration)
        if (
            amount_of is not None
            and duration is not None
            and run.status in TERMINAL_STATUSES
            and len(stats.series) < RECENT_RUNS
        ):
            stats.series.append(Point(run.created_at, duration, amount_of(run), run.pk, run.status))
    if stats.finished:
        stats.success_rate = stats.completed / stats.finished
    if durations:
        stats.median_duration_s = statistics.median(durations)
    stats.series.reverse()
    if stats.series:
        stats.avg_amount = sum(p.amount for p in stats.series) / len(stats.series)
    return stats


STAT_FIELDS = (
    "id",
    "tenant",
    "skill_version",
    "status",
    "created_at",
    "started_at",
    "finished_at",
    "tokens_in",
    "tokens_out",
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
    of the newest ended runs, oldest first; ``avg_amount`` their mean cost."""
    runs = _runs_of(skill).select_related("tenant").only(*STAT_FIELDS)
    return _stats(runs, amounts=True).as_dict()


@dataclass
class SkillRow:
    skill: Skill
    versions: int
    stats: Stats


def skills_overview(tenant: Tenant, *, archived: bool = False) -> list[SkillRow]:
    """The skills list: each skill with its version count and run figures (three queries)."""
    skills = list(skills_for_tenant(tenant, archived=archived).annotate(version_count=Count("versions")))
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
    return [
        SkillRow(skill=s, versions=s.version_count, stats=_stats(by_skill[s.pk], amounts=False))
        for s in skills
    ]


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
