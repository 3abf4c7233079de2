"""The live view: a run's page streamed over a websocket while someone watches, and an approver's take-over.

Real worker, real Chromium, real Redis; the consumer runs in this process under a
``WebsocketCommunicator``, talking CDP to the page the worker parked.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from engine import liveview
from engine.browser import page_ws_url
from runs.consumers import LiveViewConsumer
from runs.models import Run, RunEvent, RunStatus
from tests.conftest import Persona, event_types, start_run, wait_run, wait_until

SECRET = "s3cret pass"


def anim_program(site: Any) -> list[dict[str, Any]]:
    return [
        {"action": "goto", "url": site.url("/anim")},
        {"action": "click", "selector": "#title", "gate": {"kind": "approval", "prompt": "Watch the box?"}},
    ]


def note_program(site: Any) -> list[dict[str, Any]]:
    return [
        {"action": "goto", "url": site.url("/jsstate")},
        {
            "action": "click",
            "selector": "#submit",
            "gate": {"kind": "approval", "prompt": "Submit the note?"},
        },
        {"action": "assert_text", "selector": "#submitted", "text": "Submitted"},
        {"action": "extract", "selector": "#submitted", "name": "submitted"},
    ]


def communicator(persona: Persona | None, run_id: str) -> WebsocketCommunicator:
    from django.contrib.auth.models import AnonymousUser

    comm = WebsocketCommunicator(LiveViewConsumer.as_asgi(), f"/ws/runs/{run_id}/live")
    comm.scope["user"] = persona.user if persona is not None else AnonymousUser()
    comm.scope["url_route"] = {"args": (), "kwargs": {"run_id": uuid.UUID(run_id)}}
    return comm


async def next_message(
    comm: WebsocketCommunicator, kind: str, *, timeout: float = 30, frames: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The next message of this kind; frames met on the way are acked (and kept, if asked).
    Generous: it returns as soon as the message comes (a loaded machine's first frame took >15 s)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {kind!r} message within {timeout} s")
        message: dict[str, Any] = await comm.receive_json_from(timeout=remaining)
        if message["type"] == "frame":
            await comm.send_json_to({"type": "ack"})
            if frames is not None:
                frames.append(message)
        if message["type"] == kind:
            return message


async def page_eval(run_id: str, expression: str) -> Any:
    """Evaluate in the run's page over a CDP connection of our own."""
    target_id = await database_sync_to_async(lambda: Run.objects.get(pk=run_id).target_id)()
    url = page_ws_url(target_id)
    assert url is not None
    page = await liveview.PageConnection.open(url)
    try:
        answer = await page.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
    finally:
        await page.close()
    return answer["result"].get("value")


