"""The one state machine: nothing else writes ``Run.status`` or ``Step.status``.

Each transition is a conditional update (``UPDATE … WHERE status IN (expected)``); its row
count says whether this caller won. Concurrent approve / reject / cancel / expire on one
pause therefore have exactly one winner, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from .events import lock_run, record_event
from .models import TERMINAL_STATUSES, Run, RunStatus, Step, StepStatus

S = RunStatus
RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED, S.FAILED}),
    S.RUNNING: frozenset({S.AWAITING_APPROVAL, S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.AWAITING_APPROVAL: frozenset({S.RUNNING, S.REJECTED, S.CANCELLED, S.EXPIRED, S.FAILED}),
}
P = StepStatus
STEP_TRANSITIONS: dict[str, frozenset[str]] = {
    P.QUEUED: frozenset({P.RUNNING, P.AWAITING_APPROVAL, P.SKIPPED, P.FAILED}),
    P.RUNNING: frozenset({P.RUNNING, P.DONE, P.FAILED, P.AWAITING_APPROVAL, P.SKIPPED}),
    P.AWAITING_APPROVAL: frozenset({P.RUNNING, P.QUEUED, P.SKIPPED, P.FAILED}),
    P.FAILED: frozenset({P.RUNNING}),
}
# The webhook/event name of a run entering a status; awaiting → running is a resume.
RUN_EVENT = {status: f"run.{status}" for status in RunStatus.values}


class IllegalTransition(RuntimeError):
    """A programming error: the code asked for a transition the machine does not have."""


def _check(table: dict[str, frozenset[str]], expect: Iterable[str], to: str) -> list[str]:
    expected = list(expect)
    for old in expected:
        if to not in table.get(old, frozenset()):
            raise IllegalTransition(f"{old} → {to}")
    return expected


def run_transition(
    run: Run,
    *,
    to: str,
    expect: Iterable[str],
    actor: Any = None,
    event_data: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Move ``run`` to ``to`` if it is in one of ``expect``; False when another caller won."""
    expected = _check(RUN_TRANSITIONS, expect, to)
    now = timezone.now()
    changes: dict[str, Any] = {"status": to, "updated_at": now, **fields}
    if to == S.RUNNING and run.started_at is None:
        changes.setdefault("started_at", now)
    if to in TERMINAL_STATUSES:
        changes.setdefault("finished_at", now)
        changes["scrub_sealed"] = ""  # the run types nothing more: its sealed scrub list goes
    with transaction.atomic():
        won = Run.objects.filter(pk=run.pk, status__in=expected).update(**changes)
        if not won:
            return False
        old = run.status
        for name, value in changes.items():
            setattr(run, name, value)
        event = "run.resumed" if old == S.AWAITING_APPROVAL and to == S.RUNNING else RUN_EVENT[to]
        record_event(
            run,
            event,
            step_index=run.current_step or None,
            actor=actor,
            data={"from": old, "to": to, **(event_data or {})},
        )
        if to in TERMINAL_STATUSES and to != S.COMPLETED:
            _close_steps(run, reason=to, now=now)
        if to in TERMINAL_STATUSES:
            _keep_cost(run.pk)
            _finalize_video_later(str(run.pk))
    return True


def _keep_cost(run_id: Any) -> None:
    """The run has ended: keep what it cost, at today's prices (a later price change is not retroactive)."""
    from .cost import compute_cost

    ended = Run.objects.select_related("tenant").get(pk=run_id)
    Run.objects.filter(pk=run_id).update(cost_final=compute_cost(ended))


def _finalize_video_later(run_id: str) -> None:
    """The run is over: its video is made from its segments (by a worker, after this commits)."""
    from django.conf import settings

    if not settings.TWIN_VIDEO:
        return

    def send() -> None:
        from .tasks import finalize_video_task

        # Redis is transport: if this is lost, the sweeper finds the unfinished video.
        with contextlib.suppress(Exception):
            finalize_video_task.apply_async(args=(run_id,), countdown=0.5)

    transaction.on_commit(send)


def _close_steps(run: Run, *, reason: str, now: Any) -> None:
    """A run that ended early: steps still queued will never run, a running one was cut off.

    (A step awaiting approval is closed by the service that decided the pause, with its reason.)
    """
    skipped = list(
        Step.objects.filter(run_id=run.pk, status=P.QUEUED).order_by("index").values_list("index", flat=True)
    )
    if skipped:
        Step.objects.filter(run_id=run.pk, status=P.QUEUED, index__in=skipped).update(
            status=P.SKIPPED, finished_at=now
        )
        record_event(run, "steps.skipped", data={"indexes": skipped, "because": reason})
    for index in Step.objects.filter(run_id=run.pk, status=P.RUNNING).values_list("index", flat=True):
        error = f"the run was {reason} during this step"
        step_transition(run, index, to=P.FAILED, expect=[P.RUNNING], error=error)


def step_transition(
    run: Run,
    index: int,
    *,
    to: str,
    expect: Iterable[str],
    event_data: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    expected = _check(STEP_TRANSITIONS, expect, to)
    now = timezone.now()
    changes: dict[str, Any] = {"status": to, **fields}
    if to == P.RUNNING:
        changes.setdefault("started_at", now)
        changes.setdefault("finished_at", None)
    elif to in {P.DONE, P.FAILED, P.SKIPPED}:
        changes.setdefault("finished_at", now)
    with transaction.atomic(savepoint=False):
        head = lock_run(run.pk)  # the run before its steps, as every writer of a run does
        won = Step.objects.filter(run_id=run.pk, index=index, status__in=expected).update(**changes)
        if not won:
            return False
        kind = (
            "step.started"
            if to == P.RUNNING
            else "step.finished"
            if to != P.AWAITING_APPROVAL
            else "step.paused"
        )
        record_event(run, kind, step_index=index, data={"status": to, **(event_data or {})}, head=head)
    return True
