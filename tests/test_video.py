"""The session video: one playable file per run, across its pause, with the paused time cut out,
chapters at the steps, and old media deleted by retention (which the trail records)."""

from __future__ import annotations

import itertools
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import av
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from approvals.models import Approval
from engine.recording import MAGIC, read_frames, write_frame
from engine.video import media_purge
from runs.media import video_storage
from runs.models import Recording, RecordingStatus, Run, RunEvent, VideoSegment
from tests.conftest import Worker, start_run, wait_run, wait_until, worker_env
from tests.test_state_machine import paused_run

PAUSE_SECONDS = 3.0


def colors_program(site: Any) -> list[dict[str, Any]]:
    return [
        {"action": "goto", "url": site.url("/colors")},
        {"action": "wait_for", "selector": "#go"},
        {"action": "click", "selector": "#go", "gate": {"kind": "approval", "prompt": "Turn it green?"}},
        {"action": "assert_text", "text": "After"},
    ]


def average_rgb(frame: Any) -> tuple[float, float, float]:
    small = frame.reformat(width=32, height=18, format="rgb24")
    plane = small.planes[0]
    data = bytes(plane)
    pixels = [data[row * plane.line_size : row * plane.line_size + 32 * 3] for row in range(18)]
    flat = b"".join(pixels)
    count = len(flat) // 3
    return tuple(sum(flat[i::3]) / count for i in range(3))  # type: ignore[return-value]


def is_red(rgb: tuple[float, float, float]) -> bool:
    return rgb[0] > 150 and rgb[1] < 80


def is_green(rgb: tuple[float, float, float]) -> bool:
    return rgb[1] > 120 and rgb[0] < 80


def decoded(recording: Recording) -> tuple[list[tuple[float, tuple[float, float, float]]], float]:
    """(time, average colour) of every frame of the video, and its duration as the file says."""
    with video_storage().open(recording.path, "rb") as handle, av.open(handle, mode="r") as container:
        frames = [(float(f.time or 0), average_rgb(f)) for f in container.decode(video=0)]
        return frames, float(container.duration or 0) / 1_000_000


