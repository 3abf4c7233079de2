from __future__ import annotations

from tests.conftest import event_types, in_browser_thread, start_run, wait_run, wait_until


def pay_program(site):
    return [
        {"action": "goto", "url": site.url("/pay")},
        {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay $42?"}},
        {"action": "assert_text", "text": "Payment complete"},
        {"action": "extract", "selector": "#receipt", "name": "receipt_id"},
    ]


def test_approved_payment_resumes_at_the_paused_step_and_completes(alice, site, worker):
    run = start_run(alice, pay_program(site))

    assert run["status"] == "awaiting_approval"
    assert run["pending_step"]["index"] == 2
    assert run["pending_step"]["prompt"] == "Pay $42?"
    assert run["pending_step"]["page_url"] == site.url("/pay")
    assert [s["status"] for s in run["steps"]] == ["done", "awaiting_approval", "queued", "queued"]
    assert site.count("payment") == 0

    approved = alice.post(f"/api/runs/{run['id']}/approve")
    assert approved.status_code == 202
    assert approved["X-Twin-Status"] in {"running", "completed"}

    done = wait_run(alice, run["id"])
    assert done["status"] == "completed"
    assert done["resumed_from"] == 2
    assert done["outputs"] == {"receipt_id": "R-0001"}
    assert site.count("payment") == 1
    assert "run.resumed_in_place" in event_types(run["id"])


def _live_contexts() -> set[str]:
    from engine.browser import session

    return session().context_ids()


def test_a_finished_run_leaves_no_page_behind_in_the_host_browser(alice, site, worker):
    before = in_browser_thread(_live_contexts)
    run = start_run(alice, pay_program(site))
    parked = in_browser_thread(_live_contexts)
    assert len(parked - before) == 1  # the paused run's own context, parked

    alice.post(f"/api/runs/{run['id']}/approve")
    assert wait_run(alice, run["id"])["status"] == "completed"

    # The page goes as the run ends (the status may be visible a moment before it is closed).
    wait_until(lambda: in_browser_thread(_live_contexts) == before, what="the run's page closed")
