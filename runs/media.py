"""Serving stored media (videos, screenshots) with HTTP range requests, from any Django storage."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage, storages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

CHUNK = 256 * 1024
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def video_storage() -> Any:
    """Where session videos live: the ``videos`` storage when configured, else the default one."""
    return storages["videos"] if "videos" in settings.STORAGES else default_storage


def _chunks(handle: Any, start: int, length: int) -> Iterator[bytes]:
    try:
        handle.seek(start)
        left = length
        while left > 0:
            data = handle.read(min(CHUNK, left))
            if not data:
                break
            left -= len(data)
            yield data
    finally:
        handle.close()


def ranged_file_response(
    request: HttpRequest, storage: Any, path: str, content_type: str, *, filename: str = ""
) -> HttpResponseBase:
    """The file, or the byte range the browser asked for (206), so a video can seek.

    One range per request (what browsers send for media); a range past the end is a 416.
    """
    if not path or not storage.exists(path):
        return HttpResponse("this file is no longer stored", status=404, content_type="text/plain")
    size = storage.size(path)
    start, end = 0, size - 1
    status = 200
    header = request.headers.get("Range", "")
    match = RANGE_RE.match(header.strip()) if header else None
    if match and (match.group(1) or match.group(2)):
        first, last = match.group(1), match.group(2)
        if first:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
        else:  # "bytes=-N": the last N bytes
            start = max(size - int(last), 0)
        if start >= size or start > end:
            refused = HttpResponse(status=416)
            refused["Content-Range"] = f"bytes */{size}"
            return refused
        status = 206
    length = end - start + 1
    response = StreamingHttpResponse(
        _chunks(storage.open(path, "rb"), start, length), status=status, content_type=content_type
    )
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    if filename:
        response["Content-Disposition"] = f'inline; filename="{filename}"'
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def video_response(request: HttpRequest, recording: Any) -> HttpResponseBase:
    """A run's session video (a ready ``Recording``), with byte ranges."""
    return ranged_file_response(
        request, video_storage(), recording.path, recording.content_type or "video/webm"
    )


def poster_path(video_path: str) -> str:
    """Where the poster of the video at ``video_path`` is stored: beside it, as a JPEG."""
    return str(PurePosixPath(video_path).with_suffix(".jpg")) if video_path else ""


def poster_response(request: HttpRequest, recording: Any) -> HttpResponseBase:
    """A run's video poster (the first frame that is not blank, as a JPEG); 404 for a video made
    before posters were."""
    return ranged_file_response(request, video_storage(), poster_path(recording.path), "image/jpeg")


def chapters_response(recording: Any) -> HttpResponse:
    """A run's steps as the WebVTT chapters track of its video."""
    return HttpResponse(chapters_vtt(recording), content_type="text/vtt; charset=utf-8")


def chapters_vtt(recording: Any) -> str:
    def stamp(seconds: float) -> str:
        millis = round(seconds * 1000)
        hours, rest = divmod(millis, 3_600_000)
        minutes, rest = divmod(rest, 60_000)
        return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"

    lines = ["WEBVTT", ""]
    chapters = recording.chapters
    for n, chapter in enumerate(chapters):
        end = chapters[n + 1]["offset"] if n + 1 < len(chapters) else recording.duration
        if chapter.get("kind") == "takeover":
            label = str(chapter["label"])
        else:
            label = f"{chapter['step_index']}. {chapter['label']}"
        # Cue text is markup of its own (&, <, > are escaped) and ends at a blank line.
        label = " ".join(label.replace("-->", "→").split())
        label = label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        lines += [
            str(n + 1),
            f"{stamp(chapter['offset'])} --> {stamp(max(end, chapter['offset']))}",
            label,
            "",
        ]
    return "\n".join(lines)
