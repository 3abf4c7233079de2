"""Joining a run's recorded segments into one video, and deleting old media.

Segments are laid end to end, so the time a run spent paused is cut out; each step's start
becomes a chapter and each join a pause mark. Frames are decoded from JPEG and encoded with
PyAV (its wheel carries FFmpeg): VP8 in WebM by default, H.264 in MP4 if configured, at the
frames' own times (a still page is one frame held, not hundreds of copies).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from runs.events import record_event
from runs.media import video_storage
from runs.models import TERMINAL_STATUSES, Recording, RecordingStatus, Run, Step, VideoSegment

from .recording import read_frames

if TYPE_CHECKING:
    from av.video.stream import VideoStream

log = logging.getLogger(__name__)

CODECS = {
    "vp8": ("libvpx", "webm", "video/webm", {"deadline": "realtime", "cpu-used": "8", "b": "2M"}),
    "h264": ("libx264", "mp4", "video/mp4", {"preset": "veryfast"}),
}
CONTAINER_OPTIONS = {"mp4": {"movflags": "+faststart"}}  # the index first: plays while loading
TIME_BASE = Fraction(1, 1000)
KEYFRAME_EVERY = 2.0  # seconds: where a player can seek to without decoding much


def _size(segments: list[VideoSegment]) -> tuple[int, int]:
    """The output size: the viewport, evened for the encoder."""
    width, height = settings.TWIN_VIEWPORT
    return width - width % 2, height - height % 2


def recording_finalize(run: Run) -> Recording | None:
    """Join the segments of a finished run into its video; None when it has nothing recorded."""
    segments = list(VideoSegment.objects.filter(run=run).order_by("seq"))
    recording = Recording.objects.filter(run=run).first()
    if recording is None:
        if not segments:
            return None
        recording = Recording.objects.create(run=run)
    if recording.status in {RecordingStatus.READY, RecordingStatus.PURGED}:
        return recording
    if not segments:  # nothing recorded: the recorder failed (its error is kept) or saw no frame
        Recording.objects.filter(pk=recording.pk).update(
            status=RecordingStatus.FAILED if recording.error else RecordingStatus.EMPTY,
            finished_at=timezone.now(),
        )
        recording.refresh_from_db()
        return recording
    Recording.objects.filter(pk=recording.pk).update(status=RecordingStatus.ENCODING)
    codec = settings.TWIN_VIDEO_CODEC if settings.TWIN_VIDEO_CODEC in CODECS else "vp8"
    encoder, container_format, content_type, options = CODECS[codec]
    started = time.process_time()
    out = Path(tempfile.mkstemp(prefix="twin-video-", suffix=f".{container_format}")[1])
    try:
        frames, duration, chapters, pauses = _encode(run, segments, out, encoder, container_format, options)
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        with out.open("rb") as handle:
            path = video_storage().save(f"{run.pk}/video.{container_format}", File(handle))
        size = video_storage().size(path)
    except Exception as exc:
        log.exception("run %s: the video could not be made", run.pk)
        Recording.objects.filter(pk=recording.pk).update(
            status=RecordingStatus.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=timezone.now(),
        )
        recording.refresh_from_db()
        return recording
    finally:
        out.unlink(missing_ok=True)
    width, height = _size(segments)
    with transaction.atomic():
        Recording.objects.filter(pk=recording.pk).update(
            status=RecordingStatus.READY if frames else RecordingStatus.EMPTY,
            path=path,
            content_type=content_type,
            duration=round(duration, 3),
            size=size,
            frames=frames,
            width=width,
            height=height,
            chapters=chapters,
            pauses=pauses,
            encode_seconds=round(time.process_time() - started, 3),
            sha256=digest,
            error="",
            finished_at=timezone.now(),
        )
        record_event(
            run,
            "video.ready",
            data={"duration": round(duration, 3), "size": size, "sha256": digest, "frames": frames},
        )
    for segment in segments:  # the raw frames are in the video now
        video_storage().delete(segment.path)
    recording.refresh_from_db()
    return recording


def _encode(
    run: Run,
    segments: list[VideoSegment],
    out: Path,
    encoder: str,
    container_format: str,
    options: dict[str, str],
) -> tuple[int, float, list[dict[str, Any]], list[dict[str, Any]]]:
    import av

    width, height = _size(segments)
    labels = dict(Step.objects.filter(run=run).values_list("index", "label"))
    approvals = list(run.approvals.order_by("created_at").values("pk", "created_at", "decided_at", "status"))
    chapters: dict[int, dict[str, Any]] = {}
    pauses: list[dict[str, Any]] = []
    frames, offset, last_pts = 0, 0.0, -1
    decoder = av.CodecContext.create("mjpeg", "r")
    with av.open(
        str(out), "w", format=container_format, options=CONTAINER_OPTIONS.get(container_format, {})
    ) as container:
        stream = cast(
            "VideoStream",
            container.add_stream(encoder, rate=max(int(settings.TWIN_VIDEO_FPS), 1), options=dict(options)),
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = TIME_BASE
        stream.codec_context.gop_size = max(int(KEYFRAME_EVERY * settings.TWIN_VIDEO_FPS), 1)
        if encoder == "libvpx":
            stream.codec_context.options = {**dict(options), "crf": str(settings.TWIN_VIDEO_CRF)}
        else:
            stream.codec_context.options = {**dict(options), "crf": str(min(settings.TWIN_VIDEO_CRF, 51))}
        for n, segment in enumerate(segments):
            if n:
                before = segments[n - 1]
                gap = (segment.started_at - before.ended_at).total_seconds()
                decided = next(
                    (
                        a
                        for a in approvals
                        if before.ended_at - timedelta(seconds=5) <= a["created_at"] <= segment.started_at
                    ),
                    None,
                )
                pauses.append(
                    {
                        "offset": round(offset, 3),
                        "paused_seconds": round(max(gap, 0.0), 3),
                        "approval_id": str(decided["pk"]) if decided else None,
                    }
                )
            for mark in segment.marks:
                chapters.setdefault(
                    mark["step_index"],
                    {
                        "step_index": mark["step_index"],
                        "offset": round(offset + mark["t"], 3),
                        "label": labels.get(mark["step_index"], ""),
                    },
                )
            with video_storage().open(segment.path, "rb") as handle:
                for t, jpeg in read_frames(handle):
                    pts = max(int((offset + t) * 1000), last_pts + 1)
                    for picture in decoder.decode(av.Packet(jpeg)):
                        picture = picture.reformat(width=width, height=height, format="yuv420p")
                        picture.pts, picture.time_base = pts, TIME_BASE
                        for packet in stream.encode(picture):
                            container.mux(packet)
                        frames += 1
                        last_pts = pts
            offset += segment.duration
        for packet in stream.encode():
            container.mux(packet)
    ordered = [chapters[i] for i in sorted(chapters)]
    return frames, offset, ordered, pauses


def finalize_due(run_id: Any) -> str:
    """What the finalize task does: wait while an execution still holds the run, then join."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return "gone"
    if run.status not in TERMINAL_STATUSES:
        return "not finished"
    if run.lease_owner and run.lease_until and run.lease_until > timezone.now():
        return "busy"
    recording = recording_finalize(run)
    return recording.status if recording is not None else "nothing recorded"


