from __future__ import annotations

import json
from typing import Any

from django import template
from django.utils.safestring import SafeString

from skills.display import mark_templates

register = template.Library()


@register.filter
def templated(text: Any) -> SafeString:
    """The text escaped, ``{{params.X}}`` and the other templates shown as chips."""
    return mark_templates("" if text is None else str(text))


@register.filter
def rate(value: float | None) -> str:
    """A success rate (0..1) as a percentage; a dash before any run ended."""
    return "—" if value is None else f"{value * 100:.0f}%"


@register.filter
def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


@register.filter
def example(value: Any) -> str:
    """A parameter's example as the API shows it: text as is, true/false, numbers."""
    return value if isinstance(value, str) else json.dumps(value)
