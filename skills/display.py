"""What the skill pages show: steps described for a person, the diff of a version against the
previous one, and the chart of a skill's runs (an inline SVG built here, no script, no CDN)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.urls import reverse
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from engine import locators

from .models import SkillVersion
from .selectors import Point

TEMPLATE = re.compile(r"\{\{\s*(params|secrets|outputs|input|choice)(?:\.([A-Za-z0-9_.-]+))?\s*\}\}")


# -- steps --------------------------------------------------------------------------------------------
# What each locator of a bundle is called on the page.
BY_NAMES = {
    "testid": "test id",
    "id": "id",
    "role": "role and name",
    "label": "label",
    "placeholder": "placeholder",
    "name": "name attribute",
    "href": "link target",
    "text": "text",
    "context": "name and nearby text",
    "css": "CSS path",
    "xpath": "XPath",
}


@dataclass
class Locator:
    by: str  # which locator of the bundle the replay tries first ("role", "testid", …)
    description: str  # what it looks for, for a person: button “Sign in”
    selector: str  # the same as a Playwright selector
    fallbacks: list[str] = field(default_factory=list)  # the others that were unique, in order

    @property
    def by_name(self) -> str:
        return BY_NAMES.get(self.by, self.by)

    @property
    def fallback_names(self) -> list[str]:
        return [BY_NAMES.get(by, by) for by in self.fallbacks]

    @property
    def summary(self) -> str:
        return f"{self.by_name}: {self.description} ({self.selector})"


def _quote(value: str) -> str:
    return f"“{value}”"


def describe_locator(bundle: Any) -> Locator | None:
    """The bundle's primary locator for a person; None when the step has no (usable) bundle."""
    if not isinstance(bundle, dict) or not isinstance(bundle.get("fingerprint"), dict):
        return None
    by = locators.primary(bundle)
    raw_attributes = bundle.get("attributes")
    attributes: dict[str, Any] = raw_attributes if isinstance(raw_attributes, dict) else {}
    tag = str(bundle["fingerprint"].get("tag") or "element")
    texts = {
        "testid": _quote(str(bundle.get("testid", ""))),
        "id": _quote(str(attributes.get("id", ""))),
        "role": f"{bundle.get('role') or tag} {_quote(str(bundle.get('name', '')))}",
        "label": _quote(str(bundle.get("label", ""))),
        "placeholder": _quote(str(bundle.get("placeholder", ""))),
        "name": f"{tag} {_quote(str(attributes.get('name', '')))}",
        "href": str(attributes.get("href", "")),
        "text": f"{tag} {_quote(str(bundle.get('text', '')))}",
        "context": f"{_quote(str(bundle.get('name', '')))} next to {_quote(str(bundle.get('context', '')))}",
        "css": str(bundle.get("css", "")),
        "xpath": str(bundle.get("xpath", "")),
    }
    try:
        selector = locators.playwright_selector(bundle)
    except (KeyError, TypeError, AttributeError):
        selector = str(bundle.get("css") or tag)
    unique = [str(u) for u in bundle.get("unique") or []]
    return Locator(
        by=by or "none",
        description=texts.get(by, f"{tag}: no locator was unique when it was recorded"),
        selector=selector,
        fallbacks=unique[1:],
    )


@dataclass
class StepView:
    index: int
    action: str
    label: str
    locator: Locator | None
    target: str  # the selector or URL when there is no bundle
    value: str  # what is typed, chosen, pressed, asserted or extracted into
    value_kind: str  # "value", "url", "key", "text", "output"
    gate: dict[str, Any] | None
    step: dict[str, Any]


def describe_step(index: int, step: dict[str, Any]) -> StepView:
    action = str(step.get("action", ""))
    value, kind = "", "value"
    if "value" in step:
        value = str(step["value"])
    elif action == "goto":
        value, kind = str(step.get("url", "")), "url"
    elif "key" in step:
        value, kind = str(step["key"]), "key"
    elif "text" in step:
        value, kind = str(step["text"]), "text"
    elif action == "extract":
        value, kind = str(step.get("name", "")), "output"
    gate = step.get("gate") if isinstance(step.get("gate"), dict) else None
    return StepView(
        index=index,
        action=action,
        label=str(step.get("label") or ""),
        locator=describe_locator(step.get("locator")),
        target=str(step.get("selector") or ""),
        value=value,
        value_kind=kind,
        gate=gate,
        step=step,
    )


def describe_steps(steps: list[dict[str, Any]]) -> list[StepView]:
    return [describe_step(i, s) for i, s in enumerate(steps, start=1) if isinstance(s, dict)]


def mark_templates(text: str) -> SafeString:
    """``text`` escaped, with each ``{{params.X}}`` (and secret, output, input) as a chip."""
    pieces: list[str] = []
    last = 0
    for match in TEMPLATE.finditer(text):
        kind, name = match.group(1), match.group(2) or ""
        pieces.append(conditional_escape(text[last : match.start()]))
        pieces.append(
            format_html(
                '<mark class="tpl tpl-{}" title="{}">{}</mark>',
                kind,
                match.group(0),
                f"{kind}.{name}" if name else kind,
            )
        )
        last = match.end()
    pieces.append(conditional_escape(text[last:]))
    return mark_safe("".join(pieces))  # every piece is escaped or built above


# -- versions and their diffs --------------------------------------------------------------------------
@dataclass
class FieldChange:
    field: str
    old: str
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new


@dataclass
class StepChange:
    index: int
    kind: str  # "changed", "added", "removed"
    old: StepView | None
    new: StepView | None
    fields: list[FieldChange]


