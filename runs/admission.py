"""Which queued run a free slot starts: each tenant in turn, each tenant's runs in order.

A start task is a token, not an order: "a slot is free, start something". The worker thread that
takes it starts the queued run of the tenant with the fewest runs running now (ties: the tenant
served least recently, whose last run started longest ago or never; then the tenant whose oldest
queued run has waited longest), that tenant's oldest queued run. One token per queued run, so
every queued run is started by some token; a token that finds nothing queued (its run was
cancelled, or started by another token) does nothing. So a tenant that queues a thousand runs does
not make another tenant's one run wait behind them: it starts at the next free slot.

The tie goes to the tenant served least recently, not to the oldest queued run: when slots free
one at a time (a host limit of one, or the other slots busy), both tenants run nothing at each
claim, and the backlog's oldest run is always older than the newcomer's — so "oldest first" would
start the whole backlog before it. Served least recently takes turns.

The database decides (Redis only carries the tokens): the claim is the state machine's
``queued → running``, so two threads can never start one run.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import Count, Min, OuterRef, Subquery

from .models import Run, RunStatus
from .states import run_transition

log = logging.getLogger(__name__)


def turns() -> list[Any]:
    """The tenants with queued runs, whose turn first (see the module's docstring)."""
    last_started = (
        Run.objects.filter(tenant_id=OuterRef("tenant_id"), started_at__isnull=False)
        .order_by("-started_at")
        .values("started_at")[:1]
    )
    waiting = list(
        Run.objects.filter(status=RunStatus.QUEUED)
        .values("tenant_id")
        .annotate(oldest=Min("created_at"), served=Subquery(last_started))
        .order_by()
    )
    if not waiting:
        return []
    running = dict(
        Run.objects.filter(status=RunStatus.RUNNING, tenant_id__in=[row["tenant_id"] for row in waiting])
        .values("tenant_id")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("tenant_id", "n")
    )

    def key(row: Any) -> tuple[Any, ...]:
        served = row["served"]
        return (running.get(row["tenant_id"], 0), served is not None, served, row["oldest"], row["tenant_id"])

    return [row["tenant_id"] for row in sorted(waiting, key=key)]


def first_queued(tenant_id: Any) -> Run | None:
    """A tenant's oldest queued run."""
    theirs = Run.objects.filter(status=RunStatus.QUEUED, tenant_id=tenant_id)
    return theirs.order_by("created_at", "pk").first()


def next_queued() -> Run | None:
    """The run the next free slot should start (not claimed).

    Two threads that free at once see the same turns: when the first takes the last queued run of
    the tenant whose turn it is, the second goes on to the next tenant's — it must not conclude that
    nothing waits, or a queued run would lose the token that was to start it.
    """
    for tenant_id in turns():
        run = first_queued(tenant_id)
        if run is not None:
            return run
    return None


class ClaimsLost(Exception):
    """Every attempt lost its run to another thread: the token must be tried again, not dropped."""


def claim_next(hint: Any = None, *, attempts: int = 8) -> str | None:
    """Start (``queued → running``) the run whose turn it is; its id, or None when none waits.

    ``hint`` is the run the token was sent for: it is only logged, since fairness may pick another.
    Raises ClaimsLost when each of ``attempts`` lost its run to another claim (or a cancel): runs may
    still wait, and this token is one of theirs.
    """
    for _ in range(attempts):
        run = next_queued()
        if run is None:
            return None
        if run_transition(run, to=RunStatus.RUNNING, expect=[RunStatus.QUEUED]):
            if hint and str(hint) != str(run.pk):
                log.debug("start token of run %s starts run %s (its turn)", hint, run.pk)
            return str(run.pk)
        # Another thread claimed it (or it was cancelled) meanwhile: the next one.
    log.warning("start token of run %s: %d claims lost (taken or cancelled meanwhile)", hint, attempts)
    raise ClaimsLost(hint)
