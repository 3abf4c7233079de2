"""The run's event trail as a hash chain, and its verification.

Each event's hash covers its content and the hash of the event before it in the same run;
the run row keeps the head (count and last hash). Editing, removing or inserting an event
behind the ORM's back therefore shows as a break that ``manage.py verifyaudit`` reports.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = ""


def canonical(value: Any) -> Any:
    """The value as the database gives it back (JSON types only)."""
    return json.loads(json.dumps(value, default=str))


def event_digest(
    *,
    prev_hash: str,
    run_id: Any,
    tenant_id: int,
    seq: int,
    type: str,
    step_index: int | None,
    actor_id: int | None,
    data: Any,
    created_at: datetime,
) -> str:
    moment = created_at.astimezone(UTC).isoformat(timespec="microseconds")
    body = {
        "prev": prev_hash,
        "run": str(run_id),
        "tenant": tenant_id,
        "seq": seq,
        "type": type,
        "step": step_index,
        "actor": actor_id,
        "data": canonical(data),
        "at": moment,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def digest_of(event: Any, *, prev_hash: str | None = None) -> str:
    """The hash an event (a RunEvent row) should carry."""
    return event_digest(
        prev_hash=event.prev_hash if prev_hash is None else prev_hash,
        run_id=event.run_id,
        tenant_id=event.tenant_id,
        seq=event.seq,
        type=event.type,
        step_index=event.step_index,
        actor_id=event.actor_id,
        data=event.data,
        created_at=event.created_at,
    )


@dataclass(frozen=True)
class Break:
    run_id: str
    seq: int | None
    event_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"run {self.run_id}"
        if self.seq is not None:
            where += f", event #{self.seq}"
        if self.event_id is not None:
            where += f" (id {self.event_id})"
        return f"{where}: {self.problem}"


def verify_run(run_id: Any, head_seq: int, head_hash: str, events: Iterable[Any]) -> Iterator[Break]:
    """Every break in one run's chain; ``events`` in ``seq`` order."""
    run = str(run_id)
    expected_seq, prev = 1, GENESIS
    for event in events:
        if event.seq != expected_seq:
            last_missing = event.seq - 1
            missing = f"#{expected_seq}" + (f" to #{last_missing}" if last_missing > expected_seq else "")
            problem = (
                f"events {missing} are missing (deleted?)"
                if event.seq > expected_seq
                else f"a second event #{event.seq} (inserted?)"
            )
            yield Break(run, event.seq, event.pk, problem)
        if event.prev_hash != prev:
            yield Break(run, event.seq, event.pk, "does not link to the event before it")
        if digest_of(event) != event.hash:
            yield Break(run, event.seq, event.pk, "its content was changed after it was written")
        expected_seq, prev = event.seq + 1, event.hash
    if expected_seq - 1 != head_seq or prev != head_hash:
        yield Break(
            run,
            None,
            None,
            f"the trail ends at #{expected_seq - 1} but the run's head says #{head_seq}"
            if expected_seq - 1 != head_seq
            else "the last event is not the one the run's head recorded",
        )
