from __future__ import annotations

from django.conf import settings

DEFAULT_QUEUE = "runs"


def host_queue(host: str | None = None) -> str:
    """The queue only the given worker host consumes (where its parked pages live)."""
    return f"host.{host or settings.TWIN_HOST_ID}"
