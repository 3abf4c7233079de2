"""What a pause's decision card says: the action approving performs, in words, what comes after it,
what each option does, and where the step's element (or each candidate) sits on the screenshot.

Everything here reads the program, the pause and the boxes captured at it; all of it came from a
tenant or a page, so it is cut to size and returned as plain text for the template to escape.
A step's value is never shown resolved: ``{{secrets.X}}`` reads "the secret X", ``{{input}}``
"your input", ``{{params.X}}`` "the parameter X".
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models.fields.json import KeyTransform

from engine.planner import action_words, page_place
from runs.program import ELEMENT_ACTIONS, TEMPLATE_RE

NEXT_STEPS = 3
MAX_WORDS = 160  # one step in words
MAX_SHOWN = 80  # a literal value, a selector, a name inside those words
MAX_BOXES = 50
MAX_PIXELS = 100_000  # a viewport side; a page reporting more is not believed

VERBS = {"click": "click", "fill": "type into", "check": "tick", "select": "choose in"}
TEMPLATE_WORDS = {"input": "your input", "choice": "the option you choose"}


def _cut(text: Any, limit: int = MAX_SHOWN) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def value_words(value: Any, *, trigger: str = "") -> str:
    """What a step's value reads as, templates named, never resolved."""
    text = str(value or "")

    def name(expr: str) -> str:
        source, _, rest = expr.partition(".")
        if expr == "input":
            return "the code" if trigger == "mfa" else "your input"
        if source == "secrets":
            return f"the secret {_cut(rest, 40)}"
        if source == "params":
            return f"the parameter {_cut(rest, 40)}"
        if source == "outputs":
            return f"the output {_cut(rest, 40)}"
        return TEMPLATE_WORDS.get(expr, "a value")

    exprs = [expr.strip() for expr in TEMPLATE_RE.findall(text)]
    if len(exprs) == 1 and TEMPLATE_RE.fullmatch(text.strip()):
        return name(exprs[0])
    if exprs:
        # Mixed text and templates: the literal parts quoted, each template by its name.
        shown = TEMPLATE_RE.sub(lambda m: "[" + name(m.group(1).strip()) + "]", text)
        return repr(_cut(shown))
    return repr(_cut(text))


def _element(step: dict[str, Any], *elements: Any) -> tuple[str, str]:
    """The role and accessible name of the step's element: seen at the pause, else recorded."""
    for source in (*elements, step.get("locator")):
        if isinstance(source, dict) and (source.get("name") or source.get("role")):
            return _cut(source.get("role"), 30), _cut(source.get("name"))
    return "", ""


def _target(step: dict[str, Any], role: str, name: str) -> str:
    if role or name:
        return action_words("click", role=role, name=name).removeprefix("Click ")
    selector = str(step.get("selector") or "")
    if TEMPLATE_RE.search(selector):
        return "the element " + value_words(selector)
    return f"the element {_cut(selector)!r}" if selector else "an element"


def step_words(step: Any, *, element: Any = None, trigger: str = "", planned: Any = None) -> str:
    """One step as a person reads it: ``Click button 'Pay $42.00'``, ``Type the secret PIN into …``."""
    if not isinstance(step, dict):
        return "(unknown step)"
    action = str(step.get("action") or "")
    role, name = _element(step, element, planned.get("element") if isinstance(planned, dict) else None)
    what = _target(step, role, name)
    if action == "goto":
        url = str(step.get("url") or "")
        words = f"Open {value_words(url)}" if TEMPLATE_RE.search(url) else f"Open {page_place(url)}"
    elif action == "click":
        words = f"Click {what}"
    elif action == "check":
        words = f"Tick {what}"
    elif action == "fill":
        words = f"Type {value_words(step.get('value'), trigger=trigger)} into {what}"
    elif action == "select":
        words = f"Choose {value_words(step.get('value'))} in {what}"
    elif action == "press":
        words = f"Press {_cut(step.get('key'), 30)} in {what}"
    elif action == "wait_for":
        words = f"Wait for {what} to appear"
    elif action == "extract":
        words = f"Read {what} into the output {_cut(step.get('name'), 40)!r}"
    elif action == "assert_text":
        words = f"Check that the page shows {value_words(step.get('text'))}"
    elif action == "plan":
        words = "Let the agent decide the next step"
    elif action == "ask":
        words = "Answer the agent's question"
    elif action == "done":
        words = "Finish the run"
    else:
        words = _cut(action, 30) or "(unknown step)"
    label = _cut(step.get("label"))
    if (
        label
        and not (role or name)
        and action not in {"ask", "plan", "done"}
        and label.lower() != words.lower()
    ):
        # The program's own name for the step first; the element as the selector says.
        words = f"{label}: {words[:1].lower()}{words[1:]}"
    return _cut(words, MAX_WORDS)


