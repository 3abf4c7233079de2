"""The session video keeps what a person did while taking the paused page over, as a chapter
"Taken over by NAME", and opens on a poster (its first frame that is not blank), never a white frame.

The first tests join segments made here (solid-colour JPEGs) to check the joining, the chapters,
the poster and who may fetch it; the last ones take a real paused page over through the live view
with the real worker and Chromium, secrets masked as before.
"""

from __future__ import annotations

import base64
import io
import itertools
import time
import uuid
from datetime import timedelta
from fractions import Fraction
from typing import Any

import av
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.files.base import ContentFile
from django.utils import timezone

from engine import recording as recording_module
from engine.recording import MAGIC, TakeoverRecording, read_frames, takeover_recording, write_frame
from engine.video import finalize_due, recording_finalize
from runs.events import record_event
from runs.media import poster_path, video_storage
from runs.models import Recording, RecordingStatus, Run, RunEvent, VideoSegment
from tests.conftest import Persona, start_run, wait_run
from tests.site.server import ECHO_BOXES
from tests.test_live_view import click_the_note, communicator, next_message, note_program, page_eval
from tests.test_scrub import echo_program, is_black, is_plain, lightness
from tests.test_state_machine import paused_run
from tests.test_video import decoded, is_green, ready_recording, signed_in, streamed

WHITE, RED, BLUE, GREEN = (255, 255, 255), (220, 30, 30), (30, 60, 220), (30, 180, 60)


