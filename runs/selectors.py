from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from approvals.models import Approval, ApprovalStatus
from tenants.models import Tenant

from .cost import APPROVALS_ATTR
from .models import Run, RunEvent, Step


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
