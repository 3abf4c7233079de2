"""Cancelling a run, and pauses that nobody decides before they expire."""

from __future__ import annotations

import time

from approvals.tasks import expire_pauses_task
from tests.conftest import start_run, wait_run, wait_until


def pay_program(site, **gate):
    return [
        {"action": "goto", "url": site.url("/pay")},
        {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay $42?", **gate}},
        {"action": "assert_text", "text": "Payment complete"},
    ]


def run_beat_task(worker):
    """Send the expiry task to the real worker and wait until the worker says it ran."""
    task_id = expire_pauses_task.delay().id
    wait_until(
        lambda: f"[{task_id}] succeeded" in worker.log.read_text(errors="replace"),
        timeout=20,
        what="the expiry task to run",
    )


def pending_for(persona, run_id):
    return [a for a in persona.get("/api/approvals?status=pending").json() if a["run_id"] == run_id]


def test_cancelling_a_paused_run_withdraws_its_approval_and_the_step_never_happens(alice, site, worker):
    run = start_run(alice, pay_program(site))
    assert run["status"] == "awaiting_approval"
    assert len(pending_for(alice, run["id"])) == 1

    cancelled = alice.post(f"/api/runs/{run['id']}/cancel")

    assert cancelled.status_code == 200, cancelled.content
    assert cancelled["X-Twin-Status"] == "cancelled"
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["pending_step"] is None
    assert [s["status"] for s in cancelled.json()["steps"]][:2] == ["done", "skipped"]
    assert pending_for(alice, run["id"]) == []

    late = alice.post(f"/api/runs/{run['id']}/approve")
    assert late.status_code == 409
    assert late.json()["error"] == "conflict"
    time.sleep(1)
    assert site.count("payment") == 0
    assert wait_run(alice, run["id"], wait=0)["status"] == "cancelled"


def test_cancelling_a_completed_run_gets_409_and_it_stays_completed(alice, site, worker):
    run = start_run(
        alice,
        [
            {"action": "goto", "url": site.url("/counter")},
            {"action": "assert_text", "text": "Clicks: 0"},
        ],
    )
    assert run["status"] == "completed", run

    refused = alice.post(f"/api/runs/{run['id']}/cancel")

    assert refused.status_code == 409
    assert refused.json()["error"] == "conflict"
    assert refused["X-Twin-Status"] == "completed"
    assert wait_run(alice, run["id"], wait=0)["status"] == "completed"


def test_a_viewer_cannot_cancel_and_another_tenant_cannot_see_the_run(alice, bob, carol, site, worker):
    run = start_run(alice, pay_program(site))
    assert run["status"] == "awaiting_approval"

    assert bob.post(f"/api/runs/{run['id']}/cancel").status_code == 403
    assert carol.post(f"/api/runs/{run['id']}/cancel").status_code == 404
    assert wait_run(alice, run["id"], wait=0)["status"] == "awaiting_approval"


def test_an_undecided_pause_expires_through_the_beat_task_and_the_step_never_happens(alice, site, worker):
    run = start_run(alice, pay_program(site, expires_in=1))
    assert run["status"] == "awaiting_approval", run
    assert run["pending_step"]["expires_at"]

    time.sleep(1.5)
    run_beat_task(worker)

    expired = wait_run(alice, run["id"], wait=20)
    assert expired["status"] == "expired", expired
    assert expired["pending_step"] is None
    assert expired["steps"][1]["status"] == "skipped"
    assert expired["error"]
    assert pending_for(alice, run["id"]) == []
    assert alice.get("/api/approvals").json()[0]["status"] == "expired"

    late = alice.post(f"/api/runs/{run['id']}/approve")
    assert late.status_code == 409
    assert late["X-Twin-Status"] == "expired"
    time.sleep(1)
    assert site.count("payment") == 0


def test_a_pause_that_has_not_expired_yet_survives_the_beat_task(alice, site, worker):
    run = start_run(alice, pay_program(site, expires_in=3600))
    assert run["status"] == "awaiting_approval", run

    run_beat_task(worker)

    assert wait_run(alice, run["id"], wait=0)["status"] == "awaiting_approval"
    assert alice.post(f"/api/runs/{run['id']}/approve").status_code == 202
    assert wait_run(alice, run["id"])["status"] == "completed"
    assert site.count("payment") == 1
