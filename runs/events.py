"""Every event is written once, then fanned out after the transaction commits.

What else an event sets off in its transaction (webhook deliveries, pause emails) subscribes
here (:func:`subscribe`, from the subscribing app's ``AppConfig.ready``): ``runs`` and the engine
never import the apps that react to their events.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.db import connection, transaction
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


@dataclass
class _Batch:
    """The events of one run recorded in a :func:`batched` block, written when it ends."""

    run_id: Any
    head: tuple[int, str] | None = None  # the trail's head as of the last event (lock_run once)
    events: list[tuple[Run, RunEvent, dict[str, Any], dict[str, Any]]] = field(default_factory=list)


_batch = threading.local()


def _current(run_id: Any) -> _Batch | None:
    batch: _Batch | None = getattr(_batch, "current", None)
    return batch if batch is not None and batch.run_id == run_id else None


@contextmanager
def batched(run: Run) -> Iterator[None]:
    """Inside a transaction: the events recorded for ``run`` in this block are chained from one
    read of the run's trail head (its lock taken once, when the first is recorded) and written
    together as the block ends: one insert, one update of the head; then, in order, what each sets
    off (subscribers, the fan-out on commit), as :func:`record_event` does for one. For a step's
    ``done`` and the next step's start, written in one transaction between two page actions.
    The events have no ``pk`` until the block ends; an error in it writes none of them."""
    if not connection.in_atomic_block:
        raise RuntimeError("batched() belongs inside the transaction that writes the events")
    if getattr(_batch, "current", None) is not None:
        yield  # (already batching: the outer block writes them)
        return
    batch = _batch.current = _Batch(run.pk)
    try:
        yield
    finally:
        _batch.current = None
    if not batch.events:
        return
    if connection.features.can_return_rows_from_bulk_insert:
        RunEvent.objects.bulk_create([event for _, event, _, _ in batch.events])
    else:  # (a database that cannot give the new rows' ids back in one insert)
        for _, event, _, _ in batch.events:
            event.save(force_insert=True)
    assert batch.head is not None
    seq, digest = batch.head
    Run.objects.filter(pk=batch.run_id).update(audit_seq=seq, audit_head=digest)
    for owner, event, payload, message in batch.events:
        _set_off(owner, event, payload, message)


def lock_run(run_id: Any) -> tuple[int, str]:
    """Lock the run's row for this transaction; its trail head (count, last hash).

    Everything that writes a run's rows in one transaction takes this lock (or updates the
    run row) first, so writers of one run queue up in one order and the chain never forks.
    In a :func:`batched` block, the head after its last event (the lock is taken once).
    """
    batch = _current(run_id)
    if batch is not None and batch.head is not None:
        return batch.head
    head: tuple[int, str] = (
        Run.objects.select_for_update(no_key=True)
        .filter(pk=run_id)
        .values_list("audit_seq", "audit_head")
        .get()
    )
    if batch is not None:
        batch.head = head
    return head


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
        event = RunEvent(
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
        message = {
            "type": type,
            "run_id": str(run.pk),
            "status": run.status,
            "step_index": step_index,
            "data": public_data(payload),
        }
        batch = _current(run.pk)
        if batch is not None:  # written with the block's others as it ends (batched)
            batch.head = (seq, digest)
            batch.events.append((run, event, payload, message))
            return event
        event.save(force_insert=True)
        Run.objects.filter(pk=run.pk).update(audit_seq=seq, audit_head=digest)
        _set_off(run, event, payload, message)
    return event


def _set_off(run: Run, event: RunEvent, payload: dict[str, Any], message: dict[str, Any]) -> None:
    """What a written event sets off, in its transaction: the webhook messages it owes (sent once
    it commits), then its notifications (see subscribe); and its fan-out once it commits."""
    for _, handler in list(event_subscribers):
        handler(run, event, payload)
    message = {**message, "event_id": event.pk}
    transaction.on_commit(lambda: fan_out(run.pk, run.tenant_id, message))


def fan_out(run_id: object, tenant_id: int, message: dict[str, Any]) -> None:
    """The committed event to ``?wait=`` waiters and live pages, on the sender thread: the
    writer (a run's step, most often) does not wait for Redis."""
    send_soon(_send, run_id, tenant_id, message)


def _send(run_id: object, tenant_id: int, message: dict[str, Any]) -> None:
    publish(run_channel(run_id), message)
    payload = {**message, "type": "run.event", "event": message["type"]}
    broadcast(f"run.{run_id}", payload)
    broadcast(f"tenant.{tenant_id}", payload)
