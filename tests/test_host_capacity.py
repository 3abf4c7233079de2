"""A worker host drives many runs at once in one process (its threads over one Playwright loop:
engine.bridge), never more than TWIN_HOST_ACTIVE_RUNS; past that, runs wait queued, in order, each
tenant in turn (runs.admission): one tenant's backlog does not hold another tenant's run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psutil
import pytest
from django.db import connection

from runs.admission import ClaimsLost, claim_next, next_queued
from runs.models import Run, RunEvent, RunStatus
from runs.services import run_create
from tests.conftest import Persona, Worker, event_types, start_run, wait_run, wait_until, worker_env
from tests.test_resume_and_recovery import counter_with_a_gate


def slow_steps(site: Any, ms: int) -> list[dict[str, Any]]:
    return [
        {"action": "goto", "url": site.url(f"/slow?ms={ms}")},
        {"action": "extract", "selector": "#slow", "name": "text"},
    ]


def started_at(run: Run) -> datetime:
    assert run.started_at is not None, run
    return run.started_at


def most_at_once(runs: list[Run]) -> int:
    """The most runs whose [started, finished] overlapped at one moment."""
    moments: list[tuple[datetime, int]] = []
    for run in runs:
        assert run.started_at is not None and run.finished_at is not None, run
        moments += [(run.started_at, 1), (run.finished_at, -1)]
    at_once = most = 0
    for _, change in sorted(moments, key=lambda m: (m[0], m[1])):
        at_once += change
        most = max(most, at_once)
    return most


@pytest.fixture
def host_of(worker: Worker) -> Iterator[Any]:
    """The session's worker replaced by one with a given TWIN_HOST_ACTIVE_RUNS."""
    started: list[Worker] = []

    def start(active: int) -> Worker:
        worker.stop()
        replacement = Worker(worker_env(TWIN_HOST_ACTIVE_RUNS=str(active))).start()
        started.append(replacement)
        return replacement

    yield start
    for replacement in started:
        replacement.stop()


def test_one_worker_process_drives_runs_at_once_up_to_the_host_limit(alice: Persona, site: Any, host_of: Any):
    host = host_of(3)
    created = [start_run(alice, slow_steps(site, 2500), wait=0) for _ in range(5)]
    done = [wait_run(alice, run["id"], wait=60) for run in created]
    assert [run["status"] for run in done] == ["completed"] * 5, done
    assert all(run["outputs"] == {"text": "Slow page"} for run in done)

    runs = list(Run.objects.filter(pk__in=[run["id"] for run in created]))
    # Three at once, never more than the limit, in one process: its only child is the Playwright
    # driver they share (no pool of worker processes, no driver each).
    assert most_at_once(runs) == 3
    children = [psutil.Process(pid).cmdline() for pid in host.child_pids()]
    assert len(children) == 1 and "celery" not in " ".join(children[0]), children


def test_past_the_limit_runs_stay_queued_in_order_and_each_tenant_takes_its_turn(
    alice: Persona, carol: Persona, site: Any, host_of: Any
):
    host_of(2)
    backlog = [start_run(alice, slow_steps(site, 3000), wait=0) for _ in range(6)]
    # The host drives two; the others wait, queued (and say so).
    wait_until(
        lambda: Run.objects.filter(tenant=alice.tenant, status=RunStatus.RUNNING).count() == 2,
        what="two of alice's runs running",
    )
    assert Run.objects.filter(tenant=alice.tenant, status=RunStatus.QUEUED).count() == 4
    assert alice.get(f"/api/runs/{backlog[-1]['id']}").json()["status"] == "queued"
    other = start_run(carol, slow_steps(site, 500), wait=0)

    for run in [*backlog, other]:
        finished = wait_run(carol if run is other else alice, run["id"], wait=60)
        assert finished["status"] == "completed", finished

    theirs = list(Run.objects.filter(pk__in=[run["id"] for run in backlog]).order_by("created_at"))
    mine = Run.objects.get(pk=other["id"])
    assert most_at_once([*theirs, mine]) == 2
    started = [started_at(run) for run in theirs]
    # A tenant's runs start in the order they were queued.
    assert started == sorted(started)
    # globex's one run did not wait behind acme's backlog of four: it took the first slot to free
    # after it was queued (globex runs nothing and was never served).
    queued_at, began = mine.created_at, started_at(mine)
    ahead = [at for at in started if queued_at < at < began]
    after = [at for at in started if began < at]
    assert not ahead and len(after) >= 3, (
        queued_at.isoformat(),
        began.isoformat(),
        [at.isoformat() for at in started],
    )