def jpeg(top: tuple[int, int, int], bottom: tuple[int, int, int] | None = None) -> bytes:
    """A 320x180 JPEG: one colour, or two (a page with something on it)."""
    width, height = 320, 180
    frame = av.VideoFrame(width, height, "rgb24")
    plane = frame.planes[0]
    pad = b"\0" * (plane.line_size - 3 * width)
    rows = [bytes(top if y < height // 2 or bottom is None else bottom) * width + pad for y in range(height)]
    plane.update(b"".join(rows))
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = width, height, "yuvj420p", Fraction(1, 25)
    packets = ctx.encode(frame.reformat(format="yuvj420p")) + ctx.encode(None)
    return b"".join(bytes(p) for p in packets)


def segment(
    run: Run,
    seq: int,
    started_at: Any,
    frames: list[tuple[float, bytes]],
    duration: float,
    marks: list[dict[str, Any]],
) -> VideoSegment:
    log = bytearray(MAGIC)
    for t, data in frames:
        chunk = io.BytesIO()
        write_frame(chunk, t, data)
        log += chunk.getvalue()
    path = video_storage().save(f"{run.pk}/segment-{seq}.frames", ContentFile(bytes(log)))
    return VideoSegment.objects.create(
        run=run,
        seq=seq,
        path=path,
        started_at=started_at,
        ended_at=started_at + timedelta(seconds=duration),
        duration=duration,
        frames=len(frames),
        size=len(log),
        marks=marks,
    )


def taken_over_run(alice: Persona, *, handed_back_after: float = 0.0) -> Run:
    """A finished run recorded as: steps 1 and 2 (white, then a page), a pause of 60 s, alice's
    take-over of 2 s (blue), then the resumed run (green). The resumed segment starts
    ``handed_back_after`` seconds after the take-over ends (negative: it overlaps it)."""
    run, _ = paused_run(alice.tenant, alice.user)
    Recording.objects.create(run=run, status=RecordingStatus.RECORDING)
    t0 = timezone.now() - timedelta(minutes=10)
    page = jpeg(WHITE, RED)
    segment(
        run,
        1,
        t0,
        [(0.0, jpeg(WHITE)), (0.5, page), (1.0, page)],
        1.0,
        [
            {"step_index": 1, "t": 0.0},
            {"step_index": 2, "t": 0.6},
        ],
    )
    taken = t0 + timedelta(seconds=61)
    takeover = [(0.0, page), (0.4, jpeg(BLUE)), (2.0, jpeg(BLUE))]
    mark = {"kind": "takeover", "by": "alice", "step_index": 2, "t": 0.0, "seconds": 2.0, "truncated": False}
    segment(run, 2, taken, takeover, 2.0, [mark])
    resumed = taken + timedelta(seconds=2.0 + handed_back_after)
    segment(
        run,
        3,
        resumed,
        [(0.0, jpeg(GREEN)), (1.0, jpeg(GREEN))],
        1.0,
        [
            {"step_index": 2, "t": 0.0},
            {"step_index": 3, "t": 0.5},
        ],
    )
    Run.objects.filter(pk=run.pk).update(
        status="completed", finished_at=timezone.now() - timedelta(minutes=5)
    )
    run.refresh_from_db()
    return run


# -- joining ------------------------------------------------------------------------------------------------
def test_a_take_over_is_a_chapter_of_its_own_between_the_step_it_paused_at_and_the_next(alice):
    run = taken_over_run(alice)

    recording = recording_finalize(run)

    assert recording is not None and recording.status == RecordingStatus.READY
    assert abs(recording.duration - 4.0) < 0.01  # the take-over's 2 s are in; the 60 s wait is not
    labels = [c.get("step_index", c["label"]) for c in recording.chapters]
    assert labels == [1, 2, "Taken over by alice", 3]
    takeover = recording.chapters[2]
    assert takeover == {
        "kind": "takeover",
        "by": "alice",
        "offset": 1.0,
        "seconds": 2.0,
        "label": "Taken over by alice",
        "truncated": False,
    }
    # The wait before the take-over is cut out and marked; handing back straight away is not a pause.
    assert [p["offset"] for p in recording.pauses] == [1.0]
    assert recording.pauses[0]["paused_seconds"] == 60.0

    frames, _ = decoded(recording)
    during = [rgb for t, rgb in frames if 1.4 <= t < 3.0]
    assert during and all(rgb[2] > 150 and rgb[0] < 80 for rgb in during), during  # blue: the take-over
    assert is_green(frames[-1][1])


def test_a_take_over_still_recording_when_the_run_resumed_is_cut_where_the_run_goes_on(alice):
    run = taken_over_run(alice, handed_back_after=-1.0)  # approved a second before handing back

    recording = recording_finalize(run)

    assert recording is not None and recording.status == RecordingStatus.READY
    assert abs(recording.duration - 3.0) < 0.01
    takeover = next(c for c in recording.chapters if c.get("kind") == "takeover")
    assert takeover["seconds"] == 1.0
    assert [c["offset"] for c in recording.chapters] == sorted(c["offset"] for c in recording.chapters)
    assert len(recording.pauses) == 1


def test_the_poster_is_the_first_frame_that_is_not_blank_and_is_served_like_the_video(alice, bob, carol):
    run = taken_over_run(alice)
    recording = recording_finalize(run)
    assert recording is not None

    path = poster_path(recording.path)
    with video_storage().open(path, "rb") as handle:
        poster = handle.read()
    assert poster == jpeg(WHITE, RED)  # not the white frame the run opened on

    url = f"/runs/{run.pk}/video/poster.jpg"
    response = signed_in(bob).get(url)  # a viewer of the tenant
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "private, max-age=3600"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert streamed(response) == poster
    assert signed_in(carol).get(url).status_code == 404  # another tenant
    page = signed_in(bob).get(f"/runs/{run.pk}/").content.decode()
    assert f'poster="{url}"' in page
    assert "Taken over by alice" in page

    body = alice.get(f"/api/runs/{run.pk}").json()
    assert body["poster_url"] == body["video_url"] + "/poster"
    api = alice.get(f"/api/runs/{run.pk}/video/poster")
    assert api.status_code == 200 and api["Content-Type"] == "image/jpeg"
    assert streamed(api) == poster
    assert carol.get(f"/api/runs/{run.pk}/video/poster").status_code == 404

    vtt = signed_in(bob).get(f"/runs/{run.pk}/video/chapters.vtt").content.decode()
    assert "\nTaken over by alice\n" in vtt and "\n3. " in vtt


def test_a_run_without_a_video_has_no_poster(alice):
    run, _ = paused_run(alice.tenant, alice.user)
    assert alice.get(f"/api/runs/{run.pk}").json()["poster_url"] is None
    assert alice.get(f"/api/runs/{run.pk}/video/poster").status_code == 404
    assert signed_in(alice).get(f"/runs/{run.pk}/video/poster.jpg").status_code == 404


def test_retention_deletes_the_poster_with_the_video(alice, settings):
    from engine.video import media_purge

    run = taken_over_run(alice)
    recording = recording_finalize(run)
    assert recording is not None
    assert video_storage().exists(poster_path(recording.path))
    Run.objects.filter(pk=run.pk).update(
        finished_at=timezone.now() - timedelta(days=settings.TWIN_MEDIA_RETENTION_DAYS + 1)
    )

    assert media_purge() == 1
    assert not video_storage().exists(poster_path(recording.path))


# -- the take-over's recording ------------------------------------------------------------------------------
def frame_data(rgb: tuple[int, int, int]) -> str:
    return base64.b64encode(jpeg(rgb)).decode()


def test_a_take_over_recording_keeps_the_frame_rate_and_stops_at_its_bound(alice, settings):
    run, _ = paused_run(alice.tenant, alice.user)
    recorder = TakeoverRecording(str(run.pk), by="alice", step_index=2, fps=10, max_seconds=0.5)
    for n in range(40):  # 40 frames in 0.8 s: a busy page, past the bound
        recorder.frame(frame_data(BLUE if n % 2 else RED))
        time.sleep(0.02)
    stored = recorder.stop()

    assert recorder.truncated
    assert stored is not None and stored.duration == 0.5
    assert stored.marks == [
        {"kind": "takeover", "by": "alice", "step_index": 2, "t": 0.0, "seconds": 0.5, "truncated": True}
    ]
    with video_storage().open(stored.path, "rb") as handle:
        times = [t for t, _ in read_frames(handle)]
    assert times[0] == 0.0 and times[-1] == 0.5
    assert all(b - a >= 0.099 for a, b in itertools.pairwise(times[:-1]))  # 10 a second at most
    assert len(times) <= 8
    assert Recording.objects.get(run=run).status == RecordingStatus.RECORDING


def test_only_one_take_over_of_a_run_is_recorded_at_once_and_none_when_recording_is_off(alice, bob, settings):
    run, _ = paused_run(alice.tenant, alice.user)
    first = takeover_recording(run_id=run.pk, user=alice.user)
    assert first is not None and first.by == "alice" and first.step_index == run.current_step
    assert takeover_recording(run_id=run.pk, user=bob.user) is None  # the same page, already recorded
    assert first.stop() is None  # no frame came: nothing stored
    assert VideoSegment.objects.filter(run=run).count() == 0
    again = takeover_recording(run_id=run.pk, user=bob.user)
    assert again is not None
    again.stop()

    settings.TWIN_VIDEO_TAKEOVER_MAX_SECONDS = 0
    assert takeover_recording(run_id=run.pk, user=alice.user) is None
    settings.TWIN_VIDEO_TAKEOVER_MAX_SECONDS = 900
    Run.objects.filter(pk=run.pk).update(record_video=False)
    assert takeover_recording(run_id=run.pk, user=alice.user) is None
    assert not recording_module._takeovers


def test_a_take_over_ended_after_the_video_was_made_is_not_added(alice):
    run = taken_over_run(alice)
    assert recording_finalize(run) is not None
    late = TakeoverRecording(str(run.pk), by="alice", step_index=2, fps=10, max_seconds=5)
    late.frame(frame_data(BLUE))
    assert late.stop() is None
    assert VideoSegment.objects.filter(run=run).count() == 3


def test_the_video_waits_for_a_take_over_the_live_view_has_not_stored_yet(alice):
    run, _ = paused_run(alice.tenant, alice.user)
    Recording.objects.create(run=run, status=RecordingStatus.RECORDING)
    Run.objects.filter(pk=run.pk).update(status="cancelled", finished_at=timezone.now())
    record_event(run, "takeover.started", actor=alice.user)

    assert finalize_due(run.pk) == "busy"

    record_event(run, "takeover.ended", actor=alice.user)
    assert finalize_due(run.pk) == RecordingStatus.EMPTY
    # A web process that died never says the take-over ended: the video does not wait for ever.
    other, _ = paused_run(alice.tenant, alice.user)
    Recording.objects.create(run=other, status=RecordingStatus.RECORDING)
    Run.objects.filter(pk=other.pk).update(
        status="cancelled", finished_at=timezone.now() - timedelta(minutes=2)
    )
    record_event(other, "takeover.started", actor=alice.user)
    assert finalize_due(other.pk) == RecordingStatus.EMPTY


# -- a real take-over ---------------------------------------------------------------------------------------
async def take_over(persona: Persona, run_id: str, during: Any) -> None:
    """Take the run's page over in the live view, do ``during(comm)``, and hand it back."""
    comm = communicator(persona, run_id)
    assert (await comm.connect(timeout=15))[0]  # a loaded machine: the consumer checks access first
    assert (await next_message(comm, "status"))["streaming"] is True
    await comm.send_json_to({"type": "takeover", "on": True})
    assert (await next_message(comm, "takeover"))["on"] is True
    await during(comm)
    await comm.send_json_to({"type": "takeover", "on": False})
    assert (await next_message(comm, "takeover"))["on"] is False
    await comm.disconnect(timeout=5)


async def keep_watching(comm: Any, seconds: float) -> None:
    """Ack frames for a while, as the viewer's page does (a receive that times out would end the
    consumer: wait only while there is nothing to read)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await comm.receive_nothing(timeout=0.05, interval=0.01):
            continue
        message = await comm.receive_json_from()
        if message["type"] == "frame":
            await comm.send_json_to({"type": "ack"})


def test_an_approvers_take_over_is_in_the_video_as_a_chapter_with_their_name(alice, site, worker):
    run = start_run(alice, note_program(site))
    assert run["status"] == "awaiting_approval", run
    run_id = run["id"]

    async def type_a_note(comm: Any) -> None:
        await click_the_note(comm, run_id)
        await keep_watching(comm, 0.5)
        await comm.send_json_to({"type": "text", "text": "typed by a person"})
        await keep_watching(comm, 1.5)

    async_to_sync(take_over)(alice, run_id, type_a_note)
    segments = list(VideoSegment.objects.filter(run_id=run_id).order_by("seq"))
    assert len(segments) == 2 and segments[1].marks[0]["kind"] == "takeover"
    assert segments[1].duration >= 1.5
    assert alice.post(f"/api/runs/{run_id}/approve").status_code == 202
    assert wait_run(alice, run_id)["status"] == "completed"

    recording = ready_recording(run_id)
    takeovers = [c for c in recording.chapters if c.get("kind") == "takeover"]
    assert [(c["label"], c["by"]) for c in takeovers] == [("Taken over by alice", "alice")]
    steps = [c for c in recording.chapters if "step_index" in c]
    assert steps[0]["offset"] <= takeovers[0]["offset"] <= steps[-1]["offset"]
    assert takeovers[0]["seconds"] >= 1.5
    assert recording.duration >= takeovers[0]["offset"] + takeovers[0]["seconds"] - 0.01
    assert video_storage().exists(poster_path(recording.path))
    frames, _ = decoded(recording)
    assert [t for t, _ in frames if takeovers[0]["offset"] <= t <= takeovers[0]["offset"] + 1.5]
    started = RunEvent.objects.filter(run_id=run_id, type="takeover.started").get()
    assert started.actor_id == alice.user.pk


def test_a_secret_shown_on_a_taken_over_page_stays_masked_in_the_video(alice, site, worker):
    secret = f"Tr0ub&dor-{uuid.uuid4().hex[:8]}!"
    assert alice.post("/api/secrets", {"name": "echo_secret", "value": secret}).status_code == 201
    run = start_run(alice, echo_program(site, "{{secrets.echo_secret}}"))
    assert run["status"] == "awaiting_approval", run
    run_id = run["id"]

    async def reload_the_page(comm: Any) -> None:
        # The person reloads the page: a new document the paused execution never masked.
        await page_eval(run_id, "window.__before = 1; location.reload(); 1")
        for _ in range(100):
            if await page_eval(
                run_id, "typeof window.__before === 'undefined' && document.readyState === 'complete'"
            ):
                break
            await sync_to_async(time.sleep)(0.1)
        await keep_watching(comm, 1.5)

    async_to_sync(take_over)(alice, run_id, reload_the_page)
    taken = VideoSegment.objects.get(run_id=run_id, seq=2)
    with video_storage().open(taken.path, "rb") as handle:
        _, first = next(read_frames(handle))
    picture = next(iter(av.CodecContext.create("mjpeg", "r").decode(av.Packet(first))))
    page_size = (picture.width, picture.height)  # the video scales the page's frames to its own size
    assert async_to_sync(page_eval)(run_id, "document.title").startswith("Echo: ")  # the value is on the page
    assert alice.post(f"/api/runs/{run_id}/cancel").status_code in {200, 202}
    recording = ready_recording(run_id)

    takeover = next(c for c in recording.chapters if c.get("kind") == "takeover")
    with video_storage().open(recording.path, "rb") as handle, av.open(handle, mode="r") as container:
        shown = [
            frame.reformat(format="rgb24")
            for frame in container.decode(video=0)
            if takeover["offset"] <= float(frame.time or 0) <= takeover["offset"] + takeover["seconds"]
        ]
    assert shown, "no frame of the take-over"
    masked = 0
    for picture in shown:
        for name, box in ECHO_BOXES.items():
            values = lightness(picture, box, page_size)
            assert is_plain(values), f"{name} shows the secret in the video"
            masked += is_black(values)
    assert masked, "the echo never showed in the take-over"


@pytest.fixture(autouse=True)
def _no_recording_left() -> Any:
    yield
    recording_module._takeovers.clear()