@dataclass
class VersionView:
    version: SkillVersion
    previous: int | None
    changes: list[StepChange]


def _signature(view: StepView) -> tuple[str, ...]:
    return (
        view.action,
        view.label,
        view.locator.selector if view.locator else view.target,
        view.value,
    )


def _fields(old: StepView | None, new: StepView | None) -> list[FieldChange]:
    def locator_of(v: StepView | None) -> str:
        if v is None:
            return ""
        return v.locator.summary if v.locator else v.target

    return [
        FieldChange("action", old.action if old else "", new.action if new else ""),
        FieldChange("label", old.label if old else "", new.label if new else ""),
        FieldChange("locator", locator_of(old), locator_of(new)),
        FieldChange("value", old.value if old else "", new.value if new else ""),
    ]


def version_diff(version: SkillVersion, previous: SkillVersion | None) -> list[StepChange]:
    """The steps of ``version`` that differ from ``previous``: the ones the version says it changed
    (a repair records them), else every step whose action, label, locator or value differs."""
    if previous is None:
        return []
    old = describe_steps(previous.steps)
    new = describe_steps(version.steps)
    listed = sorted({int(i) for i in version.changed_steps or [] if isinstance(i, int) and i > 0})
    if not listed:
        listed = [
            i
            for i in range(1, max(len(old), len(new)) + 1)
            if i > len(old) or i > len(new) or _signature(old[i - 1]) != _signature(new[i - 1])
        ]
    changes = []
    for i in listed:
        before = old[i - 1] if i <= len(old) else None
        after = new[i - 1] if i <= len(new) else None
        if before is None and after is None:
            continue
        kind = "added" if before is None else "removed" if after is None else "changed"
        fields = _fields(before, after)
        if not any(f.changed for f in fields):
            continue  # re-recorded with the same label, locator and value: nothing a person would see
        shown = [f for f in fields if f.changed or f.field == "label"]
        changes.append(StepChange(index=i, kind=kind, old=before, new=after, fields=shown))
    return changes


def version_history(versions: list[SkillVersion]) -> list[VersionView]:
    """Every version, newest first, each with its diff against the one before it."""
    ordered = sorted(versions, key=lambda v: v.version)
    views = [
        VersionView(
            version=v,
            previous=ordered[i - 1].version if i else None,
            changes=version_diff(v, ordered[i - 1] if i else None),
        )
        for i, v in enumerate(ordered)
    ]
    return list(reversed(views))


# -- the chart ------------------------------------------------------------------------------------------
WIDTH, HEIGHT = 520, 170
LEFT, RIGHT, TOP, BOTTOM = 74, 12, 12, 30


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 60 else f"{value / 60:.1f} min"


def _money(value: float, currency: str = "") -> str:
    digits = 2 if value >= 1 else 4 if value >= 0.001 else 6
    return f"{value:.{digits}f} {currency}".strip()


def run_chart(points: list[Point], *, metric: str, currency: str = "USD") -> SafeString:
    """An inline SVG of ``metric`` ("duration_s" or "amount") per run, oldest on the left: one
    dot per run (a link to it, with a tooltip), a line through them, the axis at 0 and the top."""
    if not points:
        return SafeString("")
    values = [float(getattr(p, metric)) for p in points]
    fmt = (lambda v: _seconds(v)) if metric == "duration_s" else (lambda v: _money(v, currency))
    axis_fmt = _seconds if metric == "duration_s" else _money  # the caption names the currency
    title = "Duration per run" if metric == "duration_s" else "Cost per run"
    top = max(values) * 1.1 or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w / 2 if len(points) == 1 else plot_w * i / (len(points) - 1))

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    coordinates = [(x(i), y(v)) for i, v in enumerate(values)]
    grid = format_html_join(
        "",
        '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
        '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>',
        (
            (LEFT, WIDTH - RIGHT, f"{y(v):.1f}", f"{y(v):.1f}", LEFT - 6, f"{y(v) + 4:.1f}", axis_fmt(v))
            for v in (0.0, top / 2, top)
        ),
    )
    line = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coordinates)
    dots = format_html_join(
        "",
        '<a href="{}"><circle class="point point-{}" cx="{}" cy="{}" r="4">'
        "<title>{} · {} · {}</title></circle></a>",
        (
            (
                reverse("run", args=[p.run_id]),
                p.status,
                f"{cx:.1f}",
                f"{cy:.1f}",
                p.created_at.strftime("%Y-%m-%d %H:%M"),
                p.status,
                fmt(v),
            )
            for p, v, (cx, cy) in zip(points, values, coordinates, strict=True)
        ),
    )
    first, last = points[0].created_at, points[-1].created_at
    dates = format_html(
        '<text class="axis" x="{}" y="{}" text-anchor="start">{}</text>'
        '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>',
        LEFT,
        HEIGHT - 8,
        first.strftime("%Y-%m-%d %H:%M"),
        WIDTH - RIGHT,
        HEIGHT - 8,
        last.strftime("%Y-%m-%d %H:%M") if len(points) > 1 else "",
    )
    return format_html(
        '<svg class="chart chart-{}" viewBox="0 0 {} {}" width="{}" height="{}" role="img" '
        'aria-label="{}: {} runs, latest {}">'
        "<title>{}</title>{}{}"
        '<polyline class="series" points="{}"></polyline>{}</svg>',
        metric.replace("_", "-"),
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        title,
        len(points),
        fmt(values[-1]),
        title,
        grid,
        dates,
        line,
        dots,
    )
