"""Every event is written once, then fanned out after the transaction commits.

What else an event sets off in its transaction (webhook deliveries, pause emails) subscribes
here (:func:`subscribe`, from the subscribing app's ``AppConfig.ready``): ``runs`` and the engine
never import the apps that react to their events.
"""

from __future__ import annotations

from typing import Any, Protocol

from django.db import transaction
from django.utils import timezone

from engine.scrub import scrub_data
from twin_site.realtime import broadcast, publish, run_channel, send_soon

from .audit import canonical, event_digest
from .models import Run, RunEvent

# Kept in the trail (and its hash), never sent to live pages or webhooks.
PRIVATE_KEYS = frozenset({"ip", "user_agent", "seen"})


def public_data(data: dict[str, Any] | None) -> dict[str, Any]:
    """An event's data as live pages, webhooks and the API show it: without PRIVATE_KEYS."""
    return {key: value for key, value in (data or {}).items() if key not in PRIVATE_KEYS}


class EventSubscriber(Protocol):
    def __call__(self, run: Run, event: RunEvent, data: dict[str, Any]) -> None: ...


# (order, handler), lowest order first; called with every event, inside its transaction.
event_subscribers: list[tuple[int, EventSubscriber]] = []


def subscribe(handler: EventSubscriber, *, order: int) -> EventSubscriber:
    """Call ``handler(run, event, data)`` with every recorded event, in the event's transaction
    (an exception rolls the event back), after the handlers of a lower ``order`` (equal orders:
    in the order they subscribed). ``data`` is the event's scrubbed, canonical data. Subscribing
    a handler again changes nothing."""
    if all(known is not handler for _, known in event_subscribers):
        event_subscribers.append((order, handler))
        event_subscribers.sort(key=lambda pair: pair[0])  # stable: equal orders keep theirs
    return handler


def lock_run(run_id: Any) -> tuple[int, str]:
    """Lock the run's row for this transaction; its trail head (count, last hash).

    Everything that writes a run's rows in one transaction takes this lock (or updates the
    run row) first, so writers of one run queue up in one order and the chain never forks.
    """
    return (
        Run.objects.select_for_update(no_key=True)
        .filter(pk=run_id)
        .values_list("audit_seq", "audit_head")
        .get()
    )


def record_event(
    run: Run,
    type: str,
    *,
    step_index: int | None = None,
    actor: Any = None,
    data: dict[str, Any] | None = None,
    head: tuple[int, str] | None = None,
) -> RunEvent:
    """Append an event in the caller's transaction (chained to the run's last); fan it out on commit.

    ``head``: what :func:`lock_run` returned to a caller that locked the run in this same
    transaction and wrote no event since (it is not read twice).
    """
    actor_id = getattr(actor, "pk", None) if actor is not None else None
    # The last line of the scrub: an event is hash-chained (it can never be purged), and webhook
    # bodies and emails are built from it. Scrubbed with the running execution's list, if any.
    payload = canonical(scrub_data(data or {}))
    # No savepoint of its own: an error here is the whole transaction's (the event and what it
    # records belong together), and a step's records are written with fewer statements.
    with transaction.atomic(savepoint=False):
        seq, prev_hash = head if head is not None else lock_run(run.pk)
        seq += 1
        created_at = timezone.now()
        digest = event_digest(
            prev_hash=prev_hash,
            run_id=run.pk,
            tenant_id=run.tenant_id,
            seq=seq,
            type=type,
            step_index=step_index,
            actor_id=actor_id,
            data=payload,
            created_at=created_at,
        )
        event = RunEvent.objects.create(
            run_id=run.pk,
            tenant_id=run.tenant_id,
            seq=seq,
            type=type,
            step_index=step_index,
            actor_id=actor_id,
            data=payload,
            created_at=created_at,
            prev_hash=prev_hash,
            hash=digest,
        )
        Run.objects.filter(pk=run.pk).update(audit_seq=seq, audit_head=digest)
        # What it sets off, in the same transaction: the webhook messages it owes (sent once it
        # commits), then its notifications (see subscribe).
        for _, handler in list(event_subscribers):
            handler(run, event, payload)
    message = {
        "type": type,
        "event_id": event.pk,
        "run_id": str(run.pk),
        "status": run.status,
        "step_index": step_index,
        "data": public_data(payload),
    }
    transaction.on_commit(lambda: fan_out(run.pk, run.tenant_id, message))
    return event


def fan_out(run_id: object, tenant_id: int, message: dict[str, Any]) -> None:
    """The committed event to ``?wait=`` waiters and live pages, on the sender thread: the
    writer (a run's step, most often) does not wait for Redis."""
    send_soon(_send, run_id, tenant_id, message)


def _send(run_id: object, tenant_id: int, message: dict[str, Any]) -> None:
    publish(run_channel(run_id), message)
    payload = {**message, "type": "run.event", "event": message["type"]}
    broadcast(f"run.{run_id}", payload)
    broadcast(f"tenant.{tenant_id}", payload)
