"""Step programs: validation up front, and template resolution at the moment of the action."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import re2

from approvals.rules import RULE_FIELDS, gate_rule_problems
from engine.netguard import Policy, UrlRefused, check_url, host_policy
from twin_site import limits
from twin_site.limits import bounded_text

ACTIONS: dict[str, tuple[str, ...]] = {
    # action: required fields
    "goto": ("url",),
    "fill": ("selector", "value"),
    "click": ("selector",),
    "press": ("selector", "key"),
    "select": ("selector", "value"),
    "check": ("selector",),
    "wait_for": ("selector",),
    "assert_text": ("text",),
    "extract": ("selector", "name"),
}
# The agent's own steps (engine.planning), never in a program a person or a skill submits: "plan"
# (the model decides what it becomes), "ask" (the model asks a person: a gate, no page action),
# "done" (the model finished).
INTERNAL_ACTIONS: dict[str, tuple[str, ...]] = {"plan": (), "ask": (), "done": ()}
ALL_ACTIONS = {**ACTIONS, **INTERNAL_ACTIONS}
OPTIONAL_FIELDS = {"timeout", "label", "gate", "action", "locator"}
EXTRA_FIELDS: dict[str, tuple[str, ...]] = {"assert_text": ("selector",), "extract": ("attribute",)}
TEMPLATED_FIELDS = ("url", "selector", "value", "key", "text")
# Steps that may be run again after a crash without a second effect on the world.
REPEATABLE_ACTIONS = frozenset({"goto", "fill", "wait_for", "assert_text", "extract", "plan", "done"})
# Steps that target an element: they record (and a skill replays) a locator bundle of it.
ELEMENT_ACTIONS = frozenset({"click", "fill", "press", "select", "check", "wait_for", "extract"})
MAX_LOCATOR_BYTES = 16_384
# Steps that act on one element: more than one match is an ambiguity to ask about.
SINGLE_TARGET_ACTIONS = frozenset({"click", "fill", "check", "select"})

GATE_KINDS = ("approval", "input", "choice")
TRIGGERS = ("approval", "mfa", "ambiguity", "blocked")
DEFAULT_TRIGGER = {"approval": "approval", "input": "mfa", "choice": "ambiguity"}
MAX_STEPS = 500
MAX_TIMEOUT = 600
MAX_EXPIRES_IN = 30 * 86400

# Greedy and brace-free inside, with the spaces stripped in Python: the lazy form
# r"\{\{\s*([^{}]*?)\s*\}\}" backtracked cubically, and "{{" + 2,000 spaces in a selector held
# a web thread for 26 s. This one gives nothing back that could match: linear.
TEMPLATE_RE = re.compile(r"\{\{([^{}]*)\}\}")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")

# Each string field of a step: its length limit and whether it may hold line breaks (text a
# person reads or a page receives) or must be one line (what a browser parses, a name).
FIELD_LIMITS: dict[str, tuple[int, bool]] = {
    "url": (limits.MAX_URL, False),
    "selector": (limits.MAX_SELECTOR, False),
    "value": (limits.MAX_VALUE, True),
    "key": (limits.MAX_KEY, False),
    "text": (limits.MAX_TEXT, True),
    "name": (limits.MAX_NAME, False),
    "attribute": (limits.MAX_NAME, False),
    "label": (limits.MAX_LABEL, False),
}


class PatternInvalid(ValueError):
    """A gate pattern Twin will not run: too long, malformed, or beyond RE2's linear-time syntax."""


# A gate pattern's program and match cache get 1 MB (RE2's default: 8 MB): a 500-character
# pattern with repeats up to 1,000 fits, and 64 cached patterns stay small in a web process.
# Past its budget RE2 falls back from its DFA to its NFA: slower, still linear.
PATTERN_MAX_MEM = 1 << 20


