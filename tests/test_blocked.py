"""A step that cannot proceed pauses `blocked`; the person retries, skips or fails it."""

from __future__ import annotations

from tests.conftest import start_run, wait_run, wait_until


def flaky_program(site):
    return [
        {"action": "goto", "url": site.url("/flaky")},
        {"action": "click", "selector": "#go", "timeout": 1},
        {"action": "goto", "url": site.url("/counter")},
    ]


def start_blocked(alice, site):
    run = start_run(alice, flaky_program(site))
    assert run["status"] == "awaiting_approval", run
    pending = run["pending_step"]
    assert pending["index"] == 2
    assert pending["trigger"] == "blocked"
    assert pending["kind"] == "choice"
    assert pending["options"] == ["retry", "skip", "fail"]
    assert "#go" in pending["prompt"]
    return run


def test_missing_button_pauses_blocked_and_retry_clicks_it_once_the_site_is_ready(alice, site, worker):
    run = start_blocked(alice, site)
    assert site.count("go") == 0

    site.set_toggle("ready", True)
    retried = alice.post(f"/api/runs/{run['id']}/approve", {"choice": "retry"})
    assert retried.status_code == 202, retried.content

    done = wait_run(alice, run["id"])
    assert done["status"] == "completed", done
    assert done["resumed_from"] == 2
    assert [s["status"] for s in done["steps"]] == ["done", "done", "done"]
    assert site.count("go") == 1


def test_retry_while_the_site_is_still_not_ready_pauses_blocked_again(alice, site, worker):
    run = start_blocked(alice, site)
    first = run["pending_step"]["approval_id"]

    assert alice.post(f"/api/runs/{run['id']}/approve", {"choice": "retry"}).status_code == 202

    again = wait_until(
        lambda: (
            (r := wait_run(alice, run["id"], wait=5))["status"] == "awaiting_approval"
            and r["pending_step"]["approval_id"] != first
            and r
        ),
        timeout=30,
        what="the run to pause again",
    )
    assert again["pending_step"]["index"] == 2
    assert again["pending_step"]["trigger"] == "blocked"
    assert again["pending_step"]["options"] == ["retry", "skip", "fail"]
    assert site.count("go") == 0


def test_retry_reopens_the_page_without_posting_its_form_again(alice, site, worker):
    run = start_run(
        alice,
        [
            {"action": "goto", "url": site.url("/pay")},
            {"action": "click", "selector": "#pay"},
            {"action": "click", "selector": "#print-receipt", "timeout": 1},
        ],
    )
    assert run["status"] == "awaiting_approval", run
    assert run["pending_step"]["trigger"] == "blocked"
    assert site.count("payment") == 1

    assert alice.post(f"/api/runs/{run['id']}/approve", {"choice": "retry"}).status_code == 202

    again = wait_until(
        lambda: (
            (r := wait_run(alice, run["id"], wait=5))["status"] == "awaiting_approval"
            and r["pending_step"]["approval_id"] != run["pending_step"]["approval_id"]
            and r
        ),
        timeout=30,
        what="the run to pause again",
    )
    assert again["pending_step"]["index"] == 3
    assert site.count("payment") == 1


def test_skip_leaves_the_blocked_step_undone_and_the_run_goes_on(alice, site, worker):
    run = start_blocked(alice, site)

    skipped = alice.post(f"/api/runs/{run['id']}/approve", {"choice": "skip"})
    assert skipped.status_code == 202, skipped.content

    done = wait_run(alice, run["id"])
    assert done["status"] == "completed", done
    assert [s["status"] for s in done["steps"]] == ["done", "skipped", "done"]
    assert site.count("go") == 0


def test_fail_ends_the_run_failed_with_a_message(alice, site, worker):
    run = start_blocked(alice, site)

    failed = alice.post(f"/api/runs/{run['id']}/approve", {"choice": "fail"})
    assert failed.status_code == 202, failed.content

    done = wait_run(alice, run["id"])
    assert done["status"] == "failed", done
    assert "step 2" in done["error"]
    assert [s["status"] for s in done["steps"]][:2] == ["done", "failed"]
    assert done["steps"][2]["status"] != "done"
    assert site.count("go") == 0


def test_assert_text_waits_for_text_that_comes_later_and_pauses_blocked_for_text_that_never_does(
    alice, site, worker
):
    # The button appears 600 ms after the page loaded; its label is checked, then the whole page's
    # text with a newline where the page has a space (whitespace runs count as one).
    run = start_run(
        alice,
        [
            {"action": "goto", "url": site.url("/later?ms=600")},
            {"action": "assert_text", "selector": "#spot", "text": "Late", "timeout": 10},
            {"action": "assert_text", "text": "Clicks:\n0", "timeout": 2},
        ],
    )
    assert run["status"] == "awaiting_approval", run  # /later has no "Clicks: 0"
    pending = run["pending_step"]
    assert pending["index"] == 3
    assert pending["trigger"] == "blocked"
    assert "the text 'Clicks:\\n0' did not appear on the page within 2 s" in pending["prompt"]
    assert [s["status"] for s in run["steps"]][:2] == ["done", "done"]

    counted = start_run(
        alice,
        [
            {"action": "goto", "url": site.url("/counter")},
            {"action": "assert_text", "text": "Clicks:\n   0", "timeout": 2},
        ],
    )
    assert counted["status"] == "completed", counted["pending_step"]
