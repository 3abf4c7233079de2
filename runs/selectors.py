from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from approvals.models import Approval, ApprovalStatus
from tenants.models import Tenant

from .models import Run, RunEvent, Step


def runs_for_tenant(tenant: Tenant) -> QuerySet[Run]:
    return (
        Run.objects.filter(tenant=tenant)
        .select_related("recording")
        .prefetch_related(
            Prefetch("steps", queryset=Step.objects.order_by("index")),
            Prefetch(
                "approvals",
                queryset=Approval.objects.filter(status=ApprovalStatus.PENDING),
                to_attr="pending_list",
            ),
        )
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
