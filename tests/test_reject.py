"""Rejecting a pause: the run ends `rejected` and the gated step never happens."""

from __future__ import annotations

import time

from tests.conftest import event_types, start_run, wait_run


def pay_program(site):
    return [
        {"action": "goto", "url": site.url("/pay")},
        {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay $42?"}},
        {"action": "assert_text", "text": "Payment complete"},
    ]


def test_rejected_payment_is_never_made_and_a_later_approve_gets_409(alice, site, worker):
    run = start_run(alice, pay_program(site))
    assert run["status"] == "awaiting_approval"
    assert run["pending_step"]["index"] == 2

    rejected = alice.post(f"/api/runs/{run['id']}/reject")

    assert rejected.status_code == 200, rejected.content
    assert rejected["X-Twin-Status"] == "rejected"
    body = rejected.json()
    assert body["status"] == "rejected"
    assert body["pending_step"] is None
    assert [s["status"] for s in body["steps"]][:2] == ["done", "skipped"]
    assert body["steps"][2]["status"] != "done"

    # Give a stray resume every chance to click "Pay" before we look.
    time.sleep(1.5)
    assert site.count("payment") == 0
    after = wait_run(alice, run["id"], wait=0)
    assert after["status"] == "rejected"
    assert after["steps"][1]["status"] == "skipped"

    late = alice.post(f"/api/runs/{run['id']}/approve")
    assert late.status_code == 409
    assert late.json()["error"] == "conflict"
    assert late["X-Twin-Status"] == "rejected"
    time.sleep(1)
    assert site.count("payment") == 0
    assert wait_run(alice, run["id"], wait=0)["status"] == "rejected"
    assert "run.resumed" not in event_types(run["id"])


def test_rejection_reason_is_kept_and_shown_in_the_approvals_list(alice, site, worker):
    run = start_run(alice, pay_program(site))
    assert run["status"] == "awaiting_approval"

    rejected = alice.post(f"/api/runs/{run['id']}/reject", {"reason": "Wrong amount, should be $24"})
    assert rejected.status_code == 200, rejected.content
    assert "Wrong amount, should be $24" in rejected.json()["error"]

    approvals = alice.get("/api/approvals").json()
    mine = [a for a in approvals if a["run_id"] == run["id"]]
    assert len(mine) == 1
    assert mine[0]["status"] == "rejected"
    assert mine[0]["note"] == "Wrong amount, should be $24"
    assert mine[0]["decided_by"] == "alice"
    assert mine[0]["index"] == 2
    assert alice.get("/api/approvals?status=pending").json() == []


def test_a_second_reject_gets_409_and_keeps_the_first_reason(alice, site, worker):
    run = start_run(alice, pay_program(site))
    assert alice.post(f"/api/runs/{run['id']}/reject", {"reason": "first"}).status_code == 200

    again = alice.post(f"/api/runs/{run['id']}/reject", {"reason": "second"})

    assert again.status_code == 409
    assert again.json()["error"] == "conflict"
    notes = [a["note"] for a in alice.get("/api/approvals").json() if a["run_id"] == run["id"]]
    assert notes == ["first"]


def test_a_viewer_cannot_reject_and_another_tenant_cannot_see_the_run(alice, bob, carol, site, worker):
    run = start_run(alice, pay_program(site))
    assert run["status"] == "awaiting_approval"

    by_viewer = bob.post(f"/api/runs/{run['id']}/reject", {"reason": "nope"})
    by_stranger = carol.post(f"/api/runs/{run['id']}/reject", {"reason": "nope"})

    assert by_viewer.status_code == 403
    assert by_stranger.status_code == 404
    still = wait_run(alice, run["id"], wait=0)
    assert still["status"] == "awaiting_approval"
    assert still["pending_step"]["index"] == 2
    assert [a["status"] for a in alice.get("/api/approvals").json()] == ["pending"]
