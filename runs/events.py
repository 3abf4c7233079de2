"""Every event is written once, then fanned out after the transaction commits."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from twin_site.realtime import broadcast, publish, run_channel

from .models import Run, RunEvent


def record_event(
    run: Run,
    type: str,
    *,
    step_index: int | None = None,
    actor: Any = None,
    data: dict[str, Any] | None = None,
) -> RunEvent:
    """Append an event in the caller's transaction; fan it out once that commits."""
    event = RunEvent.objects.create(
        run_id=run.pk,
        tenant_id=run.tenant_id,
        type=type,
        step_index=step_index,
        actor=actor if actor is not None and getattr(actor, "pk", None) else None,
        data=data or {},
    )
    message = {
        "type": type,
        "event_id": event.pk,
        "run_id": str(run.pk),
        "status": run.status,
        "step_index": step_index,
        "data": event.data,
    }
    transaction.on_commit(lambda: fan_out(run.pk, run.tenant_id, message))
    return event


def fan_out(run_id: object, tenant_id: int, message: dict[str, Any]) -> None:
    publish(run_channel(run_id), message)
    payload = {**message, "type": "run.event", "event": message["type"]}
    broadcast(f"run.{run_id}", payload)
    broadcast(f"tenant.{tenant_id}", payload)