@dataclass
class Box:
    """A rectangle on the screenshot, in the viewport's CSS pixels, kept inside the viewport."""

    x: float
    y: float
    width: float
    height: float
    number: int = 0
    inside: bool = True  # False: the element lies outside the part of the page the screenshot shows
    # Where a candidate's number tag goes (above its top-left corner, kept on the picture).
    tag_x: float = 0
    tag_y: float = 0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def box_of_raw(raw: Any) -> bool:
    """Whether a captured box is one (numbers, not empty)."""
    keys = ("x", "y", "width", "height")
    return isinstance(raw, dict) and all(_number(raw.get(key)) is not None for key in keys)


def clip_box(raw: Any, width: float, height: float, number: int = 0) -> Box | None:
    """``raw`` ({x, y, width, height}) clipped to the viewport; None for nonsense."""
    if not isinstance(raw, dict):
        return None
    x, y, w, h = (_number(raw.get(key)) for key in ("x", "y", "width", "height"))
    if x is None or y is None or w is None or h is None or w < 0 or h < 0:
        return None
    left, top = max(x, 0.0), max(y, 0.0)
    right, bottom = min(x + w, width), min(y + h, height)
    if right - left < 1 or bottom - top < 1:
        return Box(0, 0, 0, 0, number=number, inside=False)
    return Box(round(left, 1), round(top, 1), round(right - left, 1), round(bottom - top, 1), number=number)


@dataclass
class Shot:
    width: int
    height: int
    target: Box | None = None
    candidates: list[Box] = field(default_factory=list)

    @property
    def tag(self) -> int:
        """A number tag's side: about the height of the smallest outlined element, so that the tags
        of elements in neighbouring rows do not cover each other, within a share of the picture."""
        smallest = min((box.height for box in self.drawn), default=self.width / 48)
        return round(max(14.0, min(smallest + 2, self.width / 48)))

    @property
    def tag_text_x(self) -> float:
        return self.tag / 2

    @property
    def tag_text_y(self) -> float:
        return self.tag * 0.75

    @property
    def tag_font(self) -> float:
        return round(self.tag * 0.7, 1)

    @property
    def drawn(self) -> list[Box]:
        return [box for box in self.candidates if box.inside]

    @property
    def outside(self) -> list[int]:
        return [box.number for box in self.candidates if not box.inside]


def shot_of(boxes: Any) -> Shot | None:
    """The outlines to draw over a pause's screenshot (None: no usable viewport was captured)."""
    if not isinstance(boxes, dict) or not isinstance(boxes.get("viewport"), dict):
        return None
    width = _number(boxes["viewport"].get("width"))
    height = _number(boxes["viewport"].get("height"))
    if width is None or height is None or not (1 <= width <= MAX_PIXELS and 1 <= height <= MAX_PIXELS):
        return None
    shot = Shot(int(width), int(height), target=clip_box(boxes.get("target"), width, height))
    raw = boxes.get("candidates")
    if isinstance(raw, list):
        for number, candidate in enumerate(raw[:MAX_BOXES], start=1):
            box = clip_box(candidate, width, height, number)
            if box is not None:
                shot.candidates.append(box)
        # Each number beside its element: on the right, else on the left, level with its middle.
        tag = shot.tag
        for box in shot.drawn:
            right = box.x + box.width + 2
            box.tag_x = round(right if right + tag <= width else max(box.x - tag - 2, 0), 1)
            box.tag_y = round(min(max(box.y + (box.height - tag) / 2, 0), height - tag), 1)
    return shot


@dataclass
class Option:
    value: str
    label: str
    number: int = 0  # its outline's number on the screenshot (ambiguity), 0: none
    why: str = ""  # what choosing it does (blocked)


@dataclass
class Card:
    title: str
    lead: str  # what the sentence below it is
    action: str  # what approving performs, in words
    next_steps: list[tuple[int, str]]
    options: list[Option]
    reject_why: str
    shot: Shot | None
    step: dict[str, Any] | None
    repeats_prompt: bool = False  # the prompt says it already (a step the agent planned)


def _blocked_options(item: Any) -> list[Option]:
    index, count = item.step_index, item.step_count
    after = f"go on with step {index + 1}" if index < count else "finish the run"
    why = {
        "retry": f"Do step {index} again on the page as it is now (fix the page first in the live view).",
        "skip": f"Leave step {index} undone and {after}.",
        "fail": "End the run now as failed; nothing more happens on the page.",
    }
    labels = {"retry": "Retry the step", "skip": "Skip the step", "fail": "Fail the run"}
    return [
        Option(str(option), labels.get(str(option), _cut(option)), why=why.get(str(option), ""))
        for option in item.options or []
    ]


