"""Joining a run's recorded segments into one video, and deleting old media.

Segments are laid end to end in the order they were recorded, so the time a run spent paused
is cut out, except a take-over (a person driving the paused page from the live view), which is
a segment of its own; each step's start becomes a chapter, as does each take-over ("taken over
by NAME"), and each join where time was cut out a pause mark. Frames are decoded from JPEG and
encoded with PyAV (its wheel carries FFmpeg): VP8 in WebM by default, H.264 in MP4 if
configured, at the frames' own times (a still page is one frame held, not hundreds of copies).
The video's poster, the picture a player shows before it plays, is the first frame that is not
blank, stored beside the video as a JPEG (``poster_path``).
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
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from runs.events import record_event
from runs.media import poster_path, video_storage
from runs.models import TERMINAL_STATUSES, Recording, RecordingStatus, Run, RunEvent, Step, VideoSegment

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
# A join shorter than this is not a pause worth marking (a take-over handed straight back).
MIN_PAUSE_MARK = 0.5
# A frame whose grey levels all lie within this range is blank (a white page before the first load).
BLANK_RANGE = 12


def _is_takeover(segment: VideoSegment) -> bool:
    return any(mark.get("kind") == "takeover" for mark in segment.marks)


def _blank(picture: Any) -> bool:
    """Whether a decoded frame is all one shade (a page not loaded yet): no poster."""
    small = picture.reformat(width=32, height=18, format="gray")
    plane = small.planes[0]
    data = bytes(plane)
    shades = b"".join(data[row * plane.line_size : row * plane.line_size + 32] for row in range(18))
    return max(shades) - min(shades) <= BLANK_RANGE


def _size(segments: list[VideoSegment]) -> tuple[int, int]:
    """The output size: the viewport, evened for the encoder."""
    width, height = settings.TWIN_VIEWPORT
    return width - width % 2, height - height % 2


def recording_finalize(run: Run) -> Recording | None:
    """Join the segments of a finished run into its video; None when it has nothing recorded."""
    segments = list(VideoSegment.objects.filter(run=run).order_by("started_at", "seq"))
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
        frames, duration, chapters, pauses, poster = _encode(
            run, segments, out, encoder, container_format, options
        )
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        with out.open("rb") as handle:
            path = video_storage().save(f"{run.pk}/video.{container_format}", File(handle))
        size = video_storage().size(path)
        _save_poster(run, path, poster)
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


def _save_poster(run: Run, video_path: str, jpeg: bytes) -> None:
    """Store the poster beside the video; a video without one still plays (logged)."""
    if not jpeg:
        return
    path = poster_path(video_path)
    try:
        video_storage().delete(path)  # a video made again: the poster's name stays the video's
        saved = video_storage().save(path, ContentFile(jpeg))
        if saved != path:  # the storage would not keep the name: the poster could not be found
            video_storage().delete(saved)
            log.warning("run %s: the poster was stored as %s, not %s", run.pk, saved, path)
    except Exception:
        log.exception("run %s: the poster could not be stored", run.pk)


def _encode(
    run: Run,
    segments: list[VideoSegment],
    out: Path,
    encoder: str,
    container_format: str,
    options: dict[str, str],
) -> tuple[int, float, list[dict[str, Any]], list[dict[str, Any]], bytes]:
    import av

    width, height = _size(segments)
    labels = dict(Step.objects.filter(run=run).values_list("index", "label"))
    approvals = list(run.approvals.order_by("created_at").values("pk", "created_at", "decided_at", "status"))
    chapters: dict[int, dict[str, Any]] = {}
    takeovers: list[dict[str, Any]] = []
    pauses: list[dict[str, Any]] = []
    frames, offset, last_pts = 0, 0.0, -1
    poster, last_jpeg = b"", b""
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
            # A take-over still recording when the run resumed overlaps the next segment: up to there.
            length = segment.duration
            if _is_takeover(segment) and n + 1 < len(segments):
                length = max(
                    min(length, (segments[n + 1].started_at - segment.started_at).total_seconds()), 0.0
                )
            before = segments[n - 1] if n else None
            gap = (segment.started_at - before.ended_at).total_seconds() if before is not None else 0.0
            # Straight into a take-over, or straight back from one: nothing cut out worth a mark.
            handed = before is not None and (_is_takeover(before) or _is_takeover(segment))
            if before is not None and not (handed and gap < MIN_PAUSE_MARK):
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
                if mark.get("kind") == "takeover":
                    by = str(mark.get("by") or "someone")
                    takeovers.append(
                        {
                            "kind": "takeover",
                            "by": by,
                            "offset": round(offset + mark["t"], 3),
                            "seconds": round(length, 3),
                            "label": f"Taken over by {by}",
                            "truncated": bool(mark.get("truncated")),
                        }
                    )
                    continue
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
                    if t > length + 0.001:
                        break
                    pts = max(int((offset + t) * 1000), last_pts + 1)
                    for picture in decoder.decode(av.Packet(jpeg)):
                        if not poster and not _blank(picture):
                            poster = jpeg
                        last_jpeg = jpeg
                        picture = picture.reformat(width=width, height=height, format="yuv420p")
                        picture.pts, picture.time_base = pts, TIME_BASE
                        for packet in stream.encode(picture):
                            container.mux(packet)
                        frames += 1
                        last_pts = pts
            offset += length
        for packet in stream.encode():
            container.mux(packet)
    # Steps in their order, each take-over where it happened (after the step it paused at).
    ordered = sorted([chapters[i] for i in sorted(chapters)] + takeovers, key=lambda c: c["offset"])
    return frames, offset, ordered, pauses, poster or last_jpeg


def finalize_due(run_id: Any) -> str:
    """What the finalize task does: wait while an execution still holds the run, then join."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return "gone"
    if run.status not in TERMINAL_STATUSES:
        return "not finished"
    if run.lease_owner and run.lease_until and run.lease_until > timezone.now():
        return "busy"
    if _takeover_open(run):
        return "busy"
    recording = recording_finalize(run)
    return recording.status if recording is not None else "nothing recorded"


TAKEOVER_GRACE = timedelta(seconds=60)


def _takeover_open(run: Run) -> bool:
    """Whether someone's take-over of the run has not been stored yet: the live view ends it as
    the run ends and stores its frames first, so wait a little; not for ever (a web process that
    died never ends it)."""
    if run.finished_at is None or run.finished_at < timezone.now() - TAKEOVER_GRACE:
        return False
    counts = dict(
        RunEvent.objects.filter(run=run, type__in=["takeover.started", "takeover.ended"])
        .values_list("type")
        .annotate(n=Count("id"))
        .values_list("type", "n")
    )
    return counts.get("takeover.started", 0) > counts.get("takeover.ended", 0)


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
        video_storage().delete(poster_path(recording.path))
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
