"""The run's ``video_url`` and the video behind it, over the API (byte ranges, tenant scope)."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import pytest
from django.core.files.base import ContentFile

from runs.media import video_storage
from runs.models import Recording, RecordingStatus
from tests.test_state_machine import paused_run

pytestmark = pytest.mark.usefixtures("private_urls")


def tiny_webm(frames: int = 12, size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=12)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 12)
        for n in range(frames):
            frame = av.VideoFrame(size[0], size[1], "yuv420p")
            for plane, value in zip(frame.planes, (16 + 16 * n, 128, 128), strict=True):
                plane.update(bytes([value]) * plane.buffer_size)
            frame.pts = n
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


@pytest.fixture
def recorded(alice):
    run, _ = paused_run(alice.tenant, alice.user)
    data = tiny_webm()
    path = video_storage().save(f"videos/{run.pk}.webm", ContentFile(data))
    Recording.objects.create(
        run=run, status=RecordingStatus.READY, path=path, content_type="video/webm", size=len(data)
    )
    yield run, data
    video_storage().delete(path)


def test_a_run_with_a_ready_video_links_it_and_the_video_can_be_read_in_ranges(alice, recorded):
    run, data = recorded

    body = alice.get(f"/api/runs/{run.pk}").json()
    assert body["video_url"] == f"http://testserver/api/runs/{run.pk}/video"

    whole = alice.get(f"/api/runs/{run.pk}/video")
    assert whole.status_code == 200
    assert whole["Content-Type"] == "video/webm"
    assert whole["Accept-Ranges"] == "bytes"
    assert b"".join(whole.streaming_content) == data

    part = alice.get(f"/api/runs/{run.pk}/video", HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert b"".join(part.streaming_content) == data[100:200]

    tail = alice.get(f"/api/runs/{run.pk}/video", HTTP_RANGE="bytes=-50")
    assert b"".join(tail.streaming_content) == data[-50:]
    beyond = alice.get(f"/api/runs/{run.pk}/video", HTTP_RANGE=f"bytes={len(data)}-")
    assert beyond.status_code == 416
    assert beyond["Content-Range"] == f"bytes */{len(data)}"

    with av.open(io.BytesIO(data), mode="r") as container:
        assert len(list(container.decode(video=0))) == 12


def test_another_tenant_sees_neither_the_run_nor_its_video(carol, recorded):
    run, _ = recorded

    assert carol.get(f"/api/runs/{run.pk}/video").status_code == 404
    assert carol.get(f"/api/runs/{run.pk}").status_code == 404


def test_a_run_without_a_ready_video_has_no_video_url(alice):
    run, _ = paused_run(alice.tenant, alice.user)
    Recording.objects.create(run=run, status=RecordingStatus.RECORDING)

    assert alice.get(f"/api/runs/{run.pk}").json()["video_url"] is None
    missing = alice.get(f"/api/runs/{run.pk}/video")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