def streamed(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def signed_in(persona: Any) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def ready_recording(run_id: str) -> Recording:
    wait_until(
        lambda: Recording.objects.filter(run_id=run_id, status=RecordingStatus.READY).exists(),
        timeout=30,
        what="the run's video",
    )
    return Recording.objects.get(run_id=run_id)


def test_a_run_with_a_pause_makes_one_video_with_the_pause_cut_out(alice, site, worker):
    started = time.monotonic()
    run = start_run(alice, colors_program(site))
    assert run["status"] == "awaiting_approval", run
    time.sleep(PAUSE_SECONDS)
    assert alice.post(f"/api/runs/{run['id']}/approve").status_code == 202
    assert wait_run(alice, run["id"])["status"] == "completed"
    wall = time.monotonic() - started

    recording = ready_recording(run["id"])

    assert recording.content_type == "video/webm"
    assert VideoSegment.objects.filter(run_id=run["id"]).count() == 2  # before and after the pause
    frames, duration = decoded(recording)
    assert frames, "the video has no frames"
    assert 0.2 < duration < wall - PAUSE_SECONDS + 0.5, (duration, wall)
    assert abs(duration - recording.duration) < 0.5
    assert is_green(frames[-1][1]), frames[-1]  # the page after the gated click…
    (pause,) = recording.pauses
    approval = Approval.objects.get(run_id=run["id"])
    assert pause["approval_id"] == str(approval.pk)
    assert pause["paused_seconds"] >= PAUSE_SECONDS - 0.5
    before = [rgb for t, rgb in frames if t <= pause["offset"] + 0.002]  # segment 1 ends at the join
    after = [rgb for t, rgb in frames if t > pause["offset"] + 0.002]
    assert before and is_red(before[-1]), before  # …and before it (red), in the same file
    assert not any(is_green(rgb) for rgb in before)
    assert after and is_green(after[-1])

    chapters = recording.chapters
    assert [c["step_index"] for c in chapters] == [1, 2, 3, 4]
    offsets = [c["offset"] for c in chapters]
    assert offsets == sorted(offsets)
    assert all(0 <= o <= duration for o in offsets)
    assert chapters[2]["offset"] >= pause["offset"] - 0.01  # the gated step starts after the resume
    assert chapters[0]["label"]

    ready = RunEvent.objects.get(run_id=run["id"], type="video.ready")
    assert ready.data["sha256"] == recording.sha256
    assert not any(video_storage().exists(s.path) for s in VideoSegment.objects.filter(run_id=run["id"]))
    body = alice.get(f"/api/runs/{run['id']}").json()
    assert body["video_url"].endswith(f"/api/runs/{run['id']}/video")


def test_the_dashboard_serves_the_video_in_ranges_and_its_chapters_to_the_tenant_only(
    alice, bob, carol, site, worker
):
    run = start_run(alice, colors_program(site)[:2])
    assert run["status"] == "completed", run
    recording = ready_recording(run["id"])
    with video_storage().open(recording.path, "rb") as handle:
        data = handle.read()
    url = f"/runs/{run['id']}/video"

    viewer = signed_in(bob)  # a viewer of the run's tenant
    whole = viewer.get(url)
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    assert whole["Content-Type"] == "video/webm"
    assert streamed(whole) == data
    part = viewer.get(url, HTTP_RANGE="bytes=10-1009")
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 10-1009/{len(data)}"
    assert streamed(part) == data[10:1010]
    vtt = viewer.get(f"{url}/chapters.vtt")
    assert vtt.status_code == 200 and vtt["Content-Type"].startswith("text/vtt")
    text = vtt.content.decode()
    assert text.startswith("WEBVTT") and "1. goto" in text and "2. wait_for #go" in text
    detail = viewer.get(f"/runs/{run['id']}/").content.decode()
    assert 'id="video-player"' in detail and f'src="{url}"' in detail

    stranger = signed_in(carol)  # another tenant
    assert stranger.get(url).status_code == 404
    assert stranger.get(f"{url}/chapters.vtt").status_code == 404
    assert stranger.get(url, HTTP_RANGE="bytes=0-99").status_code == 404
    assert Client().get(url).status_code == 302  # signed out: to the sign-in page


def test_every_steps_change_of_the_page_is_in_the_video(alice, site, worker):
    """A still page repaints once per change: the video must have each one that lasted a frame
    (1/15 s), in step order."""
    clicks = 5
    program: list[dict[str, Any]] = [{"action": "goto", "url": site.url("/paint")}]
    for n in range(1, clicks + 1):  # step 2n clicks, step 2n + 1 waits 150 ms for the title
        program += [
            {"action": "click", "selector": "#next"},
            {"action": "assert_text", "text": f"Painted {n}"},
        ]
    run = start_run(alice, program)
    assert run["status"] == "completed", run
    recording = ready_recording(run["id"])
    frames, duration = decoded(recording)
    colours = [(200, 0, 0), (0, 170, 0), (0, 0, 200), (220, 220, 0), (200, 0, 200), (0, 200, 200)]

    def colour_of(rgb: tuple[float, float, float]) -> int | None:
        for n, (r, g, b) in enumerate(colours):
            if abs(rgb[0] - r) < 45 and abs(rgb[1] - g) < 45 and abs(rgb[2] - b) < 45:
                return n
        return None

    seen: list[tuple[float, int]] = []
    for t, rgb in frames:
        colour = colour_of(rgb)
        if colour is not None and (not seen or seen[-1][1] != colour):
            seen.append((t, colour))
    assert [colour for _, colour in seen] == list(range(clicks + 1)), seen
    starts = {c["step_index"]: c["offset"] for c in recording.chapters}
    assert sorted(starts) == list(range(1, len(program) + 1))
    for t, n in seen[1:]:  # colour n is what step 2n (the nth click) did: not before it started
        assert t >= starts[2 * n] - 0.01, (n, t, starts)
    assert abs(frames[0][0]) < 0.01 and abs(frames[-1][0] - duration) < 0.1  # a frame at each end


def test_with_recording_off_a_paused_and_resumed_run_records_nothing(alice, site, worker, settings):
    settings.TWIN_VIDEO = False
    worker.stop()
    unrecorded = Worker(worker_env(TWIN_VIDEO="0")).start()
    try:
        run = start_run(alice, colors_program(site))
        assert run["status"] == "awaiting_approval", run
        assert alice.post(f"/api/runs/{run['id']}/approve").status_code == 202
        assert wait_run(alice, run["id"])["status"] == "completed"
        time.sleep(0.5)  # a video task would have run by now
    finally:
        unrecorded.stop()
    assert not Recording.objects.filter(run_id=run["id"]).exists()
    assert not VideoSegment.objects.filter(run_id=run["id"]).exists()
    assert not RunEvent.objects.filter(run_id=run["id"], type="video.ready").exists()
    assert alice.get(f"/api/runs/{run['id']}").json()["video_url"] is None


def test_a_run_started_without_video_records_nothing_and_still_works(alice, site, worker):
    run = start_run(alice, [{"action": "goto", "url": site.url("/colors")}], record_video=False)

    assert run["status"] == "completed"
    assert run["record_video"] is False
    time.sleep(1.0)  # a video would be made by now
    assert not Recording.objects.filter(run_id=run["id"]).exists()
    assert not VideoSegment.objects.filter(run_id=run["id"]).exists()
    assert alice.get(f"/api/runs/{run['id']}").json()["video_url"] is None


def test_a_frame_log_cut_short_by_a_crash_still_reads(tmp_path):
    path = tmp_path / "segment.frames"
    with path.open("wb") as handle:
        handle.write(MAGIC)
        write_frame(handle, 0.0, b"\xff\xd8one")
        write_frame(handle, 0.5, b"\xff\xd8two")
    data = path.read_bytes()
    path.write_bytes(data[:-2])  # the last frame was half written

    with path.open("rb") as handle:
        assert [t for t, _ in read_frames(handle)] == [0.0]


@pytest.mark.usefixtures("private_urls")
def test_retention_deletes_old_videos_and_screenshots_and_the_trail_says_so(alice, settings):
    settings.TWIN_MEDIA_RETENTION_DAYS = 30
    old, approval = paused_run(alice.tenant, alice.user)
    recent, _ = paused_run(alice.tenant, alice.user)
    shot = default_storage.save(f"screenshots/{old.pk}/x.jpg", ContentFile(b"jpeg"))
    video = video_storage().save(f"{old.pk}/video.webm", ContentFile(b"webm"))
    kept = video_storage().save(f"{recent.pk}/video.webm", ContentFile(b"webm"))
    Approval.objects.filter(pk=approval.pk).update(screenshot=shot, screenshot_sha256="ab" * 32)
    Recording.objects.create(run=old, status=RecordingStatus.READY, path=video)
    Recording.objects.create(run=recent, status=RecordingStatus.READY, path=kept)
    Run.objects.filter(pk=old.pk).update(status="completed", finished_at=timezone.now() - timedelta(days=31))
    Run.objects.filter(pk=recent.pk).update(
        status="completed", finished_at=timezone.now() - timedelta(days=29)
    )

    assert media_purge() == 1

    assert not default_storage.exists(shot) and not video_storage().exists(video)
    assert video_storage().exists(kept)
    approval.refresh_from_db()
    assert approval.screenshot == "" and approval.screenshot_sha256 == "ab" * 32
    assert Recording.objects.get(run=old).status == RecordingStatus.PURGED
    purged = RunEvent.objects.get(run=old, type="media.purged")
    assert purged.data == {"videos": 1, "segments": 0, "screenshots": 1, "retention_days": 30}
    assert media_purge() == 0  # done once
    video_storage().delete(kept)


def test_a_recorder_that_cannot_reach_the_page_leaves_the_run_alone_and_the_video_failed(alice):
    from engine.recording import Recorder, start_recording
    from engine.video import recording_finalize

    run, _ = paused_run(alice.tenant, alice.user)
    assert start_recording(run, "") is None  # no page to record: logged, the run goes on
    recording = Recording.objects.get(run=run)
    assert recording.status == RecordingStatus.RECORDING and "no CDP endpoint" in recording.error
    Recording.objects.filter(pk=recording.pk).update(error="")

    recorder = Recorder(run, "ws://127.0.0.1:9/devtools/page/NOPE", fps=15, quality=60).start()
    recorder.mark(1)
    assert recorder.stop() is None  # nothing recorded, nothing stored
    assert Recording.objects.get(run=run).error  # why is kept
    Run.objects.filter(pk=run.pk).update(status="failed", finished_at=timezone.now())
    run.refresh_from_db()

    finalized = recording_finalize(run)
    assert finalized is not None and finalized.status == RecordingStatus.FAILED


def test_a_run_whose_recorder_saw_no_frame_has_an_empty_video(alice):
    from engine.video import recording_finalize

    run, _ = paused_run(alice.tenant, alice.user)
    Recording.objects.create(run=run, status=RecordingStatus.RECORDING)
    Run.objects.filter(pk=run.pk).update(status="cancelled", finished_at=timezone.now())
    run.refresh_from_db()

    finalized = recording_finalize(run)
    assert finalized is not None and finalized.status == RecordingStatus.EMPTY
    assert not RunEvent.objects.filter(run=run, type="video.ready").exists()


class FakePage:
    """A CDP page connection for the recorder: a burst of screencast frames, then a still page;
    answers screenshots. Records what the recorder sent, and when."""

    def __init__(self, burst: int, gap: float) -> None:
        import queue
        import threading

        self.burst, self.gap = burst, gap
        self.sent: list[tuple[float, dict[str, Any]]] = []
        self.inbox: queue.Queue[str | None] = queue.Queue()
        self.t0 = time.monotonic()
        self.threading = threading

    def __enter__(self) -> FakePage:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _feed(self) -> None:
        import base64
        import json

        for n in range(self.burst):
            data = base64.b64encode(f"frame {n}".encode()).decode()
            self.inbox.put(
                json.dumps({"method": "Page.screencastFrame", "params": {"sessionId": 1, "data": data}})
            )
            time.sleep(self.gap)

    def send(self, text: str) -> None:
        import base64
        import json

        message = json.loads(text)
        self.sent.append((time.monotonic() - self.t0, message))
        if message["method"] == "Page.startScreencast":
            self.threading.Thread(target=self._feed, daemon=True).start()
        elif message["method"] == "Page.captureScreenshot":
            data = base64.b64encode(b"still").decode()
            self.inbox.put(json.dumps({"id": message["id"], "result": {"data": data}}))

    def recv(self, timeout: float | None = None) -> str:
        import queue

        try:
            item = self.inbox.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if item is None:
            raise ConnectionError("closed")
        return item

    def close(self) -> None:
        self.inbox.put(None)


def test_the_recorder_paces_its_acks_and_asks_for_a_picture_when_a_busy_page_goes_still(alice, monkeypatch):
    """Acks at the frame rate make Chromium skip frames (it sends while fewer than 3 are out):
    a change dropped that way before the page went still is fetched with a screenshot."""
    import websockets.sync.client

    from engine.recording import Recorder, frames_dir

    # The burst arrives at once, as frames do when the page is busy: the recorder acks at its
    # frame rate only, so some are still out when the page goes still (Chromium would have
    # dropped changes then), and it asks for a picture. Timed gaps here made that depend on
    # the load of the machine running the test.
    page = FakePage(burst=12, gap=0.0)
    monkeypatch.setattr(websockets.sync.client, "connect", lambda *a, **k: page)
    run, _ = paused_run(alice.tenant, alice.user)
    # When the recorder decides to ack, by its own clock: a send is timed here after it, by as
    # much as the machine's scheduler delays the thread, which can make the next gap look short.
    acked_at: list[float] = []
    real_ack = Recorder._ack

    def ack(self: Recorder, now: float) -> None:
        acked_at.append(now)
        real_ack(self, now)

    monkeypatch.setattr(Recorder, "_ack", ack)
    recorder = Recorder(run, "ws://fake", fps=15, quality=60).start()
    # Until the page's still picture is in (about 0.8 s: the burst's acks go out at the frame
    # rate first); a deadline, not a fixed sleep, so a loaded machine does not fail it.
    deadline = time.monotonic() + 10
    while (recorder._last is None or recorder._last[1] != b"still") and time.monotonic() < deadline:
        time.sleep(0.02)
    frames_log = Path(recorder._file.name)
    segment = recorder.stop()
    assert frames_log.parent == frames_dir() and not frames_log.exists()  # stored, then removed

    acks = [t for t, m in page.sent if m["method"] == "Page.screencastFrameAck"]
    assert len([t for t in acks if t < 0.13]) <= 3  # not one per frame of the burst
    assert len(acked_at) == len(acks)
    assert all(b - a >= 1 / 15 - 0.005 for a, b in itertools.pairwise(acked_at)), acked_at
    shots = [t for t, m in page.sent if m["method"] == "Page.captureScreenshot"]
    assert shots and shots[-1] > 0.12  # after the burst (asked once the page was still)
    assert segment is not None
    with video_storage().open(segment.path, "rb") as handle:
        frames = list(read_frames(handle))
    video_storage().delete(segment.path)
    assert frames[0] == (0.0, b"frame 0")
    assert [jpeg for _, jpeg in frames[-2:]] == [b"still", b"still"]  # the picture, held to the end
    times = [t for t, _ in frames]
    assert times == sorted(times) and abs(times[-1] - segment.duration) < 0.001
    assert all(b - a >= 1 / 15 - 0.005 for a, b in itertools.pairwise(times[1:-1])), times


def test_the_hourly_purge_removes_frame_logs_of_executions_that_died(alice):
    """A worker killed mid-run never stores its segment: its frame log is removed after a day,
    and the logs of executions still going are left alone."""
    from engine.recording import frames_dir
    from runs.tasks import purge_media_task

    dead = frames_dir() / "twin-segment-dead.frames"
    alive = frames_dir() / "twin-segment-alive.frames"
    for path in (dead, alive):
        path.write_bytes(b"TWINFRM1")
    day_ago = time.time() - 25 * 3600
    os.utime(dead, (day_ago, day_ago))

    purge_media_task()

    assert not dead.exists()
    assert alive.exists()
    alive.unlink()


def test_what_a_step_left_is_in_the_video_however_soon_the_next_step_changes_it(tmp_path, settings):
    """The frame-rate cap holds a picture back until its slot; a step that starts before then
    would have replaced it with its own: the held-back picture goes in as the step starts."""
    from types import SimpleNamespace

    from engine.recording import Recorder

    settings.VAR_DIR = tmp_path
    recorder = Recorder(SimpleNamespace(pk="r"), "ws://127.0.0.1:9/nowhere", fps=15, quality=60)
    recorder._frame(b"the page as the run starts")
    recorder._frame(b"what step 1 left")  # 1/15 s not over: held back
    recorder.mark(2, "click")
    recorder._frame(b"what step 2 did")  # (held back in turn)
    recorder.mark(3, "click")

    recorder._file.close()
    with open(recorder._file.name, "rb") as handle:
        pictures = [jpeg for _, jpeg in read_frames(handle)]
    os.unlink(recorder._file.name)
    assert pictures == [b"the page as the run starts", b"what step 1 left", b"what step 2 did"]
