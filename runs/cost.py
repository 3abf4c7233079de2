"""What a run cost: its time, the browser's time, the humans' time, model usage, and money.

Computed from what the run's rows hold (the run, its steps, its pauses) while the run is live,
and kept on the run when it ends (``Run.cost_final``, written by the state machine): an ended run
cost what it cost at the prices of its day, whatever the prices are later. Uses the steps and
pauses prefetched by ``runs.selectors.runs_for_tenant`` when they are there (no query per run in
a list).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.utils import timezone

from .models import Run, StepStatus

# The prefetch that holds every pause of a run (``runs_for_tenant``); ``pending_list`` holds only
# the pending one.
APPROVALS_ATTR = "approval_list"

SECONDS = Decimal("0.001")
AMOUNT = Decimal("0.000001")


def _seconds(value: float) -> float:
    return float(Decimal(repr(max(value, 0.0))).quantize(SECONDS, rounding=ROUND_HALF_UP))


def _approvals(run: Run) -> list[Any]:
    prefetched = getattr(run, APPROVALS_ATTR, None)
    if prefetched is not None:
        return list(prefetched)
    return list(run.approvals.all())


def _overlap(start: datetime, end: datetime, spans: list[tuple[datetime, datetime]]) -> float:
    return sum(
        max((min(end, span_end) - max(start, span_start)).total_seconds(), 0.0)
        for span_start, span_end in spans
    )


def run_cost(run: Run, *, now: datetime | None = None) -> dict[str, Any]:
    """The contract's ``cost`` of ``run`` (plus its ``currency``), at the tenant's prices now.

    - ``wall_s``: from the start (or, never started, the creation) to the end, or to ``now``.
    - ``browser_s``: the steps' own durations (their last attempt), less any time one of them
      sat waiting for a human (a step rejected at its gate keeps the time before the pause).
    - ``steps``: steps done. ``pauses``: every pause of the run, whatever became of it.
    - ``human_wait_s``: each pause from its creation to its decision (or, undecided, to the
      run's end, or to ``now``).
    - ``amount``: browser minutes and 1,000s of tokens (in and out) at the tenant's prices.
    """
    if run.finished_at is not None and run.cost_final:
        return dict(run.cost_final)
    return compute_cost(run, now=now)


def compute_cost(run: Run, *, now: datetime | None = None) -> dict[str, Any]:
    """The cost from the run's rows now, at the tenant's prices now (see :func:`run_cost`)."""
    now = now or timezone.now()
    end = run.finished_at or now
    wall = (end - (run.started_at or run.created_at)).total_seconds()

    approvals = _approvals(run)
    waits = [(a.created_at, a.decided_at or end) for a in approvals]
    human_wait = sum(max((until - since).total_seconds(), 0.0) for since, until in waits)

    browser = 0.0
    done = 0
    for step in run.steps.all():
        if step.status == StepStatus.DONE:
            done += 1
        if step.started_at is not None and step.finished_at is not None:
            span = (step.finished_at - step.started_at).total_seconds()
            browser += max(span - _overlap(step.started_at, step.finished_at, waits), 0.0)

    wall_s, browser_s = _seconds(wall), _seconds(browser)
    tenant = run.tenant
    tokens = run.tokens_in + run.tokens_out
    amount = (Decimal(repr(browser_s)) / 60) * tenant.price_browser_minute + (
        Decimal(tokens) / 1000
    ) * tenant.price_per_1k_tokens
    return {
        "wall_s": wall_s,
        "browser_s": browser_s,
        "steps": done,
        "pauses": len(approvals),
        "human_wait_s": _seconds(human_wait),
        "model_calls": run.model_calls,
        "tokens_in": run.tokens_in,
        "tokens_out": run.tokens_out,
        "amount": float(amount.quantize(AMOUNT, rounding=ROUND_HALF_UP)),
        "currency": tenant.currency,
    }


def cost_summary(runs: Iterable[Run], *, now: datetime | None = None) -> dict[str, Any]:
    """Figures over several runs (a skill's): how many, money in total and on average, and the
    median wall and browser time. The averages and medians are None when there are no runs.

    Pass runs from ``runs_for_tenant`` (prefetched) and, for settled figures, finished ones only:
    a live run's time still grows.
    """
    now = now or timezone.now()
    costs = [run_cost(run, now=now) for run in runs]
    total = sum((Decimal(repr(c["amount"])) for c in costs), Decimal(0))
    return {
        "runs": len(costs),
        "amount_total": float(total),
        "amount_avg": float((total / len(costs)).quantize(AMOUNT, rounding=ROUND_HALF_UP)) if costs else None,
        "wall_s_median": _seconds(statistics.median(c["wall_s"] for c in costs)) if costs else None,
        "browser_s_median": _seconds(statistics.median(c["browser_s"] for c in costs)) if costs else None,
        "currency": costs[0]["currency"] if costs else None,
    }


def seconds_label(seconds: float | None) -> str:
    """Seconds for a person: 0.4 s, 12 s, 3 min 5 s, 2 h 10 min, 3 days."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{max(seconds, 0):.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"


def amount_label(amount: float, currency: str) -> str:
    """An amount for a person: "0.0042 USD" (enough decimals that small runs do not show 0.00)."""
    if amount == 0:
        return f"0 {currency}"
    text = f"{amount:.6f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')} {currency}"
