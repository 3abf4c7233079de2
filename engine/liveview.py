"""The live view: a run's page streamed while someone watches, and an approver's take-over.

The web process talks CDP straight to the page's own websocket on the host's Chromium
(``engine.browser.page_ws_url``), next to the worker's Playwright connection: two CDP clients
on one page work at once, one driving and one watching. That only works on the run's host.

Frames are JPEGs from ``Page.startScreencast``. Chromium sends the next frame only once the
previous ones are acknowledged, and we acknowledge only while the viewer keeps up (it acks
what it has drawn), so a slow viewer slows the stream instead of queueing frames in memory,
and a still page costs nothing. When the viewer leaves, the screencast stops and the
connection closes.

Take-over input is checked and recorded (``takeover.input``) before it is sent to the page.
Typed text is never recorded, only its length: it may be a password. Key names are recorded
for named keys (Enter, Tab, ArrowLeft…) only, never for characters.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from runs.events import record_event
from runs.models import Run, RunStatus
from tenants.models import Membership, Role

from .browser import no_proxy, page_ws_url
from .recording import TakeoverRecording, takeover_recording
from .scrub import MASK_WORLD, mask_source, painted_commands, scrubber_for_run

log = logging.getLogger(__name__)

JPEG_QUALITY = 70
VIEWER_WINDOW = 3  # frames sent to the viewer and not yet drawn by it, before we stop acking
CDP_TIMEOUT = 10.0
LIVE_STATUSES = frozenset({RunStatus.RUNNING, RunStatus.AWAITING_APPROVAL})
MAX_TEXT = 1000  # characters per insertText: a paste, not a document
START_ATTEMPTS = 30  # 100 ms apart
# Chromium sends a screencast's first frame at once, as a rule; a page that is still and sends
# none by then is photographed for the viewer instead (a viewer never waits on a blank view).
FIRST_FRAME_WAIT = 0.5

_CONNECT_OPTIONS: dict[str, Any] = {
    "compression": None,  # JPEG does not compress; CDP on loopback does not need it
    "max_size": 64 * 1024 * 1024,
    "ping_interval": None,
    "open_timeout": 5,
    "close_timeout": 2,
    **no_proxy(connect),
}


class CdpError(Exception):
    """A CDP call failed, or the page went away."""


class TakeoverRefused(Exception):
    """The user may not act on this page now; the message says why, for a person."""


# -- where the run's page is --------------------------------------------------------------------------------
@dataclass(frozen=True)
class LiveTarget:
    status: str
    target_id: str
    url: str | None  # the page's CDP websocket, when this process can reach it
    reason: str  # why not, for a person, when url is None
    # What the viewer must not see: the run's scrub list, masked in the page (engine.scrub).
    mask: tuple[str, ...] = ()


def live_target(run_id: str) -> LiveTarget:
    """Where the run's page lives, and whether this web process can stream it."""
    run = (
        Run.objects.filter(pk=run_id)
        .only("status", "host", "target_id", "tenant_id", "program", "scrub_sealed")
        .first()
    )
    if run is None:
        return LiveTarget("", "", None, "The run does not exist.")
    if run.status not in LIVE_STATUSES:
        reason = {
            RunStatus.QUEUED: "The run has not started yet; its page appears here when it does.",
        }.get(RunStatus(run.status), f"The run is {run.get_status_display().lower()}: its page is closed.")
        return LiveTarget(run.status, "", None, reason)
    if not run.target_id:
        reason = (
            "The paused page was closed to save memory; it is restored when the run resumes."
            if run.status == RunStatus.AWAITING_APPROVAL
            else "The run is opening its page."
        )
        return LiveTarget(run.status, "", None, reason)
    if run.host != settings.TWIN_HOST_ID:
        return LiveTarget(
            run.status,
            run.target_id,
            None,
            f"The run's browser is on worker host “{run.host}”, and this web server runs on "
            f"“{settings.TWIN_HOST_ID}”: the live view works only from the run's own host.",
        )
    url = page_ws_url(run.target_id)
    if url is None:
        return LiveTarget(run.status, run.target_id, None, "This host has no browser running.")
    return LiveTarget(run.status, run.target_id, url, "", tuple(scrubber_for_run(run).values))


# -- take-over: checked, recorded ---------------------------------------------------------------------------
def _approver_run(run_id: str, user: Any) -> Run:
    run = Run.objects.filter(pk=run_id).first()
    if run is None or user is None or not user.is_authenticated:
        raise TakeoverRefused("No such run.")
    membership = Membership.objects.filter(user=user, tenant_id=run.tenant_id).first()
    if membership is None or not membership.allows(Role.APPROVER):
        raise TakeoverRefused("Only approvers can take over a page.")
    if run.status != RunStatus.AWAITING_APPROVAL:
        raise TakeoverRefused("Only a paused run's page can be taken over.")
    return run


