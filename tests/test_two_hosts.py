"""Two worker hosts on this machine — distinct host ids, browsers and queues — against one
database and one Redis: a paused run resumes in place on the host that holds its page; with that
host stopped, the other host restores it from its checkpoint and verifies the page before the
approved step acts; new runs spread over both hosts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from engine.browser import stop_host_browser
from runs.hosts import host_alive, queue_for_host
from runs.models import Run, RunEvent
from runs.routing import DEFAULT_QUEUE, host_queue
from tests.conftest import Worker, event_types, start_run, wait_run, wait_until, worker_env

HOST_A = settings.TWIN_HOST_ID  # the session's own worker
HOST_B = f"{settings.TWIN_HOST_ID}-b"


@pytest.fixture
def host_b(worker: Worker) -> Iterator[Worker]:
    second = Worker(worker_env(TWIN_HOST_ID=HOST_B), queues=f"runs,host.{HOST_B}").start()
    wait_until(lambda: host_alive(HOST_B), timeout=10, what="host B's heartbeat")
    yield second
    second.stop()
    with override_settings(TWIN_HOST_ID=HOST_B):
        stop_host_browser()


def workers(a: Worker, b: Worker) -> dict[str, Worker]:
    return {HOST_A: a, HOST_B: b}


def pay(site: Any) -> list[dict[str, Any]]:
    return [
        {"action": "goto", "url": site.url("/pay")},
        {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay $42?"}},
        {"action": "assert_text", "text": "Payment complete"},
    ]


def test_a_host_is_alive_while_its_worker_runs_and_gone_when_it_stops(worker: Worker, host_b: Worker) -> None:
    assert host_alive(HOST_A) and host_alive(HOST_B)
    assert queue_for_host(HOST_B) == host_queue(HOST_B)

    host_b.stop()

    assert not host_alive(HOST_B)  # a graceful stop says so at once
    assert queue_for_host(HOST_B) == DEFAULT_QUEUE
    assert queue_for_host("never-was") == DEFAULT_QUEUE
    assert host_alive(HOST_A)


def test_a_paused_run_resumes_in_place_on_the_host_that_holds_its_page(
    alice: Any, site: Any, worker: Worker, host_b: Worker
) -> None:
    run = start_run(alice, pay(site))
    assert run["status"] == "awaiting_approval"
    holder = Run.objects.get(pk=run["id"]).host
    assert holder in (HOST_A, HOST_B)

    assert alice.post(f"/api/runs/{run['id']}/approve").status_code == 202
    done = wait_run(alice, run["id"])

    assert done["status"] == "completed", done
    resumed = RunEvent.objects.get(run_id=run["id"], type="run.resumed_in_place")
    assert resumed.data["host"] == holder
    assert "run.restored_from_checkpoint" not in event_types(run["id"])
    assert site.count("payment") == 1


def test_with_its_host_stopped_a_paused_run_resumes_on_the_other_from_its_checkpoint(
    alice: Any, site: Any, worker: Worker, host_b: Worker
) -> None:
    run = start_run(alice, pay(site))
    assert run["status"] == "awaiting_approval"
    holder = Run.objects.get(pk=run["id"]).host
    other = HOST_B if holder == HOST_A else HOST_A

    workers(worker, host_b)[holder].stop()  # the host goes away (its browser may live on)
    assert alice.post(f"/api/runs/{run['id']}/approve").status_code == 202
    done = wait_run(alice, run["id"])

    assert done["status"] == "completed", done
    assert Run.objects.get(pk=run["id"]).host == other
    restored = RunEvent.objects.get(run_id=run["id"], type="run.restored_from_checkpoint")
    assert (restored.data["host"], restored.data["previous_host"]) == (other, holder)
    assert restored.step_index == 2
    assert "run.resumed_in_place" not in event_types(run["id"])
    assert site.count("payment") == 1  # paid once, on the page the approver saw (verified)


def test_new_runs_spread_over_both_hosts(alice: Any, site: Any, worker: Worker, host_b: Worker) -> None:
    steps = [
        {"action": "goto", "url": site.url("/slow?ms=1500")},
        {"action": "assert_text", "text": "Slow page"},
    ]
    runs = [start_run(alice, steps, wait=0) for _ in range(8)]
    done = [wait_run(alice, run["id"]) for run in runs]

    assert [d["status"] for d in done] == ["completed"] * 8, done
    hosts = [Run.objects.get(pk=run["id"]).host for run in runs]
    assert set(hosts) == {HOST_A, HOST_B}, hosts
