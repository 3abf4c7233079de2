"""Choice gates, and the ambiguity pause when a selector matches more than one element."""

from __future__ import annotations

import time

from tests.conftest import start_run, wait_run


def test_choice_gate_refuses_an_unknown_option_then_clicks_the_chosen_account(alice, site, worker):
    run = start_run(
        alice,
        [
            {"action": "goto", "url": site.url("/twins")},
            {
                "action": "click",
                "selector": "text={{choice}}",
                "gate": {"kind": "choice", "prompt": "Which account?", "options": ["Checking", "Savings"]},
            },
            {"action": "assert_text", "selector": "#account", "text": "Savings"},
        ],
    )

    assert run["status"] == "awaiting_approval", run
    pending = run["pending_step"]
    assert pending["index"] == 2
    assert pending["kind"] == "choice"
    assert pending["trigger"] == "ambiguity"
    assert pending["prompt"] == "Which account?"
    assert pending["options"] == ["Checking", "Savings"]

    unknown = alice.post(f"/api/runs/{run['id']}/approve", {"choice": "Brokerage"})
    missing = alice.post(f"/api/runs/{run['id']}/approve", {})

    assert unknown.status_code == 400
    assert unknown.json()["error"] == "choice_invalid"
    assert missing.status_code == 400
    still = wait_run(alice, run["id"], wait=0)
    assert still["status"] == "awaiting_approval"
    assert still["pending_step"]["approval_id"] == pending["approval_id"]
    assert site.count("account") == 0

    chosen = alice.post(f"/api/runs/{run['id']}/approve", {"choice": "Savings"})
    assert chosen.status_code == 202, chosen.content

    done = wait_run(alice, run["id"])
    assert done["status"] == "completed", done
    assert [e for e in site.events if e["kind"] == "account"] == [{"kind": "account", "name": "Savings"}]
    decided = alice.get("/api/approvals").json()[0]
    assert decided["status"] == "approved"
    assert decided["choice"] == "Savings"


def test_two_identical_delete_buttons_pause_and_the_chosen_row_is_deleted(alice, site, worker):
    run = start_run(
        alice,
        [
            {"action": "goto", "url": site.url("/twins")},
            {"action": "click", "selector": "button.del"},
            {"action": "assert_text", "selector": "#result", "text": "Deleted Invoice 2024-002"},
        ],
    )

    assert run["status"] == "awaiting_approval", run
    pending = run["pending_step"]
    assert pending["index"] == 2
    assert pending["trigger"] == "ambiguity"
    assert pending["kind"] == "choice"
    first, second = pending["options"]
    assert "Invoice 2024-001" in first and "Invoice 2024-002" not in first
    assert "Invoice 2024-002" in second and "Invoice 2024-001" not in second
    assert site.count("delete") == 0

    wrong = alice.post(f"/api/runs/{run['id']}/approve", {"choice": "Delete"})
    assert wrong.status_code == 400
    assert wait_run(alice, run["id"], wait=0)["status"] == "awaiting_approval"

    chosen = alice.post(f"/api/runs/{run['id']}/approve", {"choice": second})
    assert chosen.status_code == 202, chosen.content

    done = wait_run(alice, run["id"])
    assert done["status"] == "completed", done
    assert done["resumed_from"] == 2
    time.sleep(0.3)  # a second, wrong click would have been recorded by now
    assert [e for e in site.events if e["kind"] == "delete"] == [{"kind": "delete", "row": "2"}]