def takeover_start(*, run_id: str, user: Any) -> None:
    with transaction.atomic():
        run = _approver_run(run_id, user)
        record_event(run, "takeover.started", step_index=run.current_step, actor=user)


def takeover_input(*, run_id: str, user: Any, data: dict[str, Any]) -> None:
    """Check the user may still act on the page, and record the input (before it is sent)."""
    with transaction.atomic():
        run = _approver_run(run_id, user)
        record_event(run, "takeover.input", step_index=run.current_step, actor=user, data=data)


def takeover_end(*, run_id: str, user: Any, reason: str, inputs: int) -> None:
    with transaction.atomic():
        run = Run.objects.filter(pk=run_id).first()
        if run is not None:
            data = {"reason": reason, "inputs": inputs}
            record_event(run, "takeover.ended", step_index=run.current_step, actor=user, data=data)


# -- input from the viewer: validated into CDP calls and event data -----------------------------------------
_MOUSE_TYPES = {"mousePressed", "mouseReleased", "mouseMoved", "mouseWheel"}
_BUTTONS = {"none": 0, "left": 1, "right": 2, "middle": 4}  # CDP's ``buttons`` bits
_KEY_TYPES = {"keyDown", "keyUp"}
_KEY_TEXT = {"Enter": "\r"}  # keys whose keyDown also types (Enter submits forms on keypress)


def _number(message: dict[str, Any], name: str, low: float, high: float, default: float = 0) -> float:
    value = message.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number")
    return float(min(max(value, low), high))


def _modifiers(message: dict[str, Any]) -> int:
    return int(_number(message, "modifiers", 0, 15))


@dataclass(frozen=True)
class Input:
    method: str
    params: dict[str, Any]
    record: dict[str, Any] | None  # the takeover.input event's data; None: not worth an event


def parse_input(message: dict[str, Any]) -> Input:
    """A viewer's input message as a CDP call; ValueError when it is not a valid one."""
    kind = message.get("type")
    if kind == "mouse":
        event = message.get("event")
        if event not in _MOUSE_TYPES:
            raise ValueError("unknown mouse event")
        x, y = round(_number(message, "x", 0, 100_000), 1), round(_number(message, "y", 0, 100_000), 1)
        button = message.get("button", "none")
        if button not in _BUTTONS:
            raise ValueError("unknown mouse button")
        params: dict[str, Any] = {"type": event, "x": x, "y": y, "modifiers": _modifiers(message)}
        record: dict[str, Any] | None = None
        if event == "mouseWheel":
            dx = round(_number(message, "deltaX", -10_000, 10_000), 1)
            dy = round(_number(message, "deltaY", -10_000, 10_000), 1)
            params.update(deltaX=dx, deltaY=dy)
            record = {"kind": "wheel", "x": x, "y": y, "delta_x": dx, "delta_y": dy}
        elif event == "mouseMoved":
            params.update(button=button, buttons=_BUTTONS[button])  # pressed while moving: a drag
        elif event in {"mousePressed", "mouseReleased"}:
            clicks = int(_number(message, "clickCount", 1, 3, default=1))
            buttons = _BUTTONS[button] if event == "mousePressed" else 0
            params.update(button=button, buttons=buttons, clickCount=clicks)
            record = {
                "kind": "mouse.press" if event == "mousePressed" else "mouse.release",
                "x": x,
                "y": y,
                "button": button,
                "clicks": clicks,
            }
        return Input("Input.dispatchMouseEvent", params, record)
    if kind == "key":
        event = message.get("event")
        key = message.get("key")
        if event not in _KEY_TYPES or not isinstance(key, str) or not 0 < len(key) <= 32:
            raise ValueError("unknown key event")
        code = message.get("code", "")
        code = code if isinstance(code, str) and len(code) <= 32 else ""
        modifiers = _modifiers(message)
        key_code = int(_number(message, "keyCode", 0, 255))
        params = {"type": "rawKeyDown" if event == "keyDown" else "keyUp", "modifiers": modifiers}
        params.update(key=key, code=code, windowsVirtualKeyCode=key_code, nativeVirtualKeyCode=key_code)
        if event == "keyDown" and key in _KEY_TEXT and not modifiers & 0b1010:  # not with Ctrl or Meta
            params.update(type="keyDown", text=_KEY_TEXT[key], unmodifiedText=_KEY_TEXT[key])
        # A character is what a person types, maybe a password: its name is not recorded either.
        named = len(key) > 1
        record = {"kind": "key", "key": key if named else "(character)", "modifiers": modifiers}
        return Input("Input.dispatchKeyEvent", params, record if event == "keyDown" else None)
    if kind == "text":
        text = message.get("text")
        if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT:
            raise ValueError(f"text must be 1 to {MAX_TEXT} characters")
        return Input("Input.insertText", {"text": text}, {"kind": "text", "length": len(text)})
    raise ValueError("unknown message type")


