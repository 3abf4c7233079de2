from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone

from runs.cost import seconds_label

register = template.Library()


@register.filter
def status_label(status: str) -> str:
    return (status or "").replace("_", " ")


@register.simple_tag
def duration(start: datetime | None, end: datetime | None = None) -> str:
    """A short human duration: 0.4 s, 12 s, 3 min 5 s, 2 h 10 min."""
    if start is None:
        return "—"
    return seconds_label(((end or timezone.now()) - start).total_seconds())


def _span(seconds: float) -> str:
    """The largest unit only: "less than a minute", "4 min", "23 h", "3 days"."""
    if seconds < 60:
        return "less than a minute"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} days"


@register.filter
def ago(moment: datetime | None) -> str:
    """How long ago, for a person: "just now", "4 min ago"."""
    if moment is None:
        return ""
    seconds = (timezone.now() - moment).total_seconds()
    return "just now" if seconds < 60 else f"{_span(seconds)} ago"


@register.filter
def waited(moment: datetime | None) -> str:
    """How long something has waited since ``moment``: "less than a minute", "3 h"."""
    return "" if moment is None else _span(max((timezone.now() - moment).total_seconds(), 0))


@register.filter
def left(moment: datetime | None) -> str:
    """How long until ``moment``: "23 h", "less than a minute"."""
    return "" if moment is None else _span(max((moment - timezone.now()).total_seconds(), 0))


BLOCKED_OPTIONS = {"retry": "Retry the step", "skip": "Skip the step", "fail": "Fail the run"}


@register.filter
def option_label(option: str, trigger: str) -> str:
    """What a person reads for an option; the value sent stays the option itself."""
    return BLOCKED_OPTIONS.get(option, option) if trigger == "blocked" else option


@register.filter
def clock(seconds: float | None) -> str:
    """A position in a video: 0:07, 1:32, 1:02:05."""
    total = int(seconds or 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@register.filter
def percent_of(part: float | None, whole: float | None) -> str:
    """``part`` as a CSS percentage of ``whole`` (0 to 100, two decimals)."""
    if not whole:
        return "0%"
    return f"{max(0.0, min(100.0, 100.0 * float(part or 0) / float(whole))):.2f}%"


@register.filter
def filesize(size: int | None) -> str:
    value = float(size or 0)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


# -- the agent: what a person reads of a step the model planned ------------------------------------
def _count(number: int, word: str) -> str:
    return f"{number:,} {word}" + ("" if number == 1 else "s")


def _number(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


@register.filter
def planned_figures(planned: Any) -> str:
    """The model's figures for a planned step: "click · 1 call · 812 tokens · 0.9 s"."""
    if not isinstance(planned, dict):
        return ""
    parts = [str(planned.get("tool") or "")]
    calls = _number(planned.get("calls"))
    errors = planned.get("errors") if isinstance(planned.get("errors"), list) else []
    if calls:
        parts.append(_count(calls, "call") + (f" ({len(errors)} refused)" if errors else ""))
    tokens = _number(planned.get("tokens_in")) + _number(planned.get("tokens_out"))
    if tokens:
        parts.append(_count(tokens, "token"))
    latency = _number(planned.get("latency_ms"))
    if calls:
        parts.append(seconds_label(latency / 1000))
    return " · ".join(part for part in parts if part)


@register.filter
def policy_reason(planned: Any) -> str:
    """Why a planned step waits for a person, as they read it ("" when it does not)."""
    reason = planned.get("policy") if isinstance(planned, dict) else None
    if not reason:
        return ""
    if reason == "one-time code":
        return "needs a person: it types a one-time code"
    return f"needs approval: {reason}"


MISSING = object()


@register.simple_tag
def planned_step(approval: Any) -> dict[str, Any] | None:
    """What the agent planned at the step a pause waits at (None unless the model planned it).

    A view may have fetched it already (``approval.planned_step``, one query for a whole list).
    """
    known = getattr(approval, "planned_step", MISSING)
    if known is not MISSING:
        return known if isinstance(known, dict) else None
    if approval is None or getattr(approval.run, "planner", None) != "model":
        return None
    from runs.models import Step

    planned = (
        Step.objects.filter(run_id=approval.run_id, index=approval.step_index)
        .values_list("planned", flat=True)
        .first()
    )
    return planned if isinstance(planned, dict) else None