async def wait_page(run_id: str, expression: str, expected: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = await page_eval(run_id, expression)
        if value == expected:
            return
        await sync_to_async(time.sleep)(0.1)
    raise AssertionError(f"{expression} is {value!r}, not {expected!r}")


async def click_the_note(comm: Any, run_id: str) -> None:
    """Click into the note field where the page shows it, as a person would on the canvas."""
    box = await page_eval(
        run_id,
        "(() => { const r = document.getElementById('note').getBoundingClientRect();"
        " return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()",
    )
    click = {"type": "mouse", "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1}
    for event in ("mousePressed", "mouseReleased"):
        await comm.send_json_to({**click, "event": event})


def takeover_events(run_id: str) -> list[RunEvent]:
    return list(RunEvent.objects.filter(run_id=run_id, type__startswith="takeover.").order_by("id"))


# -- watching -------------------------------------------------------------------------------------------
def test_a_paused_animated_page_streams_jpeg_frames_and_stops_when_the_viewer_leaves(
    alice: Persona, site: Any, worker: Any, capsys: Any
) -> None:
    run = start_run(alice, anim_program(site))
    assert run["status"] == "awaiting_approval"

    async def watch() -> tuple[list[dict[str, Any]], float]:
        comm = communicator(alice, run["id"])
        connected, _ = await comm.connect()
        assert connected
        hello = await next_message(comm, "hello")
        assert hello["can_take_over"] is True
        status = await next_message(comm, "status")
        assert status["streaming"] is True, status
        assert status["run_status"] == "awaiting_approval"
        assert liveview.open_screencasts() == 1
        await next_message(comm, "frame")  # the first one: the stream is flowing
        frames: list[dict[str, Any]] = []
        started = time.monotonic()
        while time.monotonic() - started < 3:
            await next_message(comm, "frame", frames=frames)
        seconds = time.monotonic() - started
        await comm.disconnect(timeout=5)
        return frames, seconds

    frames, seconds = async_to_sync(watch)()

    jpeg_bytes = [len(base64.b64decode(f["data"])) for f in frames]
    assert all(base64.b64decode(f["data"][:8])[:3] == b"\xff\xd8\xff" for f in frames)
    metadata = frames[-1]["metadata"]
    assert metadata["deviceWidth"] > 0 and metadata["deviceHeight"] > 0
    fps = len(frames) / seconds
    assert fps >= 15, f"only {fps:.1f} frames per second of an animated page"
    with capsys.disabled():
        print(
            f"\nlive view of /anim: {fps:.1f} fps, {sum(jpeg_bytes) / seconds / 1024:.0f} KiB/s of JPEG "
            f"({sum(len(f['data']) for f in frames) / seconds / 1024:.0f} KiB/s as base64 on the websocket), "
            f"{sum(jpeg_bytes) / len(frames) / 1024:.1f} KiB a frame"
        )
    # Nobody watches: the screencast is stopped and its CDP connection closed.
    assert liveview.open_screencasts() == 0
    # The page itself lives on, still paused for its approver.
    assert wait_run(alice, run["id"], wait=0)["status"] == "awaiting_approval"


def test_the_viewer_hears_the_status_before_the_first_frame_of_a_still_page(
    alice: Persona, site: Any, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A still page sends one frame as its screencast starts, and none after. On a loaded host the
    consumer resumed after that frame had gone out, so it came before the ``status`` saying the
    stream is on (a reloaded page's live view test waited 30 s for a frame that had come first)."""
    run = start_run(alice, note_program(site))
    assert run["status"] == "awaiting_approval", run
    started = liveview.Screencast.start

    async def start_late(url: str, on_frame: Any, *, mask: tuple[str, ...] = ()) -> liveview.Screencast:
        cast = await started(url, on_frame, mask=mask)
        await asyncio.sleep(1.5)  # the first frame (and the picture of a still page) are out by now
        return cast

    monkeypatch.setattr(liveview.Screencast, "start", start_late)

    async def watch() -> list[str]:
        comm = communicator(alice, run["id"])
        connected, _ = await comm.connect()
        assert connected
        kinds = []
        for _ in range(3):
            message = await comm.receive_json_from(timeout=30)
            kinds.append(message["type"])
            if message["type"] == "status":
                assert message["streaming"] is True, message
        await comm.disconnect(timeout=5)
        return kinds

    assert async_to_sync(watch)() == ["hello", "status", "frame"]


def test_a_running_run_is_streamed_and_the_stream_follows_it_into_its_pause(
    alice: Persona, site: Any, worker: Any
) -> None:
    program = [
        {"action": "goto", "url": site.url("/anim")},
        {"action": "wait_for", "selector": "#never-there", "timeout": 4},  # runs ~4 s, then pauses blocked
    ]
    run = start_run(alice, program, wait=0)
    wait_until(
        lambda: Run.objects.filter(pk=run["id"], status=RunStatus.RUNNING).exclude(target_id="").exists(),
        what="the run to open its page",
    )

    async def follow() -> tuple[dict[str, Any], int, str]:
        comm = communicator(alice, run["id"])
        assert (await comm.connect())[0]
        status = await next_message(comm, "status")
        frames: list[dict[str, Any]] = []
        while True:  # frames while it runs, until it pauses
            message = await next_message(comm, "run", timeout=20, frames=frames)
            if message["event"] == "run.awaiting_approval":
                break
        await next_message(comm, "frame")  # still streaming: the paused page is the same page
        await comm.disconnect(timeout=5)
        return status, len(frames), message["run_status"]

    status, frames, paused = async_to_sync(follow)()
    assert status["streaming"] is True and status["run_status"] == "running", status
    assert frames > 10
    assert paused == "awaiting_approval"
    assert wait_run(alice, run["id"], wait=0)["pending_step"]["trigger"] == "blocked"


def test_a_viewer_who_stops_acking_gets_no_more_frames(alice: Persona, site: Any, worker: Any) -> None:
    run = start_run(alice, anim_program(site))

    async def stall() -> int:
        comm = communicator(alice, run["id"])
        await comm.connect()
        await next_message(comm, "status")
        received = 0
        # (A receive that times out would cancel the consumer: ask whether anything is there first.)
        while not await comm.receive_nothing(timeout=1.0):
            received += (await comm.receive_json_from())["type"] == "frame"
        await comm.disconnect(timeout=5)
        return received

    # The server acks fewer frames than its window while they are not drawn, and Chromium sends
    # only a few unacked ones: a handful arrive, where a drawing viewer gets dozens a second.
    assert async_to_sync(stall)() <= liveview.VIEWER_WINDOW + 3


def test_another_tenants_user_and_anonymous_cannot_connect(alice: Persona, carol: Persona) -> None:
    run = Run.objects.create(tenant=alice.tenant, program=[], status=RunStatus.AWAITING_APPROVAL)

    async def try_connect(persona: Persona | None) -> tuple[bool, Any]:
        comm = communicator(persona, str(run.pk))
        result = await comm.connect()
        await comm.disconnect()
        return result

    assert async_to_sync(try_connect)(carol) == (False, 4403)
    assert async_to_sync(try_connect)(None) == (False, 4403)


def test_a_run_on_another_host_says_why_it_cannot_be_shown(alice: Persona) -> None:
    run = Run.objects.create(
        tenant=alice.tenant,
        program=[],
        status=RunStatus.AWAITING_APPROVAL,
        host="worker-elsewhere",
        target_id="ABCDEF0123456789",
    )

    async def look() -> dict[str, Any]:
        comm = communicator(alice, str(run.pk))
        assert (await comm.connect())[0]
        status = await next_message(comm, "status")
        await comm.disconnect()
        return status

    status = async_to_sync(look)()
    assert status["streaming"] is False
    assert "worker-elsewhere" in status["detail"]
    assert "only from the run's own host" in status["detail"]


# -- taking over ------------------------------------------------------------------------------------------
def test_a_viewer_watches_but_cannot_take_over_nor_send_input(
    alice: Persona, bob: Persona, site: Any, worker: Any
) -> None:
    run = start_run(alice, note_program(site))
    assert run["status"] == "awaiting_approval"

    async def try_it() -> list[dict[str, Any]]:
        comm = communicator(bob, run["id"])
        assert (await comm.connect())[0]
        assert (await next_message(comm, "hello"))["can_take_over"] is False
        assert (await next_message(comm, "status"))["streaming"] is True
        errors = []
        await comm.send_json_to({"type": "takeover", "on": True})
        errors.append(await next_message(comm, "error"))
        for message in (
            {"type": "text", "text": "intruder"},
            {"type": "mouse", "event": "mousePressed", "x": 10, "y": 10, "button": "left"},
            {"type": "key", "event": "keyDown", "key": "Enter", "code": "Enter", "keyCode": 13},
        ):
            await comm.send_json_to(message)
            errors.append(await next_message(comm, "error"))
        await comm.disconnect(timeout=5)
        return errors

    errors = async_to_sync(try_it)()
    assert [e["code"] for e in errors] == ["forbidden"] * 4
    assert "approvers" in errors[0]["detail"].lower()
    assert async_to_sync(page_eval)(run["id"], "document.getElementById('note').value") == ""
    assert takeover_events(run["id"]) == []


def test_an_approver_must_take_over_before_sending_input(alice: Persona, site: Any, worker: Any) -> None:
    run = start_run(alice, note_program(site))

    async def crafted() -> dict[str, Any]:
        comm = communicator(alice, run["id"])
        await comm.connect()
        await next_message(comm, "status")
        await comm.send_json_to({"type": "text", "text": "no take-over"})
        error = await next_message(comm, "error")
        await comm.disconnect(timeout=5)
        return error

    assert async_to_sync(crafted)()["code"] == "forbidden"
    assert async_to_sync(page_eval)(run["id"], "document.getElementById('note').value") == ""
    assert takeover_events(run["id"]) == []


def test_an_approver_takes_over_types_into_the_paused_page_and_hands_it_back(
    alice: Persona, site: Any, worker: Any
) -> None:
    run = start_run(alice, note_program(site))
    assert run["status"] == "awaiting_approval"
    run_id = run["id"]

    async def take_over() -> None:
        comm = communicator(alice, run_id)
        assert (await comm.connect())[0]
        assert (await next_message(comm, "status"))["streaming"] is True
        await comm.send_json_to({"type": "takeover", "on": True})
        assert (await next_message(comm, "takeover"))["on"] is True
        await click_the_note(comm, run_id)
        await wait_page(run_id, "document.activeElement && document.activeElement.id", "note")
        await comm.send_json_to({"type": "text", "text": SECRET + "!"})
        for event in ("keyDown", "keyUp"):  # a named key goes through Input.dispatchKeyEvent
            await comm.send_json_to(
                {"type": "key", "event": event, "key": "Backspace", "code": "Backspace", "keyCode": 8}
            )
        await wait_page(run_id, "document.getElementById('note').value", SECRET)
        await comm.send_json_to({"type": "takeover", "on": False})
        ended = await next_message(comm, "takeover")
        assert ended["on"] is False
        await comm.disconnect(timeout=5)

    async_to_sync(take_over)()

    events = takeover_events(run_id)
    assert events[0].type == "takeover.started"
    assert events[-1].type == "takeover.ended"
    inputs = [e.data for e in events if e.type == "takeover.input"]
    assert [d["kind"] for d in inputs] == ["mouse.press", "mouse.release", "text", "key"]
    assert inputs[2] == {"kind": "text", "length": len(SECRET) + 1}
    assert inputs[3]["key"] == "Backspace"
    assert inputs[0]["x"] > 0 and inputs[0]["button"] == "left"
    assert all(e.actor_id == alice.user.pk for e in events)
    assert events[-1].data == {"reason": "handed back", "inputs": 5}
    everything = json.dumps(list(RunEvent.objects.filter(run_id=run_id).values_list("data", flat=True)))
    assert "s3cret" not in everything

    # Handing back: the approval resumes the run on the very page the approver typed into.
    assert alice.post(f"/api/runs/{run_id}/approve").status_code == 202
    done = wait_run(alice, run_id)
    assert done["status"] == "completed", done
    assert done["outputs"] == {"submitted": f"Submitted 0: {SECRET}"}
    assert [e["note"] for e in site.events if e["kind"] == "jsstate"] == [SECRET]
    assert "run.resumed_in_place" in event_types(run_id)


def test_the_take_over_ends_when_the_run_resumes_and_the_stream_says_the_page_closed(
    alice: Persona, site: Any, worker: Any
) -> None:
    run = start_run(alice, note_program(site))
    run_id = run["id"]

    async def approve_while_taking_over() -> tuple[dict[str, Any], dict[str, Any]]:
        comm = communicator(alice, run_id)
        await comm.connect()
        await next_message(comm, "status")
        await comm.send_json_to({"type": "takeover", "on": True})
        assert (await next_message(comm, "takeover"))["on"] is True
        response = await sync_to_async(alice.post)(f"/api/runs/{run_id}/approve")
        assert response.status_code == 202
        ended = await next_message(comm, "takeover", timeout=20)
        closed = await next_message(comm, "status", timeout=30)
        await comm.send_json_to({"type": "text", "text": "too late"})
        refused = await next_message(comm, "error")
        await comm.disconnect(timeout=5)
        return ended, {"closed": closed, "refused": refused}

    ended, after = async_to_sync(approve_while_taking_over)()
    assert ended["on"] is False
    assert "the run is" in ended["detail"]
    assert after["closed"]["streaming"] is False  # the run completed: its page is gone
    assert after["refused"]["code"] == "forbidden"
    wait_until(lambda: wait_run(alice, run_id, wait=0)["status"] == "completed", what="the run to complete")
    types = [e.type for e in takeover_events(run_id)]
    assert types == ["takeover.started", "takeover.ended"]
    assert liveview.open_screencasts() == 0


# -- input parsing ------------------------------------------------------------------------------------------
def test_recorded_input_never_carries_typed_characters() -> None:
    text = liveview.parse_input({"type": "text", "text": "hunter2"})
    assert text.method == "Input.insertText" and text.params == {"text": "hunter2"}
    assert text.record == {"kind": "text", "length": 7}

    char = liveview.parse_input(
        {"type": "key", "event": "keyDown", "key": "x", "code": "KeyX", "keyCode": 88}
    )
    assert char.record == {"kind": "key", "key": "(character)", "modifiers": 0}

    enter = liveview.parse_input(
        {"type": "key", "event": "keyDown", "key": "Enter", "code": "Enter", "keyCode": 13}
    )
    assert enter.params["type"] == "keyDown" and enter.params["text"] == "\r"
    assert enter.record == {"kind": "key", "key": "Enter", "modifiers": 0}
    assert liveview.parse_input({"type": "key", "event": "keyUp", "key": "Enter"}).record is None
    assert liveview.parse_input({"type": "mouse", "event": "mouseMoved", "x": 1, "y": 2}).record is None


@pytest.mark.parametrize(
    "message",
    [
        {"type": "mouse", "event": "mousePressed", "x": "1", "y": 2},
        {"type": "mouse", "event": "dragStart", "x": 1, "y": 2},
        {"type": "mouse", "event": "mousePressed", "x": 1, "y": 2, "button": "fourth"},
        {"type": "key", "event": "char", "key": "a"},
        {"type": "key", "event": "keyDown", "key": ""},
        {"type": "text", "text": ""},
        {"type": "text", "text": "x" * (liveview.MAX_TEXT + 1)},
        {"type": "evaluate", "expression": "alert(1)"},
    ],
)
def test_malformed_input_is_refused(message: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        liveview.parse_input(message)