# -- CDP ------------------------------------------------------------------------------------------------
EventHandler = Callable[[str, dict[str, Any]], Awaitable[None]]


class PageConnection:
    """A small CDP client of one page target, over the page's own websocket (no Playwright here)."""

    def __init__(self, ws: ClientConnection, on_event: EventHandler | None) -> None:
        self._ws = ws
        self._on_event = on_event
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, url: str, on_event: EventHandler | None = None) -> PageConnection:
        try:
            ws = await connect(url, **_CONNECT_OPTIONS)
        except (TimeoutError, OSError, WebSocketException) as exc:
            raise CdpError(f"cannot reach the page: {exc}") from exc
        return cls(ws, on_event)

    @property
    def closed(self) -> bool:
        return self._reader.done()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._reader)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a command and wait for its result."""
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        try:
            await self._send(call_id, method, params)
            return await asyncio.wait_for(future, CDP_TIMEOUT)
        except TimeoutError:
            raise CdpError(f"{method}: no answer in {CDP_TIMEOUT:.0f} s") from None
        finally:
            self._pending.pop(call_id, None)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        """Send a command without waiting for its result (safe from inside an event handler)."""
        await self._send(next(self._ids), method, params)

    async def _send(self, call_id: int, method: str, params: dict[str, Any] | None) -> None:
        try:
            await self._ws.send(json.dumps({"id": call_id, "method": method, "params": params or {}}))
        except WebSocketException as exc:
            raise CdpError(f"{method}: the page is gone") from exc

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                message = json.loads(raw)
                if "id" in message:
                    future = self._pending.get(message["id"])
                    if future is not None and not future.done():
                        if "error" in message:
                            error = message["error"].get("message", "error")
                            future.set_exception(CdpError(f"{error}"))
                        else:
                            future.set_result(message.get("result", {}))
                elif self._on_event is not None and "method" in message:
                    await self._on_event(message["method"], message.get("params", {}))
        except WebSocketException:
            pass
        except Exception:
            log.exception("live view: a CDP event could not be handled; closing the connection")
            await self._ws.close()
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(CdpError("the page is gone"))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


FrameSink = Callable[[str, dict[str, Any]], Awaitable[None]]

_open: set[Screencast] = set()


def open_screencasts() -> int:
    """How many screencasts this process is streaming right now."""
    return len(_open)


class Screencast:
    """One viewer's stream of one page, and the way its input reaches the page."""

    def __init__(self, on_frame: FrameSink) -> None:
        self._on_frame = on_frame
        self._page: PageConnection | None = None
        self._unacked = 0  # frames the viewer has not drawn yet
        self._held: list[int] = []  # frames Chromium waits for us to ack
        self._masked = False
        self.last_frame = ""  # the newest frame (base64): a take-over's video starts with it
        self.recording: TakeoverRecording | None = None  # while its viewer has taken the page over
        self.frames = 0
        self.bytes = 0
        self.started = 0.0
        self._first: asyncio.Task[None] | None = None  # the picture of a still page (_picture_if_still)

    @classmethod
    async def start(cls, url: str, on_frame: FrameSink, *, mask: tuple[str, ...] = ()) -> Screencast:
        cast = cls(on_frame)
        cast._page = await PageConnection.open(url, cast._event)
        width, height = settings.TWIN_VIEWPORT
        params = {"format": "jpeg", "quality": JPEG_QUALITY, "maxWidth": width, "maxHeight": height}
        # A page between two documents (the run is navigating) answers "Not attached to an active
        # page" for a moment: try again while the connection lives.
        for attempt in itertools.count(1):
            try:
                if mask:
                    await cast._mask(mask)  # before the first frame
                await cast._page.call("Page.startScreencast", params)
                break
            except CdpError:
                if cast._page.closed or attempt >= START_ATTEMPTS:
                    await cast._page.close()
                    raise
                await asyncio.sleep(0.1)
        cast.started = time.monotonic()
        _open.add(cast)
        cast._first = asyncio.create_task(cast._picture_if_still())
        return cast

    async def _picture_if_still(self) -> None:
        """If no frame came within FIRST_FRAME_WAIT, a picture of the page as the first one."""
        await asyncio.sleep(FIRST_FRAME_WAIT)
        if self.frames or self.closed:
            return
        with contextlib.suppress(CdpError, TimeoutError, KeyError):
            shot = await self.page.call("Page.captureScreenshot", {"format": "jpeg", "quality": JPEG_QUALITY})
            metrics = await self.page.call("Page.getLayoutMetrics")
            viewport = metrics.get("cssVisualViewport") or metrics.get("visualViewport") or {}
            metadata = {
                "offsetTop": 0,
                "pageScaleFactor": 1,
                "deviceWidth": viewport.get("clientWidth", settings.TWIN_VIEWPORT[0]),
                "deviceHeight": viewport.get("clientHeight", settings.TWIN_VIEWPORT[1]),
                "scrollOffsetX": viewport.get("pageX", 0),
                "scrollOffsetY": viewport.get("pageY", 0),
                "timestamp": time.time(),
            }
            if self.frames or self.closed:  # (a frame came meanwhile: it is newer)
                return
            await self._show(str(shot["data"]), metadata)

    async def _show(self, data: str, metadata: dict[str, Any]) -> None:
        """A picture of the page to the viewer (and the take-over's recording, if one runs)."""
        self.frames += 1
        self.bytes += len(data)
        self.last_frame = data
        if self.recording is not None:
            self.recording.frame(data)
        await self._on_frame(data, metadata)

    async def _mask(self, values: tuple[str, ...]) -> None:
        """Cover the run's secrets and inputs in what this viewer sees, in this document and any it
        opens meanwhile (a take-over may navigate): the executor's own mask leaves with its execution.
        No frame is streamed until it is in place."""
        if self._masked:
            return
        await self.page.call("Page.enable")
        await self.page.call(
            "Page.addScriptToEvaluateOnNewDocument",
            {"source": mask_source(values), "worldName": MASK_WORLD, "runImmediately": True},
        )
        # The boxes are in the DOM, not yet painted: the screencast's first frame would be the last
        # one painted without them.
        world, evaluate = painted_commands(await self.page.call("Page.getFrameTree"))
        context = (await self.page.call("Page.createIsolatedWorld", world))["executionContextId"]
        await self.page.call("Runtime.evaluate", {**evaluate, "contextId": context})
        self._masked = True

    @property
    def page(self) -> PageConnection:
        assert self._page is not None
        return self._page

    @property
    def closed(self) -> bool:
        return self._page is None or self._page.closed

    async def wait_closed(self) -> None:
        if self._page is not None:
            await self._page.wait_closed()
        _open.discard(self)
        await self.stop_recording()

    async def _event(self, method: str, params: dict[str, Any]) -> None:
        if method != "Page.screencastFrame":
            return
        await self._show(params.get("data", ""), params.get("metadata", {}))
        self._unacked += 1
        if self._unacked < VIEWER_WINDOW:
            await self.page.notify("Page.screencastFrameAck", {"sessionId": params["sessionId"]})
        else:
            self._held.append(params["sessionId"])

    async def viewer_ack(self) -> None:
        """The viewer has drawn a frame: let Chromium send another if it was waiting for us."""
        self._unacked = max(0, self._unacked - 1)
        if self._held and self._unacked < VIEWER_WINDOW and not self.closed:
            with contextlib.suppress(CdpError):
                await self.page.notify("Page.screencastFrameAck", {"sessionId": self._held.pop(0)})

    async def send_input(self, item: Input) -> None:
        await self.page.call(item.method, item.params)

    # -- the take-over's part of the session video (engine.recording.TakeoverRecording) -----------------
    async def record_takeover(self, *, run_id: str, user: Any) -> None:
        """Keep this stream's frames in the run's video until ``stop_recording``."""
        if self.recording is not None:
            return
        recording = await database_sync_to_async(takeover_recording)(run_id=run_id, user=user)
        if recording is not None and self.last_frame:
            recording.frame(self.last_frame)  # a still page sends no frame until something changes
        self.recording = recording

    async def stop_recording(self) -> None:
        """Store what was recorded of the take-over as a segment of the run's video."""
        recording, self.recording = self.recording, None
        if recording is not None:
            await database_sync_to_async(recording.stop)()

    async def stop(self) -> None:
        """Stop the screencast and close the connection (the page itself lives on)."""
        _open.discard(self)
        if self._first is not None:
            self._first.cancel()
        await self.stop_recording()
        if self._page is None:
            return
        if not self._page.closed:
            with contextlib.suppress(CdpError, TimeoutError):
                await asyncio.wait_for(self._page.call("Page.stopScreencast"), 2)
        await self._page.close()
        seconds = max(time.monotonic() - self.started, 1e-6)
        log.info(
            "live view closed: %d frames, %.1f fps, %.0f KiB/s",
            self.frames,
            self.frames / seconds,
            self.bytes / seconds / 1024,
        )
