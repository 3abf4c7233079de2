"""What a step's bookkeeping no longer waits for: the loop hop for Playwright's client-side reads
(engine.bridge.LOCAL) and Redis for an event's fan-out (twin_site.realtime.send_soon), and that
neither changes what callers get: the same proxies, the same messages in the same order."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from engine import bridge
from engine.browser import CHROMIUM_FLAGS, chromium_path
from runs import events
from twin_site import realtime
from twin_site.realtime import run_channel


@pytest.fixture(scope="module")
def loop_browser() -> Iterator[tuple[bridge.Loop, Any]]:
    """A real Chromium driven through Playwright's async API on a bridge loop, as a worker's is."""
    from playwright.async_api import async_playwright

    loop = bridge.Loop(name="test-bridge-loop")
    playwright = bridge.wrap(loop.run(lambda: async_playwright().start()), loop)
    # (Playwright gives it a fresh profile directory of its own.)
    browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
    try:
        yield loop, browser
    finally:
        browser.close()
        playwright.stop()
        loop.stop()


class Hops:
    """Counts the calls that go to the loop and wait for it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, loop: bridge.Loop) -> None:
        self.count = 0
        original = loop.run

        def run(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original(fn, *args, **kwargs)

        monkeypatch.setattr(loop, "run", run)


def test_reading_a_page_and_building_locators_does_not_wait_for_the_loop(
    loop_browser: tuple[bridge.Loop, Any], site: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop, browser = loop_browser
    context = browser.new_context()
    page = context.new_page()
    page.goto(site.url("/counter"))
    hops = Hops(monkeypatch, loop)

    url = page.url
    locator = page.locator("#click").first
    same_page = locator.page
    connected, closed = browser.is_connected(), page.is_closed()

    assert hops.count == 0
    assert url == site.url("/counter")
    assert same_page is page  # the same proxy for the same page, as with the sync API
    assert (connected, closed) == (True, False)
    # What needs the page still goes through the loop, and gives what the sync API would.
    assert locator.inner_text() == "Click"
    assert hops.count == 1
    context.close()


def test_an_events_fan_out_does_not_wait_for_redis_and_keeps_the_order(
    redis_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []
    release = threading.Event()
    original = realtime.publish

    def slow_publish(channel: str, message: dict[str, Any]) -> None:
        release.wait(10)  # a Redis that does not answer yet
        sent.append(message["n"])
        original(channel, message)

    monkeypatch.setattr(realtime, "publish", slow_publish)
    monkeypatch.setattr(events, "publish", slow_publish)
    listener = redis.Redis.from_url(redis_server).pubsub()
    listener.subscribe(run_channel("fan-out-order"))
    assert listener.get_message(timeout=2)["type"] == "subscribe"

    def write() -> None:
        for n in range(30):
            events.fan_out("fan-out-order", 1, {"type": "step.finished", "n": n})

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(5)

    assert not writer.is_alive()  # the writer went on while Redis had not answered
    assert sent == []
    release.set()
    assert realtime.flush(timeout=10)
    received: list[int] = []
    deadline = time.monotonic() + 10
    while len(received) < 30 and time.monotonic() < deadline:
        message = listener.get_message(timeout=1)
        if message and message["type"] == "message":
            received.append(json.loads(message["data"])["n"])
    listener.close()
    assert sent == list(range(30))
    assert received == list(range(30))  # a ?wait= waiter reads the newest status last


# -- a step's done rides on the next step's start -----------------------------------------------------
def _running_run(alice: Any) -> Any:
    from runs.models import Run, RunStatus, Step, StepStatus
    from runs.services import run_create

    steps = [
        {"action": "goto", "url": "http://127.0.0.1:9/a"},
        {"action": "goto", "url": "http://127.0.0.1:9/b"},
    ]
    run = run_create(tenant=alice.tenant, created_by=alice.user, goal="g", url="", steps=steps)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_owner="me", current_step=1)
    Step.objects.filter(run=run, index=1).update(status=StepStatus.RUNNING)
    run.refresh_from_db()
    return run


def test_a_steps_done_is_written_with_the_next_steps_start_in_the_trail_order(
    alice: Any, private_urls: Any
) -> None:
    from django.utils import timezone

    from engine.executor import Execution
    from runs.models import RunEvent, Step

    run = _running_run(alice)
    execution = Execution(run=run, owner="me", reason="start", first_index=1)
    done_at = timezone.now()
    execution.finish_due = (1, {"locator": None, "healed_by": "", "finished_at": done_at})

    assert execution.straight(2)
    execution.start_step(2, run.program[1], renew=True)

    assert execution.finish_due is None
    assert [(s.index, s.status) for s in Step.objects.filter(run=run).order_by("index")] == [
        (1, "done"),
        (2, "running"),
    ]
    assert Step.objects.get(run=run, index=1).finished_at == done_at  # when its action returned
    trail = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", "step_index"))
    assert trail[-2:] == [("step.finished", 1), ("step.started", 2)]
    run.refresh_from_db()
    assert run.current_step == 2 and run.lease_until is not None


def test_a_run_no_longer_ours_keeps_the_done_step_and_starts_nothing(alice: Any, private_urls: Any) -> None:
    from django.utils import timezone

    from engine.executor import Execution, Stop
    from runs.models import Run, Step

    run = _running_run(alice)
    Run.objects.filter(pk=run.pk).update(lease_owner="another worker")  # its lease was taken over
    execution = Execution(run=run, owner="me", reason="start", first_index=1)
    execution.finish_due = (1, {"locator": None, "healed_by": "", "finished_at": timezone.now()})

    with pytest.raises(Stop):
        execution.start_step(2, run.program[1], renew=True)

    assert [(s.index, s.status) for s in Step.objects.filter(run=run).order_by("index")] == [
        (1, "done"),
        (2, "queued"),
    ]


def test_an_answer_nobody_reads_is_let_go_on_the_loop_and_a_disposal_is_not_waited_for(
    loop_browser: tuple[bridge.Loop, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    loop, browser = loop_browser
    context = browser.new_context()
    page = context.new_page()
    try:
        # A look asked for early, then not needed (the step went another way): once it has come,
        # its handle goes to the function given, on the loop.
        dropped = threading.Event()
        seen: list[Any] = []
        early = bridge.soon(page, lambda target: target.evaluate_handle("() => ({answer: 42})"))

        def let_go(handle: Any) -> None:
            seen.append(handle)
            dropped.set()

        early.drop(let_go)
        assert dropped.wait(10)
        assert type(seen[0]).__name__ == "JSHandle"

        # A handle's disposal is sent without waiting for the loop; the loop does it, in order.
        handle = page.evaluate_handle("() => ({answer: 42})")
        hops = Hops(monkeypatch, loop)
        bridge.let_go(handle, lambda target: target.dispose())
        assert hops.count == 0
        with pytest.raises(Exception, match=r"disposed|has been closed"):
            handle.json_value()
        # A look that is read gives the proxied answer, as a call through the proxy would.
        assert bridge.soon(page, lambda target: target.evaluate("() => 6 * 7")).result(timeout=10) == 42
    finally:
        context.close()


def test_a_step_boundary_reads_the_trail_head_once_and_writes_both_events_in_one_insert(
    alice: Any, private_urls: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from engine.executor import Execution
    from runs.audit import verify_run
    from runs.models import Run, RunEvent

    run = _running_run(alice)
    execution = Execution(run=run, owner="me", reason="start", first_index=1)
    execution.finish_due = (1, {"locator": None, "healed_by": "", "finished_at": timezone.now()})
    sent: list[dict[str, Any]] = []
    events.event_subscribers.append((99, lambda run, event, data: sent.append({"pk": event.pk, **data})))
    try:
        with CaptureQueriesContext(connection) as queries:
            execution.start_step(2, run.program[1], renew=True)
    finally:
        events.event_subscribers.pop()

    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    writes = [s for s in statements if s in {"SELECT", "INSERT", "UPDATE"}]
    # The run's head read (and locked) once; step 1 done; the lease; step 2 running; both events
    # in one insert; the run's head once.
    assert writes == ["SELECT", "UPDATE", "UPDATE", "UPDATE", "INSERT", "UPDATE"], statements
    trail = list(RunEvent.objects.filter(run=run).order_by("seq"))
    assert [(e.type, e.step_index) for e in trail][-2:] == [("step.finished", 1), ("step.started", 2)]
    run = Run.objects.get(pk=run.pk)
    assert list(verify_run(run.pk, run.audit_seq, run.audit_head, trail)) == []  # the chain holds
    # Subscribers heard each event once it had its row, in order.
    assert [(s["pk"], s["status"]) for s in sent] == [(trail[-2].pk, "done"), (trail[-1].pk, "running")]


def test_an_error_in_a_batched_block_writes_none_of_its_events(alice: Any, private_urls: Any) -> None:
    from django.db import transaction

    from runs.models import Run, RunEvent

    run = _running_run(alice)
    before = RunEvent.objects.filter(run=run).count()
    with pytest.raises(ZeroDivisionError), transaction.atomic(), events.batched(run):
        events.record_event(run, "note.one")
        events.record_event(run, "note.two")
        1 / 0  # noqa: B018
    assert RunEvent.objects.filter(run=run).count() == before
    with transaction.atomic(), events.batched(run):
        events.record_event(run, "note.one")
        events.record_event(run, "note.two")
    run = Run.objects.get(pk=run.pk)
    trail = list(RunEvent.objects.filter(run=run).order_by("seq"))
    assert [e.type for e in trail][-2:] == ["note.one", "note.two"]
    assert run.audit_seq == trail[-1].seq and run.audit_head == trail[-1].hash