def unfinished_recordings(limit: int = 50) -> list[Any]:
    """Runs that ended a while ago whose video was never made (a lost task)."""
    cutoff = timezone.now() - timedelta(minutes=2)
    return list(
        Recording.objects.filter(
            status__in=[RecordingStatus.RECORDING, RecordingStatus.ENCODING],
            run__status__in=list(TERMINAL_STATUSES),
            run__finished_at__lt=cutoff,
        ).values_list("run_id", flat=True)[:limit]
    )


def media_purge(*, now: Any = None) -> int:
    """Delete videos and pause screenshots of runs that finished before the retention period."""
    days = settings.TWIN_MEDIA_RETENTION_DAYS
    if not days:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    with_shots = Run.objects.filter(finished_at__lt=cutoff, approvals__screenshot__gt="").values_list(
        "pk", flat=True
    )
    with_video = (
        Recording.objects.filter(run__finished_at__lt=cutoff)
        .exclude(status=RecordingStatus.PURGED)
        .values_list("run_id", flat=True)
    )
    ids = set(with_shots[:500]) | set(with_video[:500])
    return sum(_purge_run(run) for run in Run.objects.filter(pk__in=ids))


def _purge_run(run: Run) -> int:
    deleted: dict[str, int] = {"videos": 0, "segments": 0, "screenshots": 0}
    recording = Recording.objects.filter(run=run).first()
    if recording is not None and recording.path:
        video_storage().delete(recording.path)
        deleted["videos"] += 1
    for segment in VideoSegment.objects.filter(run=run):
        video_storage().delete(segment.path)
        deleted["segments"] += 1
    for approval in run.approvals.exclude(screenshot=""):
        default_storage.delete(approval.screenshot)
        deleted["screenshots"] += 1
    with transaction.atomic():
        if recording is not None:
            Recording.objects.filter(pk=recording.pk).update(
                status=RecordingStatus.PURGED, path="", purged_at=timezone.now()
            )
        run.approvals.exclude(screenshot="").update(screenshot="")  # the sha256 stays on record
        record_event(
            run,
            "media.purged",
            data={**deleted, "retention_days": settings.TWIN_MEDIA_RETENTION_DAYS},
        )
    return 1
