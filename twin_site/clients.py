"""Who is on the other end of a request: its address, as decisions record it and limits count it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_ipv46_address


def client_ip(request: Any) -> str | None:
    """``REMOTE_ADDR``, or X-Forwarded-For's first address with ``TWIN_TRUST_X_FORWARDED_FOR``
    (behind a proxy that sets it; otherwise anyone could write their own); None if not an IP."""
    meta = getattr(request, "META", {})
    ip = meta.get("REMOTE_ADDR") or None
    if settings.TWIN_TRUST_X_FORWARDED_FOR:
        forwarded = meta.get("HTTP_X_FORWARDED_FOR", "").split(",")[0].strip()
        ip = forwarded or ip
    try:
        validate_ipv46_address(ip or "")
    except ValidationError:
        return None
    return ip
