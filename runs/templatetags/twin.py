from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def status_label(status: str) -> str:
    return (status or "").replace("_", " ")


@register.simple_tag
def duration(start: datetime | None, end: datetime | None = None) -> str:
    """A short human duration: 0.4 s, 12 s, 3 min 5 s, 2 h 10 min."""
    if start is None:
        return "—"
    seconds = ((end or timezone.now()) - start).total_seconds()
    if seconds < 10:
        return f"{max(seconds, 0):.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"