# -- the choice itself, in the database ------------------------------------------------------------
def queued(persona: Persona, count: int) -> list[Run]:
    # (No task is sent: the test's transaction never commits.)
    return [
        run_create(
            tenant=persona.tenant,
            created_by=persona.user,
            goal="wait",
            url="",
            steps=[{"action": "goto", "url": "http://127.0.0.1:9/"}],
        )
        for _ in range(count)
    ]


def test_the_tenant_with_fewest_runs_running_goes_next_then_the_longest_waiting(
    alice: Persona, carol: Persona
) -> None:
    first, second, third = queued(alice, 3)
    theirs = queued(carol, 2)
    assert next_queued() == first  # nobody runs anything: the oldest queued run

    Run.objects.filter(pk=first.pk).update(status=RunStatus.RUNNING)
    assert next_queued() == theirs[0]  # acme runs one, globex none: globex's turn
    Run.objects.filter(pk=theirs[0].pk).update(status=RunStatus.RUNNING)
    assert next_queued() == second  # one each: acme's second waited longest

    Run.objects.filter(pk__in=[second.pk, third.pk]).update(status=RunStatus.RUNNING)
    assert next_queued() == theirs[1]  # acme runs three now, globex one


def test_when_slots_free_one_at_a_time_the_tenants_take_turns(alice: Persona, carol: Persona) -> None:
    # Nobody runs anything at each claim (a host limit of one, or the other slots busy): the tenant
    # served least recently goes next, not the backlog whose oldest run is older than the newcomer.
    backlog = queued(alice, 3)
    assert claim_next() == str(backlog[0].pk)  # alice is the only tenant waiting
    Run.objects.filter(pk=backlog[0].pk).update(status=RunStatus.COMPLETED)
    newcomer = queued(carol, 2)

    assert claim_next() == str(newcomer[0].pk)  # never served: before alice's older backlog
    Run.objects.filter(pk=newcomer[0].pk).update(status=RunStatus.COMPLETED)
    assert claim_next() == str(backlog[1].pk)  # carol was served after alice: alice's turn
    Run.objects.filter(pk=backlog[1].pk).update(status=RunStatus.COMPLETED)
    assert claim_next() == str(newcomer[1].pk)
    Run.objects.filter(pk=newcomer[1].pk).update(status=RunStatus.COMPLETED)
    assert claim_next() == str(backlog[2].pk)
    assert claim_next() is None


def test_a_claim_starts_the_run_once_and_nothing_when_none_waits(alice: Persona) -> None:
    runs = queued(alice, 2)
    claimed = [claim_next(), claim_next(), claim_next()]
    assert claimed == [str(runs[0].pk), str(runs[1].pk), None]
    assert set(Run.objects.filter(pk__in=[r.pk for r in runs]).values_list("status", flat=True)) == {
        "running"
    }
    cancelled = queued(alice, 1)[0]
    Run.objects.filter(pk=cancelled.pk).update(status=RunStatus.CANCELLED)
    assert claim_next(hint=cancelled.pk) is None


def test_when_another_thread_takes_the_last_run_of_the_tenant_whose_turn_it_is_the_next_tenant_goes(
    alice: Persona, carol: Persona
) -> None:
    # Two threads free at once and both see it is carol's turn; the first takes carol's one run. The
    # second must start alice's next run — not conclude that nothing waits, which would lose the
    # token that was to start it (seen in CI: one of alice's runs sat queued for good).
    backlog = queued(alice, 3)
    assert claim_next() == str(backlog[0].pk)  # alice served: carol's turn next
    Run.objects.filter(pk=backlog[0].pk).update(status=RunStatus.COMPLETED)
    (newcomer,) = queued(carol, 1)
    turns_read = taken = False

    def other_thread_claims_after_the_turns_are_read(execute: Any, sql: str, *args: Any) -> Any:
        nonlocal turns_read, taken
        query = sql.upper()
        if turns_read and not taken and "LIMIT" in query and "GROUP BY" not in query:
            taken = True  # the turn is decided; before its run is looked up, another thread takes it
            Run.objects.filter(pk=newcomer.pk).update(status=RunStatus.RUNNING)
        turns_read = turns_read or ("MIN(" in query and "GROUP BY" in query)
        return execute(sql, *args)

    with connection.execute_wrapper(other_thread_claims_after_the_turns_are_read):
        assert claim_next() == str(backlog[1].pk)
    assert taken
    assert Run.objects.get(pk=backlog[1].pk).status == RunStatus.RUNNING