def with_card_steps(items: Iterable[Any]) -> None:
    """Give each pause ``card_steps``: its step and up to NEXT_STEPS after it, from the program.

    A list whose runs were loaded without their programs (the inbox defers them: kilobytes a run)
    reads only those steps, one query per distinct step index among the items, not one a card.
    """
    from runs.models import Run

    waiting: dict[int, list[Any]] = defaultdict(list)
    for item in items:
        if hasattr(item, "card_steps"):
            continue
        start = max(int(item.step_index) - 1, 0)
        if "program" not in item.run.get_deferred_fields():
            program = item.run.program if isinstance(item.run.program, list) else []
            item.card_steps = list(program[start : start + NEXT_STEPS + 1])
        else:
            waiting[start].append(item)
    names = [f"s{i}" for i in range(NEXT_STEPS + 1)]
    for start, group in waiting.items():
        rows = (
            Run.objects.filter(pk__in={item.run_id for item in group})
            .annotate(**{name: KeyTransform(str(start + i), "program") for i, name in enumerate(names)})
            .values("pk", *names)
        )
        found = {row["pk"]: [row[name] for name in names if row[name] is not None] for row in rows}
        for item in group:
            item.card_steps = found.get(item.run_id, [])


def _program_slice(item: Any) -> list[Any]:
    if not hasattr(item, "card_steps"):
        with_card_steps([item])
    return list(item.card_steps)


def card_for(item: Any) -> Card:
    steps = _program_slice(item)

    step = steps[0] if steps and isinstance(steps[0], dict) else None
    boxes = item.boxes if isinstance(item.boxes, dict) else {}
    element = boxes.get("element") if isinstance(boxes.get("element"), dict) else None
    trigger = item.trigger
    from runs.templatetags.twin import planned_step

    planned = planned_step(item)
    words = (
        step_words(step, element=element, trigger=trigger, planned=planned)
        if step
        else _cut(item.prompt, MAX_WORDS)
    )
    options: list[Option] = []
    reject_why = "Reject: the step is not done and the run ends as rejected."
    if trigger == "blocked":
        title, lead = "Blocked — needs a decision", f"Step {item.step_index} could not proceed"
        action = words
        options = _blocked_options(item)
        reject_why = "Reject: end the run as rejected (like fail, but recorded as your refusal)."
    elif item.kind == "input":
        title = "One-time code needed" if trigger == "mfa" else "Input needed"
        lead, action = "Submitting will", words
    elif item.kind == "choice":
        count = len(item.options or [])
        if item.cause == "ambiguity":
            title = "Ambiguity — which element?"
            lead = "Choosing will"
            role, name = _element(step or {}, element, planned.get("element") if planned else None)
            plural = f"{role or 'element'}s" + (f" {name!r}" if name else "")
            verb = VERBS.get(str((step or {}).get("action")), "act on")
            action = f"Choose one of {count} {plural}, then {verb} the one you choose"
        else:
            title, lead, action = "Choice needed", "Choosing will", words
        # An option is numbered when its element is outlined on the screenshot (same number).
        found = boxes.get("candidates")
        raw: list[Any] = found if isinstance(found, list) else []
        outlined = shot_of(boxes) if item.screenshot else None
        options = [
            Option(
                str(option),
                _cut(option, 200),
                number=i if outlined and i <= len(raw) and box_of_raw(raw[i - 1]) else 0,
            )
            for i, option in enumerate(item.options or [], start=1)
        ]
    else:
        title, lead, action = "Approval needed", "Approving will", words
    next_steps: list[tuple[int, str]] = []
    for offset, later in enumerate(steps[1:], start=1):
        if not isinstance(later, dict):
            break
        next_steps.append((item.step_index + offset, step_words(later)))
        if later.get("action") in {"plan", "done"}:
            break  # what the agent does after it is not known yet
    prompt = str(item.prompt or "").lower()
    # The agent's prompt already says the action (in the same words, from the element it chose);
    # when the program names no element at all the prompt says more than the card could.
    unnamed = isinstance(step, dict) and not step.get("selector") and step.get("action") in ELEMENT_ACTIONS
    repeats = bool(action) and (prompt.startswith(action.lower()) or (planned is not None and unnamed))
    return Card(
        title=title,
        lead=lead,
        action=_cut(action, MAX_WORDS + 60),
        next_steps=next_steps,
        options=options,
        reject_why=reject_why,
        repeats_prompt=repeats,
        shot=shot_of(item.boxes) if item.screenshot else None,
        step=step,
    )
