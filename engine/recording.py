"""Recording a run's page while an execution drives it: one segment per execution.

A thread opens its own CDP connection to the run's page (beside Playwright's), starts a
screencast and appends every JPEG frame, with its time, to a frame log: no encoding while
the run runs. A still page sends no frames, so the last one holds; a picture is asked for at
the start, and the executor hands over one of the page as it is at the end. When the execution stops
(pause, end, failure), the log is stored as a ``VideoSegment`` with the time each step
started; ``engine.video`` joins a run's segments into one video when the run is over.

Recording never breaks a run: any error is logged and the run goes on without it.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import logging
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError
from django.utils import timezone

from runs.media import video_storage

log = logging.getLogger(__name__)

# Chromium sends a frame as soon as a screencast starts; ask for a picture if none came by then.
FIRST_FRAME_WAIT = 0.3
# Chromium sends a screencast frame only while fewer than this many are unacknowledged; others
# are dropped before it encodes them.
IN_FLIGHT_MAX = 3
# After acknowledging with that many out, a change may have been dropped: if no frame follows
# within this time, the page went still after it, and a picture is asked for.
SETTLE = 0.15

# An execution starts once its screencast has (at most this long): its first steps are recorded
# even when they are over in less time than a connection to the page takes to open.
START_WAIT = 2.0

MAGIC = b"TWINFRM1"
RECORD = struct.Struct("<dI")  # seconds from the segment's start, JPEG length


def write_frame(handle: IO[bytes], t: float, jpeg: bytes) -> None:
    handle.write(RECORD.pack(t, len(jpeg)))
    handle.write(jpeg)


def read_frames(handle: IO[bytes]) -> Iterator[tuple[float, bytes]]:
    """The frames of a segment log; a log cut short (a crash) yields what is complete."""
    if handle.read(len(MAGIC)) != MAGIC:
        raise ValueError("not a Twin frame log")
    while True:
        head = handle.read(RECORD.size)
        if len(head) < RECORD.size:
            return
        t, size = RECORD.unpack(head)
        jpeg = handle.read(size)
        if len(jpeg) < size:
            return
        yield t, jpeg


STALE_FRAMES = timedelta(hours=24)


def frames_dir() -> Path:
    """Where executions write their frame logs until the segment is stored (one host's disk)."""
    path = Path(settings.VAR_DIR) / "recording"
    path.mkdir(parents=True, exist_ok=True)
    return path


def purge_stale_frames(*, now: float | None = None) -> int:
    """Delete frame logs left by executions that died mid-way (a killed worker never reaches
    ``stop()``); a live execution writes its log at least every step, so a day-old one is dead."""
    cutoff = (now if now is not None else time.time()) - STALE_FRAMES.total_seconds()
    removed = 0
    for path in frames_dir().glob("twin-segment-*.frames"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    if removed:
        log.info("removed %d frame logs of executions that did not finish", removed)
    return removed


class Recorder:
    """Frames of one page, from ``start()`` to ``stop()``, into a segment of ``run``."""

    def __init__(self, run: Any, ws_url: str, *, fps: float, quality: int) -> None:
        self.run = run
        self.ws_url = ws_url
        self.min_gap = 1.0 / fps if fps > 0 else 0.0
        self.quality = quality
        self.marks: list[dict[str, Any]] = []
        self.frames = 0
        self.error = ""
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115  (closed and removed in stop())
            prefix="twin-segment-", suffix=".frames", dir=frames_dir(), delete=False
        )
        self._file.write(MAGIC)
        self._lock = threading.Lock()
        self._last: tuple[float, bytes] | None = None  # time of the last frame written, newest picture
        self._pending: tuple[float, bytes] | None = None  # a newer picture held back by the frame-rate cap
        self._asked_first = False
        # Acknowledgements are paced to the frame rate: Chromium then skips encoding frames that
        # would be dropped here (a busy page costs about half the CPU).
        self._screencast: Any = None  # the screencast session of the frames out
        self._unacked = 0
        self._last_ack = float("-inf")
        self._settle_at: float | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()  # the screencast runs (or the recording gave up)
        self._start_id = 0
        self._ws: Any = None
        self._ids = itertools.count(1)
        self._snapshots: set[int] = set()
        self._t0 = time.monotonic()
        self.started_at: datetime = timezone.now()
        self._thread = threading.Thread(target=self._loop, name=f"recorder-{run.pk}", daemon=True)

    # -- the recording thread --------------------------------------------------------------------
    def start(self) -> Recorder:
        """Start recording; returns once the page's screencast has started (at most START_WAIT)."""
        self._thread.start()
        self._started.wait(START_WAIT)
        return self

    def _send(self, method: str, params: dict[str, Any] | None = None) -> int:
        request_id = next(self._ids)
        self._ws.send(json.dumps({"id": request_id, "method": method, "params": params or {}}))
        return request_id

    def _loop(self) -> None:
        from websockets.sync.client import connect

        from .browser import no_proxy

        options: dict[str, Any] = {
            "max_size": None,
            "open_timeout": 5,
            "close_timeout": 1,
            **no_proxy(connect),
        }
        try:
            with connect(self.ws_url, **options) as ws:
                self._ws = ws
                self._start_screencast()
                while not self._stopping.is_set():
                    try:
                        raw = ws.recv(timeout=self._next_tick())
                    except TimeoutError:
                        self._tick()
                        continue
                    except Exception:  # closed by stop(), or the page went away
                        break
                    message = json.loads(raw)
                    if message.get("id") == self._start_id:
                        self._started.set()
                    if message.get("method") == "Page.screencastFrame":
                        params = message["params"]
                        self._frame(base64.b64decode(params["data"]))
                        self._received(params["sessionId"])
                    elif message.get("id") in self._snapshots:
                        data = message.get("result", {}).get("data")
                        if data:
                            self._frame(base64.b64decode(data), force=True)
                        self._snapshots.discard(message["id"])

        except Exception as exc:  # the page went away, the browser restarted…: keep what we have
            if self._ws is None or not self._stopping.is_set():  # (else: closed by stop())
                self.error = f"{type(exc).__name__}: {exc}"[:500]
                log.info("recording of run %s stopped: %s", self.run.pk, self.error)
        finally:
            self._started.set()  # (nothing to wait for any more)

    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _frame(self, jpeg: bytes, *, force: bool = False) -> None:
        """A picture of the page now: written, or held back until the frame-rate cap allows."""
        t = self._now()
        with self._lock:
            if self._file.closed:
                return
            if self._last is None:
                self._write(0.0, jpeg)  # the first picture is the page as the segment starts
            elif force or t - self._last[0] >= self.min_gap:
                self._write(t, jpeg)  # (a held-back picture is older than this one: dropped)
            else:
                self._pending = (t, jpeg)
                self._last = (self._last[0], jpeg)

    def _write(self, t: float, jpeg: bytes) -> None:
        """Append a frame (the lock is held)."""
        t = max(t, self._last[0]) if self._last is not None else t
        write_frame(self._file, t, jpeg)
        self._last = (t, jpeg)
        self._pending = None
        self.frames += 1

    def _received(self, screencast: Any) -> None:
        """Acknowledge a frame now if its slot is free, else when the next slot comes (_tick)."""
        if screencast != self._screencast:  # a new screencast (restarted): nothing of it is out
            self._screencast, self._unacked = screencast, 0
        self._settle_at = None
        now = self._now()
        if now - self._last_ack >= self.min_gap:
            self._ack(now)
        else:
            self._unacked += 1

    def _ack(self, now: float) -> None:
        self._last_ack = now
        with contextlib.suppress(Exception):
            self._send("Page.screencastFrameAck", {"sessionId": self._screencast})

    def _next_tick(self) -> float | None:
        """How long the thread may wait for a message before it has something to do itself."""
        due: list[float] = []
        with self._lock:
            if self._pending is not None and self._last is not None:
                due.append(self._last[0] + self.min_gap)
        if self._unacked:
            due.append(self._last_ack + self.min_gap)
        if self._settle_at is not None:
            due.append(self._settle_at)
        if self._last is None and not self._asked_first:
            due.append(FIRST_FRAME_WAIT)
        return max(0.0, min(due) - self._now()) if due else None

    def _tick(self) -> None:
        """What comes due: a held-back picture is written once its slot comes (a page that goes
        still sends no more frames, so its last change would otherwise be lost); one frame out is
        acknowledged per slot; a picture is asked for when a change may have been dropped, or
        when no first frame came."""
        now = self._now()
        with self._lock:
            if self._file.closed:
                return
            if self._pending is not None and self._last is not None and now >= self._last[0] + self.min_gap:
                self._write(self._last[0] + self.min_gap, self._pending[1])
        if self._unacked and now >= self._last_ack + self.min_gap:
            if self._unacked >= IN_FLIGHT_MAX:  # changes since may have been dropped by Chromium
                self._settle_at = now + SETTLE
            self._unacked -= 1
            self._ack(now)
        if self._settle_at is not None and now >= self._settle_at:
            self._settle_at = None  # no frame came: the page is still, maybe not as last seen
            self.snapshot()
        if self._last is None and not self._asked_first and now >= FIRST_FRAME_WAIT:
            self._asked_first = True
            self.snapshot()

    def _start_screencast(self) -> None:
        width, height = settings.TWIN_VIEWPORT
        self._start_id = self._send(
            "Page.startScreencast",
            {
                "format": "jpeg",
                "quality": self.quality,
                "maxWidth": width,
                "maxHeight": height,
                # Every frame: with every Nth, a still page's single repaint (a click's result)
                # is mostly skipped, and the video would miss what steps did. The rate is capped
                # here instead, keeping the newest picture.
                "everyNthFrame": 1,
            },
        )

    def snapshot(self) -> None:
        """Ask for a picture of the page now (answered in the recording thread)."""
        if self._ws is None:
            return
        request_id = next(self._ids)
        self._snapshots.add(request_id)
        with contextlib.suppress(Exception):
            self._ws.send(
                json.dumps(
                    {
                        "id": request_id,
                        "method": "Page.captureScreenshot",
                        "params": {"format": "jpeg", "quality": self.quality, "optimizeForSpeed": True},
                    }
                )
            )

    # -- the executor's side ------------------------------------------------------------------------
    def mark(self, step_index: int, action: str = "") -> None:
        """Step ``step_index`` starts now (its chapter in the video)."""
        with self._lock:
            # What the last step left, held back by the frame-rate cap: in the video before this
            # step changes it, however soon it comes (a fast step's result is not dropped).
            if self._pending is not None and not self._file.closed:
                self._write(self._pending[0], self._pending[1])
        self.marks.append({"step_index": step_index, "t": round(time.monotonic() - self._t0, 3)})
        # A navigation to another site swaps the page's renderer, and the screencast sometimes
        # stays behind with the old one: after a goto, ask for it again (idempotent).
        if self._ws is not None and self._after_goto:
            with contextlib.suppress(Exception):
                self._start_screencast()
        self._after_goto = action == "goto"

    _after_goto = False

    def stop(self, final: bytes | None = None) -> Any:
        """Stop, store the segment and return its ``VideoSegment`` (None when it has no frames).

        ``final``: a picture of the page as it is now (the executor takes one), so the segment
        ends with it even when the last change sent no screencast frame.
        """
        from runs.models import Recording, RecordingStatus, VideoSegment

        if final:
            self._frame(final, force=True)
        self._stopping.set()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._send("Page.stopScreencast")
            with contextlib.suppress(Exception):
                self._ws.close()  # ends the thread's recv() at once
        self._thread.join(timeout=3)
        duration = time.monotonic() - self._t0
        ended_at = self.started_at + timedelta(seconds=duration)
        with self._lock:
            if self._pending is not None:  # the newest picture, held back by the frame-rate cap
                self._write(self._pending[0], self._pending[1])
            if self._last is not None and duration > self._last[0]:
                # The page as it was at the end (a still page sends nothing).
                write_frame(self._file, duration, self._last[1])
            self._file.close()
        path = Path(self._file.name)
        try:
            if self.error:
                _note_error(self.run.pk, self.error)
            if self.frames == 0:
                return None
            seq = VideoSegment.objects.filter(run_id=self.run.pk).count() + 1
            with path.open("rb") as handle:
                stored = video_storage().save(f"{self.run.pk}/segment-{seq}.frames", File(handle))
            Recording.objects.get_or_create(
                run_id=self.run.pk, defaults={"status": RecordingStatus.RECORDING}
            )
            try:
                return VideoSegment.objects.create(
                    run_id=self.run.pk,
                    seq=seq,
                    path=stored,
                    host=settings.TWIN_HOST_ID,
                    started_at=self.started_at,
                    ended_at=ended_at,
                    duration=round(duration, 3),
                    frames=self.frames,
                    size=video_storage().size(stored),
                    marks=self.marks,
                )
            except IntegrityError:  # another execution of this run stored one at the same moment
                video_storage().delete(stored)
                return None
        except Exception as exc:
            log.warning("could not store the recording of run %s: %s", self.run.pk, exc)
            return None
        finally:
            path.unlink(missing_ok=True)


def _note_error(run_id: Any, error: str) -> None:
    """Keep why (part of) the recording was lost: a video with nothing recorded ends ``failed``."""
    from runs.models import Recording, RecordingStatus

    with contextlib.suppress(Exception):
        Recording.objects.filter(run_id=run_id, status=RecordingStatus.RECORDING).update(error=error[:2000])


def start_recording(run: Any, target_id: str) -> Recorder | None:
    """A recorder on the run's page, or None when recording is off or cannot start (logged)."""
    if not settings.TWIN_VIDEO or not run.record_video:
        return None
    from runs.models import Recording, RecordingStatus

    from .browser import page_ws_url

    try:
        # The run has a video from now on: one with no frames at all ends ``empty``.
        Recording.objects.get_or_create(run_id=run.pk, defaults={"status": RecordingStatus.RECORDING})
        url = page_ws_url(target_id)
        if url is None:
            raise RuntimeError(f"no CDP endpoint for the page {target_id!r} on this host")
        return Recorder(run, url, fps=settings.TWIN_VIDEO_FPS, quality=settings.TWIN_VIDEO_QUALITY).start()
    except Exception as exc:
        log.warning("could not record run %s: %s", run.pk, exc)
        _note_error(run.pk, f"{type(exc).__name__}: {exc}")
        return None


# -- a take-over, from the live view ---------------------------------------------------------------------
_takeovers: dict[str, TakeoverRecording] = {}
_takeovers_lock = threading.Lock()


class TakeoverRecording:
    """What a person did while taking a paused page over, as a segment of the run's video.

    The frames are the live view's own (``engine.liveview.Screencast`` hands each one over), so the
    video shows exactly what the person saw, secrets masked the same way; no second screencast runs.
    Kept at ``TWIN_VIDEO_FPS`` like the executor's recorder (a picture held back by the cap is kept
    if no newer one replaces it), and for at most ``TWIN_VIDEO_TAKEOVER_MAX_SECONDS``: a take-over
    left open for hours keeps its first minutes and the page as it was at the end of them.
    The segment carries one mark, ``{"kind": "takeover", "by": name}``: its chapter in the video.
    """

    def __init__(self, run_id: str, *, by: str, step_index: int, fps: float, max_seconds: float) -> None:
        self.run_id = str(run_id)
        self.by = by
        self.step_index = step_index
        self.min_gap = 1.0 / fps if fps > 0 else 0.0
        self.max_seconds = max_seconds
        self.frames = 0
        self.truncated = False
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115  (closed and removed in stop())
            prefix="twin-segment-", suffix=".frames", dir=frames_dir(), delete=False
        )
        self._file.write(MAGIC)
        self._lock = threading.Lock()  # frames come from the event loop, stop() runs in a thread
        self._last_t: float | None = None
        self._last: bytes = b""
        self._pending: tuple[float, str] | None = None  # a newer picture held back by the cap (base64)
        self._t0 = time.monotonic()
        self.started_at: datetime = timezone.now()

    def frame(self, data: str) -> None:
        """A frame of the live view (base64 JPEG): kept, held back by the cap, or past the bound."""
        t = time.monotonic() - self._t0
        with self._lock:
            if self._file.closed:
                return
            if t > self.max_seconds:
                self.truncated = True
                return
            if self._last_t is None:
                self._write(0.0, data)  # the page as the take-over starts
            elif t - self._last_t >= self.min_gap:
                self._write(t, data)  # (a held-back picture is older than this one: dropped)
            else:
                self._pending = (t, data)

    def _write(self, t: float, data: str) -> None:
        jpeg = base64.b64decode(data)
        write_frame(self._file, t, jpeg)
        self._last_t, self._last, self._pending = t, jpeg, None
        self.frames += 1

    def stop(self) -> Any:
        """Store the segment (None when it has no frame, or the run's video is already made)."""
        from runs.models import Recording, RecordingStatus, VideoSegment

        with _takeovers_lock:
            if _takeovers.get(self.run_id) is self:
                del _takeovers[self.run_id]
        duration = min(time.monotonic() - self._t0, self.max_seconds)
        with self._lock:
            if self._file.closed:
                return None
            if self._pending is not None and self._last_t is not None:  # its slot, as the cap allows
                self._write(
                    min(max(self._pending[0], self._last_t + self.min_gap), duration), self._pending[1]
                )
            if self._last_t is not None and duration > self._last_t:
                write_frame(self._file, duration, self._last)  # the page as it was at the end
            self._file.close()
        path = Path(self._file.name)
        try:
            if self.frames == 0:
                return None
            recording, _ = Recording.objects.get_or_create(
                run_id=self.run_id, defaults={"status": RecordingStatus.RECORDING}
            )
            if recording.status != RecordingStatus.RECORDING:  # made (or failed) without it: too late
                log.info("run %s: the take-over ended after its video was made; not added", self.run_id)
                return None
            mark = {
                "kind": "takeover",
                "by": self.by,
                "step_index": self.step_index,
                "t": 0.0,
                "seconds": round(duration, 3),
                "truncated": self.truncated,
            }
            for _attempt in range(5):  # an execution of the run may store one at the same moment
                seq = (
                    VideoSegment.objects.filter(run_id=self.run_id)
                    .order_by("-seq")
                    .values_list("seq", flat=True)
                    .first()
                    or 0
                ) + 1
                with path.open("rb") as handle:
                    stored = video_storage().save(f"{self.run_id}/segment-{seq}.frames", File(handle))
                try:
                    return VideoSegment.objects.create(
                        run_id=self.run_id,
                        seq=seq,
                        path=stored,
                        host=settings.TWIN_HOST_ID,
                        started_at=self.started_at,
                        ended_at=self.started_at + timedelta(seconds=duration),
                        duration=round(duration, 3),
                        frames=self.frames,
                        size=video_storage().size(stored),
                        marks=[mark],
                    )
                except IntegrityError:
                    video_storage().delete(stored)
            return None
        except Exception as exc:
            log.warning("could not store the take-over recording of run %s: %s", self.run_id, exc)
            return None
        finally:
            path.unlink(missing_ok=True)


def takeover_recording(*, run_id: Any, user: Any) -> TakeoverRecording | None:
    """A recording of this take-over, or None: recording is off (for Twin, for the run, or for
    take-overs), or another take-over of the run is being recorded here already (its frames
    show the same page)."""
    from runs.models import Run

    max_seconds = settings.TWIN_VIDEO_TAKEOVER_MAX_SECONDS
    if not settings.TWIN_VIDEO or max_seconds <= 0:
        return None
    run = Run.objects.filter(pk=run_id).only("record_video", "current_step").first()
    if run is None or not run.record_video:
        return None
    by = user.get_username() if user is not None else ""
    with _takeovers_lock:
        if str(run_id) in _takeovers:
            return None
        try:
            recording = TakeoverRecording(
                str(run_id),
                by=by,
                step_index=run.current_step,
                fps=settings.TWIN_VIDEO_FPS,
                max_seconds=float(max_seconds),
            )
        except OSError as exc:
            log.warning("could not record the take-over of run %s: %s", run_id, exc)
            return None
        _takeovers[str(run_id)] = recording
    return recording
