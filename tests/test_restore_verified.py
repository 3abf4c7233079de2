"""A restore from the checkpoint brings back what the checkpoint cannot hold (what earlier steps
typed, selected and ticked on the page) and checks the page against what the approver saw before
the approved step acts: the approved page is the page acted on, or the run asks again."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from typing import Any

import pytest

from approvals.models import Approval
from engine.browser import _read_state, stop_host_browser
from runs.models import RunEvent
from tests.conftest import Worker, event_types, start_run, wait_run, wait_until, worker_env

SECRET = "s3cr3t-Restore-value-77"
CODE = "482913"


def _form_steps(site: Any, value: str = "val-cr0") -> list[dict[str, Any]]:
    return [
        {"action": "goto", "url": site.url("/restore-form")},
        {"action": "fill", "selector": "#v", "value": value},
        {"action": "select", "selector": "#plan", "value": "gold"},
        {"action": "check", "selector": "#agree"},
        {"action": "click", "selector": "#submit", "gate": {"kind": "approval", "prompt": "Submit?"}},
        {"action": "wait_for", "selector": "#received"},
    ]


def _next_pause(alice: Any, run_id: str, *, after: str) -> dict[str, Any]:
    """The run once it has paused again, at a pause other than ``after``."""
    return dict(
        wait_until(
            lambda: (
                (r := wait_run(alice, run_id, wait=1))["pending_step"]
                and r["pending_step"]["approval_id"] != after
                and r
            ),
            timeout=40,
            what="a new pause",
        )
    )


def _kill_chromium() -> None:
    state = _read_state()
    assert state is not None
    os.kill(state.pid, signal.SIGKILL)
    wait_until(lambda: not _alive(state.pid), what="Chromium gone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


def _approve_and_check_the_restored_run_submits_what_was_approved(alice: Any, site: Any, run_id: str) -> None:
    assert alice.post(f"/api/runs/{run_id}/approve").status_code == 202
    done = wait_run(alice, run_id, wait=60)

    assert done["status"] == "completed", done["pending_step"]
    submits = [e for e in site.events if e["kind"] == "restore_submit"]
    # What the approver saw in the screenshot is what the site received.
    assert submits == [{"kind": "restore_submit", "v": "val-cr0", "code": "", "plan": "gold", "agree": "yes"}]
    types = event_types(run_id)
    assert "run.restored_from_checkpoint" in types
    assert "run.state_verified" in types
    assert types.index("run.restored_from_checkpoint") < types.index("run.state_verified")
    verified = RunEvent.objects.get(run_id=run_id, type="run.state_verified")
    assert verified.step_index == 5
    assert verified.data["refilled"] == [2, 3, 4]
    assert verified.data["compared"]["fields"] == [2, 3, 4]
    assert verified.data["compared"]["url"] is True
    assert verified.data["compared"]["element"] == {"step": 5, "count": 1}


@pytest.mark.parametrize("lost", ["browser_restarted", "chromium_killed"])
def test_after_the_browser_is_lost_the_approved_submit_carries_what_the_approver_saw(
    alice, site, worker, lost
):
    run = start_run(alice, _form_steps(site))
    assert run["status"] == "awaiting_approval", run
    assert run["pending_step"]["index"] == 5

    if lost == "browser_restarted":
        assert stop_host_browser()
    else:
        _kill_chromium()

    _approve_and_check_the_restored_run_submits_what_was_approved(alice, site, run["id"])


def test_a_page_evicted_past_the_cap_is_restored_with_what_was_typed(alice, site, worker):
    worker.stop()
    capped = Worker(worker_env(TWIN_MAX_PARKED_PAGES="1")).start()
    try:
        run = start_run(alice, _form_steps(site))
        assert run["status"] == "awaiting_approval", run
        other = start_run(alice, [{"action": "goto", "url": site.url("/counter")}, *_form_steps(site)[4:5]])
        assert other["status"] == "awaiting_approval"
        wait_until(lambda: "page.evicted" in event_types(run["id"]), what="the first page evicted")

        _approve_and_check_the_restored_run_submits_what_was_approved(alice, site, run["id"])
    finally:
        capped.stop()


def test_a_one_time_input_typed_before_the_approval_cannot_be_typed_again_so_the_run_asks_again(
    alice, site, worker
):
    steps = [
        {"action": "goto", "url": site.url("/restore-form")},
        {
            "action": "fill",
            "selector": "#code",
            "value": "{{input}}",
            "gate": {"kind": "input", "prompt": "Code?"},
        },
        {"action": "click", "selector": "#submit", "gate": {"kind": "approval", "prompt": "Submit?"}},
        {"action": "wait_for", "selector": "#received"},
    ]
    run = start_run(alice, steps)
    assert run["pending_step"]["index"] == 2
    assert alice.post(f"/api/runs/{run['id']}/approve", {"input": CODE}).status_code == 202
    at_gate = wait_until(
        lambda: (
            (r := wait_run(alice, run["id"], wait=1))["pending_step"]
            and r["pending_step"]["index"] == 3
            and r
        ),
        timeout=40,
        what="the approval pause",
    )
    approved = Approval.objects.get(pk=at_gate["pending_step"]["approval_id"])

    assert stop_host_browser()
    assert alice.post(f"/api/runs/{run['id']}/approve").status_code == 202
    again = _next_pause(alice, run["id"], after=str(approved.pk))

    pending = again["pending_step"]
    assert again["status"] == "awaiting_approval"
    assert pending["index"] == 3
    assert pending["trigger"] == "blocked"
    assert pending["kind"] == "choice"
    assert pending["options"] == ["retry", "skip", "fail"]
    assert "the page changed since the decision" in pending["prompt"]
    assert "one-time input" in pending["prompt"]
    assert site.count("restore_submit") == 0  # the approved click never ran on a page without the code
    assert "run.state_verified" not in event_types(run["id"])
    # The approval was for a page that is gone: it is spent, not carried over to the new pause.
    approved.refresh_from_db()
    assert approved.consumed_at is not None
    # The code is in no digest and no event (neither in the clear nor as a plain hash).
    leaks = (CODE, hashlib.sha256(CODE.encode()).hexdigest())
    for state in Approval.objects.filter(run_id=run["id"]).values_list("page_state", flat=True):
        assert state is not None and not any(leak in json.dumps(state) for leak in leaks)
    for data in RunEvent.objects.filter(run_id=run["id"]).values_list("data", flat=True):
        assert not any(leak in json.dumps(data) for leak in leaks)

    # Retrying on the changed page needs a fresh approval of the step on the page as it is now.
    assert alice.post(f"/api/runs/{run['id']}/approve", {"choice": "retry"}).status_code == 202
    asked = wait_until(
        lambda: (
            (r := wait_run(alice, run["id"], wait=1))["pending_step"]
            and r["pending_step"]["approval_id"] != pending["approval_id"]
            and r
        ),
        timeout=40,
        what="the step's approval asked again",
    )
    assert asked["pending_step"]["index"] == 3
    assert asked["pending_step"]["trigger"] == "approval"
    assert site.count("restore_submit") == 0


def test_a_page_that_changed_while_paused_pauses_again_with_a_new_screenshot_and_acts_on_nothing(
    alice, site, worker
):
    run = start_run(alice, _form_steps(site))
    first = run["pending_step"]
    assert first["screenshot_url"]

    assert stop_host_browser()
    site.set_toggle("restore_changed", True)  # the site changed: no #submit on the page any more
    assert alice.post(f"/api/runs/{run['id']}/approve").status_code == 202
    again = _next_pause(alice, run["id"], after=first["approval_id"])

    pending = again["pending_step"]
    assert pending["index"] == 5
    assert pending["trigger"] == "blocked"
    assert "the page changed since the decision" in pending["prompt"]
    assert "#submit" in pending["prompt"]
    assert pending["screenshot_url"] and pending["screenshot_url"] != first["screenshot_url"]
    new = Approval.objects.get(pk=pending["approval_id"])
    old = Approval.objects.get(pk=first["approval_id"])
    assert new.screenshot_sha256 and new.screenshot_sha256 != old.screenshot_sha256
    assert site.count("restore_submit") == 0
    assert "run.state_verified" not in event_types(run["id"])
    changed = RunEvent.objects.filter(run_id=run["id"], type="run.state_changed").get()
    assert changed.data["differences"] == ["element"]


def test_a_secret_typed_before_the_approval_is_typed_again_and_never_stored(alice, site, worker):
    assert alice.post("/api/secrets", {"name": "restore", "value": SECRET}).status_code == 201
    run = start_run(alice, _form_steps(site, value="{{secrets.restore}}"))
    assert run["status"] == "awaiting_approval", run

    assert stop_host_browser()
    assert alice.post(f"/api/runs/{run['id']}/approve").status_code == 202
    done = wait_run(alice, run["id"], wait=60)

    assert done["status"] == "completed", done["pending_step"]
    assert [e["v"] for e in site.events if e["kind"] == "restore_submit"] == [SECRET]
    assert "run.state_verified" in event_types(run["id"])
    # The pause kept keyed digests of the field values: neither the value nor its plain hash.
    approval = Approval.objects.get(run_id=run["id"], step_index=5)
    state = approval.page_state
    assert state is not None
    stored = json.dumps(state)
    assert state["fields"].keys() == {"2", "3", "4"}
    assert state["digest"]
    for leak in (SECRET, hashlib.sha256(SECRET.encode()).hexdigest(), "val-cr0"):
        assert leak not in stored
    for event in RunEvent.objects.filter(run_id=run["id"]):
        assert SECRET not in json.dumps(event.data)


def test_only_the_fields_set_since_the_click_that_loaded_the_page_are_typed_again(alice, site, worker):
    steps = [
        {"action": "goto", "url": site.url("/login")},
        {"action": "fill", "selector": "#user", "value": "alice"},
        {"action": "fill", "selector": "#password", "value": "wonderland"},
        {"action": "click", "selector": "#login"},  # loads /account
        {"action": "click", "selector": "#to-otp"},  # loads /otp: the document the approver sees
        {"action": "fill", "selector": "#otp", "value": "000000"},
        {"action": "click", "selector": "#verify", "gate": {"kind": "approval", "prompt": "Verify?"}},
        {"action": "wait_for", "selector": "#error"},
    ]
    run = start_run(alice, steps)
    assert run["pending_step"]["index"] == 7, run

    assert stop_host_browser()
    assert alice.post(f"/api/runs/{run['id']}/approve").status_code == 202
    done = wait_run(alice, run["id"], wait=60)

    assert done["status"] == "completed", done["pending_step"]
    assert site.count("login") == 1  # the login form was on another document: not typed again
    assert site.count("otp_bad") == 1  # the code typed again on /otp reached the site
    restored = RunEvent.objects.get(run_id=run["id"], type="run.restored_from_checkpoint")
    assert restored.data["document_step"] == 5
    verified = RunEvent.objects.get(run_id=run["id"], type="run.state_verified")
    assert verified.data is not None
    assert verified.data["refilled"] == [6]
    assert verified.data["compared"]["fields"] == [6]


def test_a_resume_in_place_types_nothing_again(alice, site, worker):
    run = start_run(alice, _form_steps(site))
    assert run["status"] == "awaiting_approval", run

    assert alice.post(f"/api/runs/{run['id']}/approve").status_code == 202
    done = wait_run(alice, run["id"], wait=60)

    assert done["status"] == "completed", done["pending_step"]
    assert [e["v"] for e in site.events if e["kind"] == "restore_submit"] == ["val-cr0"]
    types = event_types(run["id"])
    assert "run.resumed_in_place" in types
    assert "run.restored_from_checkpoint" not in types
    assert "run.state_verified" not in types


def test_a_restored_page_at_another_address_gets_nothing_typed_and_pauses_again(alice, site, worker):
    assert alice.post("/api/secrets", {"name": "restore", "value": SECRET}).status_code == 201
    run = start_run(alice, _form_steps(site, value="{{secrets.restore}}"))
    first = run["pending_step"]

    assert stop_host_browser()
    site.set_toggle("restore_moved", True)  # the form now redirects to /login
    assert alice.post(f"/api/runs/{run['id']}/approve").status_code == 202
    again = _next_pause(alice, run["id"], after=first["approval_id"])

    pending = again["pending_step"]
    assert pending["trigger"] == "blocked"
    assert "the page changed since the decision" in pending["prompt"]
    assert "another address" in pending["prompt"]
    assert pending["page_url"] == site.url("/login")
    changed = RunEvent.objects.get(run_id=run["id"], type="run.state_changed")
    assert changed.data is not None
    assert changed.data["refilled"] == []  # not even the secret was typed into the other page
    assert "url" in changed.data["differences"]
    assert site.count("restore_submit") == 0