def lose_claims(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """The first ``count`` claims lose their run, as if another thread had taken each."""
    import runs.admission

    real = runs.admission.run_transition
    losses = 0

    def lose(run: Run, **kwargs: Any) -> bool:
        nonlocal losses
        if losses < count:
            losses += 1
            return False
        return real(run, **kwargs)

    monkeypatch.setattr(runs.admission, "run_transition", lose)


def test_a_token_whose_every_claim_was_lost_is_tried_again_not_dropped(
    alice: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runs.tasks

    (waiting,) = queued(alice, 1)
    lose_claims(monkeypatch, 8)
    executed: list[str] = []
    monkeypatch.setattr(runs.tasks, "_execute", lambda task, run_id, *args, **kwargs: executed.append(run_id))
    with pytest.raises(ClaimsLost):
        claim_next(hint=waiting.pk)
    assert Run.objects.get(pk=waiting.pk).status == RunStatus.QUEUED  # nothing lost, nothing started

    lose_claims(monkeypatch, 8)
    runs.tasks.start_run_task.apply(args=(str(waiting.pk),))  # eager: its retry runs at once
    assert executed == [str(waiting.pk)]
    assert Run.objects.get(pk=waiting.pk).status == RunStatus.RUNNING


@pytest.mark.parametrize("failures", [1, 5])
def test_a_token_that_waited_for_its_claim_still_gets_every_attempt_at_the_execution(
    alice: Persona, monkeypatch: pytest.MonkeyPatch, failures: int
) -> None:
    # The retries a start token spent claiming (its claims lost twice) are not execution attempts:
    # a transient error in the run's first execution is retried; three failed attempts fail the run.
    import runs.tasks

    (waiting,) = queued(alice, 1)
    lose_claims(monkeypatch, 16)  # two tries of eight
    executions: list[str] = []

    def fail(run_id: Any, *, reason: str) -> None:
        executions.append(reason)
        if len(executions) <= failures:
            raise RuntimeError("the browser went away")

    monkeypatch.setattr(runs.tasks, "execute_run", fail)
    runs.tasks.start_run_task.apply(args=(str(waiting.pk),))  # eager: its retries run at once
    run = Run.objects.get(pk=waiting.pk)
    if failures == 1:
        assert executions == ["start", "start"]
        assert run.status == RunStatus.RUNNING
    else:
        assert executions == ["start"] * 3
        assert run.status == RunStatus.FAILED
        assert run.error.startswith("internal error after 3 attempts: RuntimeError"), run.error


# -- memory: what a page costs, and the parked pages' budget -----------------------------------------
def test_the_host_measures_what_its_pages_cost(worker: Worker, site: Any) -> None:
    from engine.browser import session
    from engine.memory import measure

    page, context_id, _ = session().new_page()
    try:
        page.goto(site.url("/counter"))
        memory = measure()
    finally:
        session().close_context(context_id)
    assert memory is not None
    assert memory.pages >= 1 and memory.renderers >= 1
    # The renderers' memory is part of the whole Chromium's, which the pages share out.
    assert 5 < memory.renderer_mb < memory.chromium_mb < 4000, memory
    assert memory.per_page_mb == memory.chromium_mb / memory.pages


def test_a_parked_page_past_the_memory_budget_is_closed_and_its_run_restored_verified(
    alice: Persona, site: Any, worker: Worker
) -> None:
    worker.stop()
    tight = Worker(worker_env(TWIN_PARKED_MEMORY_MB="1")).start()  # less than any page costs
    try:
        run = start_run(alice, counter_with_a_gate(site))
        assert run["status"] == "awaiting_approval", run
        evicted = wait_until(
            lambda: RunEvent.objects.filter(run_id=run["id"], type="page.evicted").first(), what="eviction"
        )
        assert evicted.data["reason"] == "memory"
        assert evicted.data["budget_mb"] == 1 and evicted.data["page_mb"] > 1
        assert Run.objects.get(pk=run["id"]).target_id == ""  # checkpoint only

        assert alice.post(f"/api/runs/{run['id']}/approve").status_code == 202
        done = wait_run(alice, run["id"])
        assert done["status"] == "completed", done
        types = event_types(run["id"])
        assert "run.restored_from_checkpoint" in types and "run.state_verified" in types
        assert site.count("click") == 2  # one before the pause, one after: nothing replayed
    finally:
        tight.stop()