@functools.lru_cache(maxsize=64)
def compile_pattern(pattern: str) -> Any:
    """A gate pattern, compiled by RE2: matching takes time linear in the input, whatever the pattern.

    Python's ``re`` backtracks: ``(a+)+`` against 28 ``a`` and a ``!`` took 9 s of a web
    thread. RE2 has no backreferences or lookaround (the constructs that need backtracking);
    a pattern using them is refused when the program is submitted, with RE2's reason.
    """
    if len(pattern) > limits.MAX_PATTERN:
        raise PatternInvalid(f"must be at most {limits.MAX_PATTERN:,} characters (got {len(pattern):,})")
    options = re2.Options()
    options.log_errors = False  # a refused pattern is the tenant's mistake: the 400 says why
    options.max_mem = PATTERN_MAX_MEM
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternInvalid(f"is not a regular expression Twin can run (RE2 syntax): {reason}") from None


def pattern_matches(pattern: str, text: str) -> bool:
    """Whether the whole of ``text`` matches the gate ``pattern`` (PatternInvalid if it cannot run)."""
    return compile_pattern(pattern).fullmatch(text) is not None


@dataclass(frozen=True)
class Problem:
    step: int | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "field": self.field, "message": self.message}


def templates_in(text: str) -> list[str]:
    return [expr.strip() for expr in TEMPLATE_RE.findall(text)]


def validate_run_fields(*, goal: Any, url: Any, params: Any) -> list[Problem]:
    """The problems of a run's own fields (the program aside): types, lengths, characters."""
    problems: list[Problem] = []
    if reason := bounded_text(goal, limits.MAX_GOAL, multiline=True):
        problems.append(Problem(None, "goal", reason))
    if reason := bounded_text(url, limits.MAX_URL):
        problems.append(Problem(None, "url", reason))
    if params is None:
        return problems
    if not isinstance(params, dict):
        return [*problems, Problem(None, "params", "must be an object of names to values")]
    if len(params) > limits.MAX_PARAMS:
        many = f"at most {limits.MAX_PARAMS} parameters (got {len(params)})"
        return [*problems, Problem(None, "params", many)]
    for name, value in params.items():
        if len(name) > limits.MAX_PARAM_NAME or not NAME_RE.match(name):
            shown = name if len(name) <= limits.MAX_PARAM_NAME else name[:40] + "…"
            problems.append(
                Problem(
                    None,
                    "params",  # not params.<name>: the name is what is wrong, and may be anything
                    f"parameter name {shown!r} must be 1 to {limits.MAX_PARAM_NAME} letters, digits "
                    "and _, not starting with a digit ({{params.NAME}} could not name it otherwise)",
                )
            )
        elif isinstance(value, str):
            if reason := bounded_text(value, limits.MAX_PARAM_VALUE, multiline=True):
                problems.append(Problem(None, f"params.{name}", reason))
        elif not isinstance(value, int | float):  # bool is an int
            problems.append(Problem(None, f"params.{name}", "must be a string, a number or true/false"))
    return problems


