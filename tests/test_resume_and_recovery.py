"""Resume lands on the same page; when the page is gone, the run restores from its checkpoint;
when a worker dies mid-step, the run is picked up again without repeating a risky step blindly."""

from __future__ import annotations

import os
import signal
from typing import Any

from engine.browser import stop_host_browser
from runs.models import Run, RunEvent
from tests.conftest import Worker, event_types, start_run, wait_run, wait_until, worker_env


def test_resume_in_a_new_worker_process_finds_the_same_page_with_its_js_state(alice, site, worker):
    steps = [
        {"action": "goto", "url": site.url("/jsstate")},
        {"action": "click", "selector": "#inc"},
        {"action": "click", "selector": "#inc"},
        {"action": "click", "selector": "#inc"},
        {"action": "fill", "selector": "#note", "value": "typed, not submitted"},
        {"action": "click", "selector": "#submit", "gate": {"kind": "approval", "prompt": "Submit?"}},
        {"action": "wait_for", "selector": "#submitted"},
        {"action": "extract", "selector": "#submitted", "name": "result"},
    ]
    run = start_run(alice, steps)
    assert run["status"] == "awaiting_approval"
    assert site.count("jsstate") == 0

    # The worker that paused the run goes away entirely; a new worker process resumes it.
    worker.stop()
    new_worker = Worker(worker_env()).start()
    try:
        assert alice.post(f"/api/runs/{run['id']}/approve").status_code == 202
        done = wait_run(alice, run["id"])
    finally:
        new_worker.stop()

    assert done["status"] == "completed", done
    assert done["outputs"]["result"] == "Submitted 3: typed, not submitted"
    assert site.events[-1] == {"kind": "jsstate", "counter": 3, "note": "typed, not submitted"}
    paused = RunEvent.objects.get(run_id=run["id"], type="run.awaiting_approval")
    resumed = RunEvent.objects.get(run_id=run["id"], type="run.resumed_in_place")
    assert resumed.data["pid"] != paused.data["pid"]  # another OS process, same page
    assert "run.restored_from_checkpoint" not in event_types(run["id"])


def test_a_run_whose_browser_died_restores_from_its_checkpoint_at_the_paused_step(alice, site, worker):
    steps = [
        {"action": "goto", "url": site.url("/login")},
        {"action": "fill", "selector": "#user", "value": "alice"},
        {"action": "fill", "selector": "#password", "value": "wonderland"},
        {"action": "click", "selector": "#login"},
        {"action": "goto", "url": site.url("/storage")},
        {"action": "click", "selector": "#bump"},
        {"action": "goto", "url": site.url("/storage")},
        {"action": "wait_for", "selector": "#local", "gate": {"kind": "approval", "prompt": "Go on?"}},
        {"action": "extract", "selector": "#local", "name": "local"},
        {"action": "extract", "selector": "#session", "name": "session"},
        {"action": "goto", "url": site.url("/account")},
        {"action": "extract", "selector": "#welcome", "name": "welcome"},
    ]
    run = start_run(alice, steps)
    assert run["status"] == "awaiting_approval"
    assert run["pending_step"]["index"] == 8

    assert stop_host_browser()  # the host restarted, say: every parked page is gone

    assert alice.post(f"/api/runs/{run['id']}/approve").status_code == 202
    done = wait_run(alice, run["id"])

    assert done["status"] == "completed", done["pending_step"]["prompt"] + done["pending_step"]["page_url"]
    # Storage and cookies came back from the checkpoint: bumped values, still logged in.
    assert done["outputs"] == {"local": "L-value+", "session": "S-value+", "welcome": "Welcome alice"}
    assert site.count("login") == 1  # restored, not replayed from the top
    types = event_types(run["id"])
    assert "run.restored_from_checkpoint" in types
    assert "run.resumed_in_place" not in types
    restored = RunEvent.objects.get(run_id=run["id"], type="run.restored_from_checkpoint")
    assert restored.step_index == 8
    assert restored.data["url"] == site.url("/storage")


def _lease_pid(run_id: str) -> int:
    owner = wait_until(
        lambda: Run.objects.filter(pk=run_id).values_list("lease_owner", flat=True).first(), what="a lease"
    )
    return int(owner.rsplit(":", 2)[1])


def _kill_the_driver(run_id: str, worker: Worker) -> None:
    """SIGKILL the process driving the run (the worker: its threads drive the runs), and start
    the worker again, as serve or systemd would: it takes the run over as it gets ready."""
    pid = _lease_pid(run_id)
    os.kill(pid, signal.SIGKILL)
    if pid == worker.pid:
        assert worker.process is not None
        worker.process.wait(timeout=10)
        worker.start()


