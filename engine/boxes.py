"""Where a paused step's element is on the pause's screenshot (``Approval.boxes``).

Captured with the screenshot, in the viewport's CSS pixels: the decision card outlines the step's
element on the picture and, for a choice between elements, each one, numbered like the options.
Read off a page, so bounded and scrubbed like everything else a pause keeps: numbers only, at most
MAX_ELEMENTS elements, a role of lower-case letters, an accessible name of at most MAX_NAME
characters with the run's secrets scrubbed out. Nothing here waits: a selector that matches
nothing now outlines nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from runs.program import ELEMENT_ACTIONS, render, templates_in

MAX_ELEMENTS = 200  # elements measured for one selector
MAX_CANDIDATES = 50  # options outlined
MAX_NAME = 100
ROLE_RE = re.compile(r"[a-z]{1,30}")

# Each element's rectangle and a plain accessible role and name (explicit, else the common
# implicit ones). A text field's value is never read: it may be what an earlier step typed.
BOXES_JS = """(els) => els.slice(0, MAX_ELEMENTS).map((el) => {
  const clean = (s) => (s || '').replace(/\\s+/g, ' ').trim().slice(0, MAX_NAME);
  const r = el.getBoundingClientRect();
  const tag = el.tagName.toLowerCase();
  const type = (el.getAttribute('type') || '').toLowerCase();
  const buttonInput = tag === 'input' && ['submit', 'button', 'reset', 'image'].includes(type);
  let role = (el.getAttribute('role') || '').trim().split(/\\s+/)[0];
  if (!role) {
    if (tag === 'button' || buttonInput) role = 'button';
    else if (tag === 'a' && el.hasAttribute('href')) role = 'link';
    else if (tag === 'input' && (type === 'checkbox' || type === 'radio')) role = type;
    else if (tag === 'select') role = 'combobox';
    else if (tag === 'textarea') role = 'textbox';
    else if (tag === 'input' && !['hidden', 'range', 'color', 'file'].includes(type)) role = 'textbox';
  }
  let name = clean(el.getAttribute('aria-label'));
  const by = el.getAttribute('aria-labelledby');
  if (!name && by) {
    name = clean(by.split(/\\s+/).map((id) => {
      const t = document.getElementById(id); return t ? t.innerText : '';
    }).join(' '));
  }
  if (!name && el.labels && el.labels.length) {
    name = clean(Array.from(el.labels).map((l) => l.innerText).join(' '));
  }
  if (!name && buttonInput) name = clean(el.value);
  if (!name && role !== 'textbox' && role !== 'combobox') name = clean(el.innerText);
  if (!name) name = clean(el.getAttribute('placeholder')) || clean(el.getAttribute('title'));
  return {x: r.x, y: r.y, width: r.width, height: r.height, role: role, name: name};
})""".replace("MAX_ELEMENTS", str(MAX_ELEMENTS)).replace("MAX_NAME", str(MAX_NAME))

VIEWPORT_JS = "() => [window.innerWidth, window.innerHeight]"


def _coordinate(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return round(max(min(float(value), 1e6), -1e6), 1)


def box_of(raw: Any) -> dict[str, float] | None:
    """A measured rectangle, numbers only; None for anything else (or a zero-size element)."""
    if not isinstance(raw, dict):
        return None
    values = [_coordinate(raw.get(key)) for key in ("x", "y", "width", "height")]
    x, y, width, height = values
    if x is None or y is None or width is None or height is None or width <= 0 or height <= 0:
        return None
    return {"x": x, "y": y, "width": width, "height": height}


def element_of(raw: Any, scrub: Callable[[str], str]) -> dict[str, str] | None:
    """The role and accessible name a card names the element by."""
    if not isinstance(raw, dict):
        return None
    role = str(raw.get("role") or "").lower()
    role = role if ROLE_RE.fullmatch(role) else ""
    name = " ".join(scrub(str(raw.get("name") or "")).split())[:MAX_NAME]
    return {"role": role, "name": name} if role or name else None


def _params_only(text: str) -> bool:
    return all(expr.startswith("params.") for expr in templates_in(text))


def capture_boxes(
    page: Any,
    step: dict[str, Any],
    *,
    cause: str,
    candidates: list[dict[str, Any]] | None,
    options: list[str] | None,
    param: Callable[[str], str],
    scrub: Callable[[str], str],
) -> dict[str, Any] | None:
    """``{"viewport", "target", "candidates"[, "element"]}`` for the pause of ``step`` on ``page``.

    ``candidates`` is the order an ambiguity's options stand for (``{"nth"}`` of the selector's
    matches); a choice gate whose selector names ``{{choice}}`` outlines the element each option
    would mean. ``param`` resolves ``params.*`` templates (the only ones a selector resolves here).
    """
    size = page.evaluate(VIEWPORT_JS)
    if not (isinstance(size, list) and len(size) == 2):
        return None
    width, height = (_coordinate(value) for value in size)
    if width is None or height is None or width < 1 or height < 1:
        return None
    boxes: dict[str, Any] = {
        "viewport": {"width": width, "height": height},
        "target": None,
        "candidates": [],
    }
    selector = str(step.get("selector") or "")
    if step.get("action") not in ELEMENT_ACTIONS or not selector:
        return boxes

    def measure(css: str) -> list[Any]:
        found = page.locator(css).evaluate_all(BOXES_JS)
        return found if isinstance(found, list) else []

    if cause == "ambiguity":
        chosen = [c for c in candidates or [] if isinstance(c, dict)][:MAX_CANDIDATES]
        if not _params_only(selector) or any(c.get("lookalike") for c in chosen):
            # A skill's look-alikes are told apart by its recorded bundle, not by the selector.
            boxes["candidates"] = [None] * len(chosen)
            return boxes
        found = measure(render(selector, param))
        nths = [c.get("nth") for c in chosen]
        boxes["candidates"] = [
            box_of(found[nth]) if isinstance(nth, int) and 0 <= nth < len(found) else None for nth in nths
        ]
        seen = [found[nth] for nth in nths if isinstance(nth, int) and 0 <= nth < len(found)]
        elements = [element_of(raw, scrub) for raw in seen]
        roles = {e["role"] for e in elements if e}
        names = {e["name"] for e in elements if e}
        if len(roles) == 1:
            boxes["element"] = {"role": roles.pop(), "name": names.pop() if len(names) == 1 else ""}
        return boxes
    if cause == "gate" and "choice" in templates_in(selector) and options:
        rest = selector.replace("{{choice}}", "").replace("{{ choice }}", "")
        if _params_only(rest):
            measured = []
            for option in options[:MAX_CANDIDATES]:

                def lookup(expr: str, option: str = str(option)) -> str:
                    return option if expr == "choice" else param(expr)

                found = measure(render(selector, lookup))
                measured.append(box_of(found[0]) if len(found) == 1 else None)
            boxes["candidates"] = measured
        return boxes
    if not _params_only(selector):
        return boxes
    found = measure(render(selector, param))
    if len(found) == 1:
        boxes["target"] = box_of(found[0])
        element = element_of(found[0], scrub)
        if element:
            boxes["element"] = element
    return boxes