def validate_program(
    steps: Any,
    *,
    params: dict[str, Any] | None = None,
    secret_names: Iterable[str] | None = None,
    resolve_hosts: bool = True,
    internal: bool = False,
    approver_names: Iterable[str] | None = None,
    starter: str | None = None,
) -> list[Problem]:
    """Every problem of the program, so a user can fix them all at once; empty when valid.

    ``approver_names``, when given, are the usernames of the tenant's approvers: a gate's
    ``approvers`` and ``escalate_to`` may name only them; ``starter`` (the run's starter when four
    eyes applies) gives none of a gate's ``required`` approvals."""
    problems: list[Problem] = []
    if not isinstance(steps, list) or not steps:
        return [Problem(None, "steps", "must be a non-empty list of steps")]
    if len(steps) > MAX_STEPS:
        return [Problem(None, "steps", f"at most {MAX_STEPS} steps")]
    known_params = set((params or {}).keys())
    known_secrets = None if secret_names is None else set(secret_names)
    extracted: set[str] = set()
    # Built once: it reads the host's browser.json and resolves Redis's and the database's hosts.
    policy: Policy | None = None
    for index, step in enumerate(steps, start=1):

        def problem(field: str, message: str, index: int = index) -> None:
            problems.append(Problem(index, field, message))

        if not isinstance(step, dict):
            problem("step", "must be an object")
            continue
        action = step.get("action")
        if action not in (ALL_ACTIONS if internal else ACTIONS):
            problem("action", f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
            continue
        if action == "ask" and not isinstance(step.get("gate"), dict):
            problem("gate", "an ask step needs a gate (what to ask)")
        allowed = set(ALL_ACTIONS[action]) | OPTIONAL_FIELDS | set(EXTRA_FIELDS.get(action, ()))
        for field in sorted(set(step) - allowed):
            problem(field, f"{action} does not take {field!r}")
        for field in ALL_ACTIONS[action]:
            value = step.get(field)
            if not isinstance(value, str) or (value == "" and field != "value"):
                problem(
                    field,
                    f"{action} needs {field!r} (a {'string' if field == 'value' else 'non-empty string'})",
                )
        for field in EXTRA_FIELDS.get(action, ()):
            if field in step and (not isinstance(step[field], str) or not step[field]):
                problem(field, "must be a non-empty string")
        if "timeout" in step:
            timeout = step["timeout"]
            if (
                isinstance(timeout, bool)
                or not isinstance(timeout, int | float)
                or not 0 < timeout <= MAX_TIMEOUT
            ):
                problem("timeout", f"must be a number of seconds between 0 and {MAX_TIMEOUT}")
        if "label" in step and not isinstance(step["label"], str):
            problem("label", "must be a string")
        for field, (limit, multiline) in FIELD_LIMITS.items():
            value = step.get(field)
            if isinstance(value, str) and (reason := bounded_text(value, limit, multiline=multiline)):
                problem(field, reason)

        if "locator" in step:
            _validate_locator(step["locator"], action, known_params, problem)
        gate = step.get("gate")
        gate_kind = None
        if gate is not None:
            gate_kind = _validate_gate(gate, problem, approver_names, starter)

        for field in TEMPLATED_FIELDS:
            value = step.get(field)
            if not isinstance(value, str):
                continue
            for expr in templates_in(value):
                _validate_template(
                    expr,
                    field=field,
                    action=action,
                    gate_kind=gate_kind,
                    known_params=known_params,
                    known_secrets=known_secrets,
                    extracted=extracted,
                    problem=problem,
                )
        # An empty, overlong or control-character url was reported above; once is enough.
        url = step.get("url")
        reported = {p.field for p in problems if p.step == index}
        if (
            action == "goto"
            and isinstance(url, str)
            and url
            and "url" not in reported
            and not templates_in(url)
        ):
            try:
                policy = policy or host_policy()
                check_url(step["url"], resolve=resolve_hosts, policy=policy)
            except UrlRefused as exc:
                problem("url", str(exc))
        if action == "extract" and isinstance(step.get("name"), str) and step["name"]:
            if NAME_RE.match(step["name"]):
                extracted.add(step["name"])
            else:
                problem("name", "must be a name of letters, digits and _")
    return problems


def _validate_locator(
    bundle: Any, action: str, known_params: set[str], problem: Callable[[str, str], None]
) -> None:
    """A step's locator bundle (engine.locators): an object of bounded size with a fingerprint, whose
    displayed texts may name parameters (what the page showed of them when the skill was compiled)."""
    from engine.locators import bundle_templates, clean_bundle

    if action not in ELEMENT_ACTIONS:
        problem("locator", f"{action} acts on no element: it takes no locator")
    elif not isinstance(bundle, dict):
        problem("locator", "must be a locator bundle (an object), as a compiled skill records it")
    elif len(json.dumps(bundle, default=str)) > MAX_LOCATOR_BYTES:
        problem("locator", f"must be at most {MAX_LOCATOR_BYTES:,} bytes of JSON")
    elif (cleaned := clean_bundle(bundle)) is None:
        problem("locator", "needs a fingerprint with the element's tag name")
    else:
        for expr in bundle_templates(cleaned):
            source, _, name = expr.partition(".")
            if source != "params" or name not in known_params:
                problem("locator", "{{" + expr + "}}: a locator can only name a parameter that was given")


GATE_FIELDS = {"kind", "prompt", "trigger", "pattern", "options", "expires_in", *RULE_FIELDS}


def _validate_gate(
    gate: Any,
    problem: Callable[[str, str], None],
    approver_names: Iterable[str] | None = None,
    starter: str | None = None,
) -> str | None:
    if not isinstance(gate, dict):
        problem("gate", "must be an object")
        return None
    kind = gate.get("kind")
    if kind not in GATE_KINDS:
        problem("gate.kind", f"must be one of {', '.join(GATE_KINDS)}")
        return None
    for field in sorted(set(gate) - GATE_FIELDS):
        problem(f"gate.{field}", f"a gate does not take {field!r}; it takes {', '.join(sorted(GATE_FIELDS))}")
    if "prompt" in gate and (reason := bounded_text(gate["prompt"], limits.MAX_PROMPT, multiline=True)):
        problem("gate.prompt", reason)
    if "trigger" in gate and gate["trigger"] not in TRIGGERS:
        problem("gate.trigger", f"must be one of {', '.join(TRIGGERS)}")
    if "pattern" in gate:
        if kind != "input":
            problem("gate.pattern", "only an input gate takes a pattern")
        elif not isinstance(gate["pattern"], str):
            problem("gate.pattern", "must be a regular expression string")
        elif reason := limits.refused_character(gate["pattern"]):
            problem("gate.pattern", reason)
        else:
            try:
                compile_pattern(gate["pattern"])
            except PatternInvalid as exc:
                problem("gate.pattern", str(exc))
    options = gate.get("options")
    if kind == "choice":
        if (
            not isinstance(options, list)
            or not options
            or not all(isinstance(o, str) and o for o in options)
            or len(set(options)) != len(options)
        ):
            problem("gate.options", "a choice gate needs a list of distinct, non-empty option strings")
        elif len(options) > limits.MAX_OPTIONS:
            problem("gate.options", f"at most {limits.MAX_OPTIONS} options (got {len(options)})")
        else:
            for number, option in enumerate(options, start=1):
                if reason := bounded_text(option, limits.MAX_OPTION):
                    problem("gate.options", f"option {number} {reason}")
    elif options is not None:
        problem("gate.options", "only a choice gate takes options")
    if "expires_in" in gate:
        expires_in = gate["expires_in"]
        if (
            isinstance(expires_in, bool)
            or not isinstance(expires_in, int)
            or not 0 < expires_in <= MAX_EXPIRES_IN
        ):
            problem("gate.expires_in", f"must be a whole number of seconds between 1 and {MAX_EXPIRES_IN}")
    # Who decides, how many approvals, whom to tell when it waits (approvals.rules).
    for field, message in gate_rule_problems(gate, approver_names=approver_names, starter=starter):
        problem(field, message)
    return str(kind)


def _validate_template(
    expr: str,
    *,
    field: str,
    action: str,
    gate_kind: str | None,
    known_params: set[str],
    known_secrets: set[str] | None,
    extracted: set[str],
    problem: Callable[[str, str], None],
) -> None:
    shown = "{{" + expr + "}}"
    if expr in {"input", "choice"}:
        if gate_kind != expr:
            problem(field, f"{shown} needs a gate of kind {expr!r} on this step")
        return
    source, _, name = expr.partition(".")
    if source not in {"secrets", "params", "outputs"} or not NAME_RE.match(name):
        problem(
            field,
            f"{shown} names an unknown source; use input, choice, secrets.NAME, params.NAME or outputs.NAME",
        )
        return
    if source == "secrets":
        if not (action == "fill" and field == "value"):
            problem(field, f"{shown}: secrets can only be typed, as the value of a fill step")
        elif known_secrets is not None and name not in known_secrets:
            problem(field, f"{shown}: the vault has no secret named {name!r}")
    elif source == "params" and name not in known_params:
        problem(field, f"{shown}: no parameter named {name!r} was given")
    elif source == "outputs" and name not in extracted:
        problem(field, f"{shown}: no earlier extract step is named {name!r}")


def gate_of(step: dict[str, Any]) -> dict[str, Any] | None:
    gate = step.get("gate")
    if not gate:
        return None
    return {**gate, "trigger": gate.get("trigger") or DEFAULT_TRIGGER[gate["kind"]]}


def render(text: str, lookup: Callable[[str], str]) -> str:
    """Replace every ``{{expr}}`` in ``text`` with ``lookup(expr)``."""
    return TEMPLATE_RE.sub(lambda m: lookup(m.group(1).strip()), text)


def describe(step: dict[str, Any]) -> str:
    """What a person reads in the step list (never a resolved secret)."""
    if step.get("label"):
        return str(step["label"])
    action = step["action"]
    target = step.get("selector") or step.get("url") or step.get("text") or ""
    return f"{action} {target}".strip()