def _step_running(run_id: str, index: int) -> bool:
    return Run.objects.get(pk=run_id).steps.get(index=index).status == "running"


def test_a_repeatable_step_interrupted_by_a_killed_worker_is_run_again(alice, site, worker):
    steps = [
        {"action": "goto", "url": site.url("/later?ms=4000")},
        {"action": "wait_for", "selector": "#late", "timeout": 30},
        {"action": "assert_text", "text": "Late"},
    ]
    run = start_run(alice, steps, wait=0)
    wait_until(lambda: _step_running(run["id"], 2), what="step 2 running")
    _kill_the_driver(run["id"], worker)

    done = wait_run(alice, run["id"], wait=45)
    assert done["status"] == "completed", done
    assert "step.repeated_after_interruption" in event_types(run["id"])


def test_a_click_interrupted_by_a_killed_worker_pauses_instead_of_clicking_again(alice, site, worker):
    steps = [
        {"action": "goto", "url": site.url("/later?ms=4000")},
        {"action": "click", "selector": "#late", "timeout": 30},
        {"action": "wait_for", "selector": "#late-done"},
    ]
    run = start_run(alice, steps, wait=0)
    wait_until(lambda: _step_running(run["id"], 2), what="step 2 running")
    _kill_the_driver(run["id"], worker)

    paused = wait_run(alice, run["id"], wait=45)
    assert paused["status"] == "awaiting_approval", paused
    pending = paused["pending_step"]
    assert pending["index"] == 2
    assert pending["trigger"] == "blocked"
    assert pending["options"] == ["retry", "skip", "fail"]
    assert "may or may not have happened" in pending["prompt"]
    assert site.count("late") == 0

    assert alice.post(f"/api/runs/{run['id']}/approve", {"choice": "retry"}).status_code == 202
    done = wait_run(alice, run["id"])
    assert done["status"] == "completed", done
    assert site.count("late") == 1


def counter_with_a_gate(site: Any) -> list[dict[str, Any]]:
    """A click, a pause, a click: the site counts the clicks (a replayed one would show)."""
    return [
        {"action": "goto", "url": site.url("/counter")},
        {"action": "click", "selector": "#click"},
        {"action": "wait_for", "selector": "#clicks", "gate": {"kind": "approval", "prompt": "More?"}},
        {"action": "click", "selector": "#click"},
        {"action": "extract", "selector": "#clicks", "name": "clicks"},
    ]


def test_parked_pages_past_the_host_cap_are_checkpointed_and_restored_on_resume(alice, site, worker):
    worker.stop()
    capped = Worker(worker_env(TWIN_MAX_PARKED_PAGES="2")).start()
    try:
        steps = counter_with_a_gate(site)
        runs = [start_run(alice, steps) for _ in range(3)]
        assert [r["status"] for r in runs] == ["awaiting_approval"] * 3
        oldest = runs[0]["id"]
        wait_until(lambda: "page.evicted" in event_types(oldest), what="the oldest page evicted")
        assert all("page.evicted" not in event_types(r["id"]) for r in runs[1:])

        assert alice.post(f"/api/runs/{oldest}/approve").status_code == 202
        done = wait_run(alice, oldest)
        assert done["status"] == "completed", done
        assert "run.restored_from_checkpoint" in event_types(oldest)
        assert site.count("click") == 4  # three first clicks, one after the resume: nothing replayed
    finally:
        capped.stop()


def test_a_run_whose_whole_worker_died_is_picked_up_by_the_sweeper(alice, site, worker):
    steps = [
        {"action": "goto", "url": site.url("/later?ms=3000")},
        {"action": "wait_for", "selector": "#late", "timeout": 30},
        {"action": "extract", "selector": "#late", "name": "button"},
    ]
    run = start_run(alice, steps, wait=0)
    wait_until(lambda: _step_running(run["id"], 2), what="step 2 running")

    # Every process of the worker dies at once: no redelivery, the message stays unacknowledged.
    os.killpg(worker.pid, signal.SIGKILL)
    worker.process.wait(timeout=10)
    assert Run.objects.get(pk=run["id"]).status == "running"

    replacement = Worker(worker_env()).start()
    try:
        from runs.tasks import sweep_runs_task

        sweep_runs_task.delay()
        done = wait_run(alice, run["id"], wait=45)
    finally:
        replacement.stop()
    assert done["status"] == "completed", done
    assert done["outputs"] == {"button": "Late"}
    assert "step.repeated_after_interruption" in event_types(run["id"])
