"""The test model: an OpenAI-compatible Chat Completions server for the agent's tests and benchmark.

It answers ``POST <base_url>/chat/completions`` the way a function-calling model does, with one tool
call *computed from the newest user message* (the goal, the params, the secret names, the actions so
far and the page's ``aria_snapshot(mode="ai")``) for the fixture site's pages, so the agent's loop
runs for real: nothing is replayed by prompt hash. ::

    model = TestModel().start()
    client = OpenAI(base_url=model.base_url, api_key="x")
    ...
    model.mode = "consequential"      # see MODES
    assert model.leaked("wonderland") == []
    model.stop()

The pieces are usable on their own: :func:`parse_prompt` reads the planner's user message into a
:class:`Prompt` (its page as a :class:`Snapshot` of :class:`Node`), :func:`decide` picks the default
behaviour's :class:`Call` and :func:`choose` applies a mode. The pytest fixtures ``test_model`` (one
server per session, reset for each test) and ``test_model_server`` are meant to be imported into a
``conftest.py``.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import socketserver
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

MODEL_NAME = "twin-test-model"
DEFAULT_MODE = "default"
MODES: dict[str, str] = {
    "default": "compute the next action from the page",
    "bad": "always answer with an invalid call, cycling through BAD_CALLS",
    "bad_once": "one invalid call (a ref not in the snapshot) after each reset, then the default",
    "consequential": "the default, with consequential: true on every click",
    "leak": "the default (tests scan TestModel.requests, or call TestModel.leaked, for secrets)",
}
BAD_GOTO_URL = "http://169.254.169.254/latest/meta-data/"  # refused whatever private URLs allow
"""Where the ``bad`` mode's ``goto`` points. A private address: a test that lets it through
``TWIN_ALLOW_PRIVATE_URLS`` would send traffic off the machine, so narrow that setting to loopback."""
BAD_CALLS = ("unknown_tool", "unknown_ref", "private_goto", "missing_argument", "broken_json")
"""The invalid calls of the ``bad`` mode, in the order it cycles through them."""
OTP_PLACEHOLDER = "000000"
"""What the model types into a one-time-code field (it cannot know the code; Twin replaces it)."""
DEFAULT_USER = "alice"
MAX_VERIFY_ATTEMPTS = 3
MAX_FAILURES_IN_A_ROW = 3

OUTCOMES = ("done", "failed", "skipped", "answered", "rejected")
REDACTIONS = re.compile(r"^\[(?:secret:[^\]]+|redacted)\]$")


class LayoutError(ValueError):
    """The user message does not follow the planner's layout (the server answers 400 with the reason)."""


# -- the page: aria snapshot lines --------------------------------------------------------------------


@dataclass
class Node:
    """One line of an ``aria_snapshot(mode="ai")``: ``- role "name" [flag] [key=value] [ref=e5]: value``."""

    role: str
    name: str = ""
    ref: str | None = None
    value: str | None = None
    """The text after the colon: a field's value, a paragraph's or a ``text`` line's text."""
    flags: frozenset[str] = frozenset()
    """Bare attributes such as ``checked``, ``disabled``, ``active``."""
    attrs: dict[str, str] = field(default_factory=dict)
    """Attributes with a value, such as ``level=1``, ``cursor=pointer`` (``ref`` is :attr:`ref`)."""
    depth: int = 0
    parent: int | None = None
    """Index of the enclosing node in :attr:`Snapshot.nodes`."""
    props: dict[str, str] = field(default_factory=dict)
    """``- /url: …`` and ``- /placeholder: …`` children."""

    @property
    def checked(self) -> bool:
        return "checked" in self.flags

    @property
    def filled(self) -> bool:
        """A field that shows a value (``[secret:NAME]`` and ``[redacted]`` count as filled)."""
        return bool(self.value and self.value.strip())

    @property
    def redacted(self) -> bool:
        return bool(self.value and REDACTIONS.match(self.value.strip()))


class Snapshot:
    """A parsed ``aria_snapshot(mode="ai")``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.nodes: list[Node] = parse_snapshot(text)

    @property
    def refs(self) -> set[str]:
        return {node.ref for node in self.nodes if node.ref}

    def children(self, index: int) -> list[int]:
        return [i for i, node in enumerate(self.nodes) if node.parent == index]

    def text_of(self, node: Node) -> str:
        """The node's own text and that of everything under it, space-separated."""
        index = self.nodes.index(node)
        parts = [node.value] if node.value else []
        parts.extend(self.text_of(self.nodes[child]) for child in self.children(index))
        return " ".join(part for part in parts if part)

    def find(self, role: str, name: str | re.Pattern[str] | None = None) -> list[Node]:
        """Nodes of ``role`` whose name equals ``name`` or matches the pattern (``re.search``)."""
        found = []
        for node in self.nodes:
            if node.role != role:
                continue
            if name is None or (node.name == name if isinstance(name, str) else name.search(node.name)):
                found.append(node)
        return found

    def first(self, role: str, name: str | re.Pattern[str] | None = None) -> Node | None:
        found = self.find(role, name)
        return found[0] if found else None

    def containing(self, pattern: re.Pattern[str]) -> Node | None:
        """The first node with a ref whose own value matches ``pattern``."""
        return next((n for n in self.nodes if n.ref and n.value and pattern.search(n.value)), None)

    def alerts(self) -> list[str]:
        return [self.text_of(node) for node in self.find("alert")]


_LINE = re.compile(r"^(?P<indent>(?:  )*)- (?P<rest>.+)$")
_ATTR = re.compile(r"\s*\[(?P<key>[a-z-]+)(?:=(?P<value>[^\]]*))?\]")
_HEX_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\x([0-9a-fA-F]{2})")


def _yaml_value(text: str) -> str:
    """A value as Playwright writes it: plain, or double-quoted with JSON escapes (and ``\\xNN``)."""
    if not text.startswith('"'):
        return text
    try:
        value = json.loads(_HEX_ESCAPE.sub(r"\1\\u00\2", text))
    except ValueError as exc:
        raise LayoutError(f"snapshot value {text!r} is not a quoted string") from exc
    if not isinstance(value, str):
        raise LayoutError(f"snapshot value {text!r} is not a string")
    return value


def _split_line(rest: str) -> tuple[str, str | None]:
    """``key`` and ``value`` (None when there is none) of a line without its ``- `` prefix."""
    if rest.startswith("'"):  # a key that needed quoting: '…' with '' for '
        out, i = [], 1
        while True:
            j = rest.find("'", i)
            if j < 0:
                raise LayoutError(f"unterminated quoted key in snapshot line {rest!r}")
            if rest.startswith("''", j):
                out.append(rest[i : j + 1])
                i = j + 2
                continue
            out.append(rest[i:j])
            key, tail = "".join(out), rest[j + 1 :]
            break
    else:  # an unquoted key has no ": " and does not end with ":"
        match = re.search(r":(?: |$)", rest)
        key, tail = (rest[: match.start()], rest[match.start() :]) if match else (rest, "")
    if tail in ("", ":"):
        return key, None
    if not tail.startswith(": "):
        raise LayoutError(f"cannot read snapshot line {rest!r}")
    return key, _yaml_value(tail[2:])


def _parse_key(key: str) -> Node:
    role, _, rest = key.partition(" ")
    if not role:
        raise LayoutError(f"snapshot key {key!r} has no role")
    name = ""
    if rest.startswith('"'):
        try:
            decoded, end = json.JSONDecoder().raw_decode(rest)
        except ValueError as exc:
            raise LayoutError(f"snapshot key {key!r} has a malformed name") from exc
        name, rest = str(decoded), rest[end:]
    flags: set[str] = set()
    attrs: dict[str, str] = {}
    position = 0
    for match in _ATTR.finditer(rest):
        if match.start() != position:
            break
        position = match.end()
        if match["value"] is None:
            flags.add(match["key"])
        else:
            attrs[match["key"]] = match["value"]
    if rest[position:].strip():
        raise LayoutError(f"cannot read the attributes of snapshot key {key!r}")
    ref = attrs.pop("ref", None)
    return Node(role=role, name=name, ref=ref, flags=frozenset(flags), attrs=attrs)


def parse_snapshot(text: str) -> list[Node]:
    """The nodes of an ``aria_snapshot(mode="ai")``, in document order, each with its parent's index."""
    nodes: list[Node] = []
    stack: list[int] = []  # indices of the open ancestors, one per depth
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise LayoutError(f"snapshot line {number} is not an aria snapshot line: {line!r}")
        depth = len(match["indent"]) // 2
        if depth > len(stack):
            raise LayoutError(f"snapshot line {number} is indented too deep: {line!r}")
        del stack[depth:]
        key, value = _split_line(match["rest"])
        parent = stack[-1] if stack else None
        if key.startswith("/"):  # a property of the enclosing node: /url, /placeholder
            if parent is None:
                raise LayoutError(f"snapshot line {number} is a property of nothing: {line!r}")
            nodes[parent].props[key[1:]] = value or ""
            continue  # a property has no children: a deeper line after it is an error
        node = Node(role="text") if key == "text" else _parse_key(key)
        node.value, node.depth, node.parent = value, depth, parent
        nodes.append(node)
        stack.append(len(nodes) - 1)
    return nodes


# -- the planner's user message -----------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One line of "Actions so far": ``3. click {"ref": "e9", "intent": "Pay"} -> failed: reason``."""

    number: int
    tool: str
    args: dict[str, Any]
    outcome: str

    @property
    def status(self) -> str:
        """``done``, ``failed``, ``skipped``, ``answered`` or ``rejected``."""
        return self.outcome.split(":", 1)[0]

    @property
    def detail(self) -> str:
        """The text after ``status: `` (the answer, the failure, ``NAME = VALUE``), or ``""``."""
        return self.outcome.split(": ", 1)[1] if ": " in self.outcome else ""

    @property
    def extracted(self) -> tuple[str, str] | None:
        """``(name, value)`` of a successful ``extract``."""
        if self.tool != "extract" or self.status != "done" or " = " not in self.detail:
            return None
        name, value = self.detail.split(" = ", 1)
        return name, value


@dataclass(frozen=True)
class Prompt:
    goal: str
    params: dict[str, Any] | None
    secrets: tuple[tuple[str, str], ...]
    """``(name, kind)`` of every secret the run may use, in the listed order."""
    actions: tuple[Action, ...]
    url: str
    title: str
    snapshot: Snapshot

    @property
    def last(self) -> Action | None:
        return self.actions[-1] if self.actions else None

    def secret_of_kind(self, kind: str) -> str | None:
        return next((name for name, secret_kind in self.secrets if secret_kind == kind), None)

    def answered(self) -> list[str]:
        """The human's answers to ``ask_human``, oldest first."""
        return [a.detail for a in self.actions if a.tool == "ask_human" and a.status == "answered"]


_ACTION = re.compile(r"^(?P<number>\d+)\. (?P<tool>[A-Za-z_][A-Za-z0-9_]*) (?P<rest>.*)$")
_SECRET = re.compile(r"^(?P<name>[^\s(),]+) \((?P<kind>[^()]+)\)$")


def _header(lines: list[str], index: int, label: str) -> str:
    if index >= len(lines) or not (lines[index] == label.rstrip() or lines[index].startswith(label)):
        seen = lines[index] if index < len(lines) else "the end of the message"
        raise LayoutError(f"expected a line starting {label!r}, found {seen!r}")
    return lines[index][len(label) :] if lines[index].startswith(label) else ""


def _parse_action(line: str) -> Action:
    match = _ACTION.match(line)
    if match is None:
        raise LayoutError(f"cannot read the action line {line!r}")
    try:
        args, end = json.JSONDecoder().raw_decode(match["rest"])
    except ValueError as exc:
        raise LayoutError(f"the arguments of action line {line!r} are not JSON") from exc
    tail = match["rest"][end:]
    if not isinstance(args, dict) or not tail.startswith(" -> "):
        raise LayoutError(f"action line {line!r} is not 'N. tool {{json}} -> outcome'")
    outcome = tail[4:]
    status = outcome.split(":", 1)[0]
    if status not in OUTCOMES or (outcome != status and not outcome.startswith(status + ": ")):
        raise LayoutError(f"action line {line!r} has an unknown outcome (one of {', '.join(OUTCOMES)})")
    return Action(int(match["number"]), match["tool"], args, outcome)


def parse_prompt(text: str) -> Prompt:
    """Read the planner's user message; :class:`LayoutError` says where it departs from the layout."""
    lines = text.split("\n")
    goal_lines = [_header(lines, 0, "Goal: ")]
    i = 1
    while i < len(lines) and not lines[i].startswith("Params:"):
        goal_lines.append(lines[i])
        i += 1
    raw_params = _header(lines, i, "Params: ").strip()
    params: dict[str, Any] | None = None
    if raw_params != "none":
        try:
            params = json.loads(raw_params)
        except ValueError as exc:
            raise LayoutError(f"Params is neither a JSON object nor none: {raw_params!r}") from exc
        if not isinstance(params, dict):
            raise LayoutError(f"Params is neither a JSON object nor none: {raw_params!r}")
    raw_secrets = _header(lines, i + 1, "Secrets: ").strip()
    listed: list[tuple[str, str]] = []
    if raw_secrets != "none":
        for part in raw_secrets.split(", "):
            match = _SECRET.match(part.strip())
            if match is None:
                raise LayoutError(f"cannot read the secret {part!r} (expected 'name (kind)')")
            listed.append((match["name"], match["kind"]))
    inline = _header(lines, i + 2, "Actions so far:").strip()
    i += 3
    actions: list[Action] = []
    if inline == "none":
        pass
    elif inline:
        raise LayoutError(f"unexpected text after 'Actions so far:': {inline!r}")
    elif i < len(lines) and lines[i].strip() == "none":
        i += 1
    else:
        pending: list[str] = []
        while i < len(lines) and not lines[i].startswith("URL: "):
            if _ACTION.match(lines[i]) or not pending:
                pending.append(lines[i])
            else:  # an outcome that runs over several lines
                pending[-1] += "\n" + lines[i]
            i += 1
        actions = [_parse_action(line) for line in pending]
        for position, action in enumerate(actions, 1):
            if action.number != position:
                raise LayoutError(f"actions are numbered {action.number} where {position} was expected")
    url = _header(lines, i, "URL: ").strip()
    title = _header(lines, i + 1, "Title: ").strip()
    _header(lines, i + 2, "--- snapshot ---")
    try:
        end = lines.index("--- end snapshot ---", i + 3)
    except ValueError:
        raise LayoutError("no '--- end snapshot ---' line") from None
    if any(line.strip() for line in lines[end + 1 :]):
        raise LayoutError("text after '--- end snapshot ---'")
    return Prompt(
        goal="\n".join(goal_lines).strip(),
        params=params,
        secrets=tuple(listed),
        actions=tuple(actions),
        url=url,
        title=title,
        snapshot=Snapshot("\n".join(lines[i + 3 : end])),
    )


# -- decisions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """A tool call: ``arguments`` is a dict, or a raw string when a bad call must not even be JSON."""

    name: str
    arguments: dict[str, Any] | str

    @property
    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)


_USER_FIELD = re.compile(r"^(user|user ?name|e-?mail|login)$", re.I)
_PASSWORD = re.compile(r"password", re.I)
_SIGN_IN = re.compile(r"^(sign|log) ?in$", re.I)
_CODE_FIELD = re.compile(r"\bcode\b|one-time|authenticator", re.I)
_VERIFY = re.compile(r"^verify$", re.I)
_PAY_BUTTON = re.compile(r"^pay\b", re.I)
_OTP_LINK = re.compile(r"one-time code", re.I)
_TRANSFER_BUTTON = re.compile(r"^transfer\b", re.I)
_RECEIPT = re.compile(r"^receipt\b", re.I)
_REFERENCE = re.compile(r"^reference:\s*(\S+)", re.I)
_URL_IN_GOAL = re.compile(r"https?://[^\s\"'<>]+")


def _ask(prompt: str, options: list[str] | None = None) -> Call:
    if options:
        return Call("ask_human", {"prompt": prompt, "kind": "choice", "options": options})
    return Call("ask_human", {"prompt": prompt, "kind": "input"})


def _click(node: Node, intent: str | None = None) -> Call:
    return Call("click", {"ref": node.ref, "intent": intent or node.name})


def _matches_account(answer: str, name: str) -> bool:
    answer, name = answer.strip().lower(), name.strip().lower()
    return bool(answer) and (answer == name or name.startswith(answer) or answer.startswith(name.split()[0]))


def decide(prompt: Prompt) -> Call:
    """The default behaviour: one tool call from what the page shows and what was done so far."""
    snap, last = prompt.snapshot, prompt.last
    if last is not None and last.status == "rejected":
        what = last.args.get("intent") or last.tool
        return Call("done", {"summary": f"Stopped: the human rejected {what!r}."})
    recent = prompt.actions[-MAX_FAILURES_IN_A_ROW:]
    if len(recent) == MAX_FAILURES_IN_A_ROW and all(a.status == "failed" for a in recent):
        return _ask(
            f"My last {MAX_FAILURES_IN_A_ROW} actions failed (last: {recent[-1].detail}). What should I do?"
        )

    for decision in (
        _sign_in,
        _account,
        _one_time_code,
        _pay,
        _receipt,
        _transfer,
        _accounts,
        _steps,
        _shop,
        _thanks,
        _order_form,
    ):
        call = decision(prompt)
        if call is not None:
            return call
    if not snap.nodes:
        target = _URL_IN_GOAL.search(prompt.goal)
        if target and target.group(0) != prompt.url:
            return Call("goto", {"url": target.group(0)})
    return _ask(
        f"I cannot place this page ({prompt.title or 'untitled'} at {prompt.url}) on the way to the goal "
        f"{prompt.goal!r}. What should I do?"
    )


def _sign_in(prompt: Prompt) -> Call | None:
    snap, last = prompt.snapshot, prompt.last
    user = next((n for n in snap.find("textbox") if _USER_FIELD.match(n.name)), None)
    password = snap.first("textbox", _PASSWORD)
    button = snap.first("button", _SIGN_IN)
    if user is None or password is None or button is None:
        return None
    tried = any(a.tool == "click" and _SIGN_IN.match(str(a.args.get("intent", ""))) for a in prompt.actions)
    alerts = snap.alerts()
    just_answered = last is not None and last.tool == "ask_human" and last.status == "answered"
    if alerts and tried and not just_answered:
        return _ask(f"Signing in failed: the page says {alerts[0]!r}. How should I continue?")
    if not user.filled:
        params = prompt.params or {}
        return Call(
            "fill",
            {
                "ref": user.ref,
                "value": "{{params.user}}" if "user" in params else DEFAULT_USER,
                "intent": "Type the user name",
            },
        )
    if not password.filled:
        secret = prompt.secret_of_kind("password")
        if secret is not None:
            return Call(
                "fill",
                {"ref": password.ref, "value": f"{{{{secrets.{secret}}}}}", "intent": "Type the password"},
            )
        if just_answered and last is not None and "password" in str(last.args.get("prompt", "")).lower():
            return Call("fill", {"ref": password.ref, "value": last.detail, "intent": "Type the password"})
        return _ask("What is the password for this sign-in page?")
    return _click(button, "Sign in")


def _account(prompt: Prompt) -> Call | None:
    welcome = prompt.snapshot.first("heading", re.compile(r"^Welcome\b"))
    if welcome is None:
        return None
    link = prompt.snapshot.first("link", _OTP_LINK)
    if re.search(r"\bpay", prompt.goal, re.I) and link is not None:
        return _click(link)
    return Call("done", {"summary": f"Signed in: the page says {welcome.name!r}."})


def _one_time_code(prompt: Prompt) -> Call | None:
    snap = prompt.snapshot
    code = snap.first("textbox", _CODE_FIELD)
    verify = snap.first("button", _VERIFY)
    if code is None or verify is None:
        return None
    attempts = sum(
        1 for a in prompt.actions if a.tool == "click" and _VERIFY.match(str(a.args.get("intent", "")))
    )
    alerts = snap.alerts()
    if alerts and attempts >= MAX_VERIFY_ATTEMPTS:
        return _ask(f"The one-time code was refused {attempts} times ({alerts[0]!r}). What should I do?")
    if not code.filled:
        return Call("fill", {"ref": code.ref, "value": OTP_PLACEHOLDER, "intent": "Type the one-time code"})
    return _click(verify, "Verify")


def _pay(prompt: Prompt) -> Call | None:
    button = prompt.snapshot.first("button", _PAY_BUTTON)
    return _click(button) if button is not None else None


def _receipt(prompt: Prompt) -> Call | None:
    snap = prompt.snapshot
    holder = snap.containing(_RECEIPT)
    if holder is None or not any("Payment complete" in (n.value or n.name) for n in snap.nodes):
        return None
    for action in reversed(prompt.actions):
        got = action.extracted
        if got is not None and got[0] == "receipt":
            # The value is the element's text, label included ("Receipt: R-0001"): keep the number.
            receipt = re.sub(r"^receipt:\s*", "", got[1].strip(), flags=re.I)
            return Call(
                "done", {"summary": f"Payment complete; receipt {receipt}.", "outputs": {"receipt": receipt}}
            )
    return Call("extract", {"name": "receipt", "ref": holder.ref, "intent": "Read the receipt number"})


def _transfer(prompt: Prompt) -> Call | None:
    snap = prompt.snapshot
    if snap.first("heading", "Transfer complete") is None:
        return None
    holder = snap.containing(_REFERENCE)
    match = _REFERENCE.search(holder.value or "") if holder is not None else None
    if match is None:
        return Call("done", {"summary": "Transfer complete."})
    return Call(
        "done", {"summary": f"Transfer complete; reference {match[1]}.", "outputs": {"reference": match[1]}}
    )


def _accounts(prompt: Prompt) -> Call | None:
    snap = prompt.snapshot
    radios = snap.find("radio")
    button = snap.first("button", _TRANSFER_BUTTON)
    if not radios or button is None:
        return None
    if any(radio.checked for radio in radios):
        return _click(button)
    words = set(re.findall(r"\w+", prompt.goal.lower()))
    named = [r for r in radios if r.name.split()[0].lower() in words]
    wanted = str((prompt.params or {}).get("account", ""))
    if wanted:
        named = [r for r in radios if _matches_account(wanted, r.name)]
    if len(named) == 1:
        return _click(named[0], f"Choose {named[0].name}")
    for answer in reversed(prompt.answered()):
        chosen = [r for r in radios if _matches_account(answer, r.name)]
        if len(chosen) == 1:
            return _click(chosen[0], f"Choose {chosen[0].name}")
    return _ask(f"Which account should {button.name!r} use?", [radio.name for radio in radios])


def _steps(prompt: Prompt) -> Call | None:
    link = prompt.snapshot.first("link", "Next")
    if link is None or "keep going" not in prompt.goal.lower():
        return None
    return _click(link, "Next")


_PLAN_IN_GOAL = re.compile(r"\b(basic|pro)\b", re.I)
_SUBSCRIBE = re.compile(r"^(subscribe|sign up)$", re.I)


def _shop(prompt: Prompt) -> Call | None:
    """``/shop``: choose the plan the goal names (the Choose button in that plan's card), type the
    email, subscribe. Without a plan in the goal it asks which one."""
    snap = prompt.snapshot
    if snap.first("heading", "Plans") is None:
        return None
    cards = {}
    for button in snap.find("button", "Choose"):
        siblings = [snap.nodes[i] for i in snap.children(button.parent)] if button.parent is not None else []
        heading = next((n.name for n in siblings if n.role == "heading"), "")
        cards[heading] = button
    wanted = _PLAN_IN_GOAL.search(prompt.goal)
    if wanted is None:
        return _ask("Which plan should I choose?", sorted(cards))
    plan = wanted[1].title()
    chosen = snap.containing(re.compile(r"^Chosen plan:"))
    if (chosen is None or plan not in (chosen.value or "")) and plan in cards:
        return _click(cards[plan], f"Choose the {plan} plan")
    email = snap.first("textbox", "Email")
    if email is not None and not email.filled:
        value = "{{params.email}}" if "email" in (prompt.params or {}) else "ann@example.com"
        return Call("fill", {"ref": email.ref, "value": value, "intent": "Type the email"})
    submit = snap.first("button", _SUBSCRIBE)
    return _click(submit, "Subscribe") if submit is not None else None


def _thanks(prompt: Prompt) -> Call | None:
    heading = prompt.snapshot.first("heading", re.compile(r"^Thanks\b"))
    if heading is None:
        return None
    return Call("done", {"summary": f"Subscribed: the page says {heading.name!r}."})


_FORM_FIELDS = {"Full name": "name", "Email": "email", "Company": "company", "Notes": "notes"}
_SEATS_IN_GOAL = re.compile(r"\b(\d+)\s+seats?\b", re.I)
_FORM_PLANS = ("basic", "pro", "team")


def _order_form(prompt: Prompt) -> Call | None:
    """``/bench-form`` (the benchmark's page): type the fields the params name, choose the plan the goal
    names, accept the terms, add seats up to the goal's count, place the order, read the reference."""
    snap = prompt.snapshot
    if snap.first("heading", "Order form") is None:
        return None
    reference = snap.first("status", "Order reference")
    if reference is not None and reference.value:
        for action in reversed(prompt.actions):
            got = action.extracted
            if got is not None and got[0] == "reference":
                return Call("done", {"summary": f"Order placed; reference {got[1]}."})
        return Call(
            "extract", {"name": "reference", "ref": reference.ref, "intent": "Read the order reference"}
        )
    params = prompt.params or {}
    for label, key in _FORM_FIELDS.items():
        box = snap.first("textbox", label)
        if box is not None and not box.filled and key in params:
            return Call(
                "fill",
                {"ref": box.ref, "value": f"{{{{params.{key}}}}}", "intent": f"Type the {label.lower()}"},
            )
    plan = next((w for w in _FORM_PLANS if re.search(rf"\b{w}\b", prompt.goal, re.I)), None)
    combo = snap.first("combobox", "Plan")
    if plan is not None and combo is not None:
        options = [snap.nodes[i] for i in snap.children(snap.nodes.index(combo))]
        selected = next((o.name for o in options if "selected" in o.flags), "")
        if selected.lower() != plan:
            return Call(
                "select", {"ref": combo.ref, "value": plan.title(), "intent": f"Choose the {plan} plan"}
            )
    terms = snap.first("checkbox", re.compile("terms", re.I))
    if terms is not None and not terms.checked:
        return Call("check", {"ref": terms.ref, "intent": "Accept the terms"})
    wanted, seats, add = (
        _SEATS_IN_GOAL.search(prompt.goal),
        snap.first("status", "Seats"),
        snap.first("button", "Add seat"),
    )
    if wanted and seats is not None and add is not None and int(seats.value or "1") < int(wanted[1]):
        return _click(add, "Add a seat")
    order = snap.first("button", "Place order")
    return _click(order, "Place the order") if order is not None else None


def bad_call(prompt: Prompt, kind: str) -> Call:
    """An invalid call of ``kind`` (one of :data:`BAD_CALLS`) for this page."""
    refs = prompt.snapshot.refs
    if kind == "unknown_tool":
        return Call("teleport", {"destination": "the goal", "intent": "Skip every step"})
    if kind == "unknown_ref":
        prefix = next((m[1] for m in (re.match(r"^(.*?e)\d+$", ref) for ref in sorted(refs)) if m), "e")
        number = 9000
        while f"{prefix}{number}" in refs:
            number += 1
        return Call("click", {"ref": f"{prefix}{number}", "intent": "Click something that is not there"})
    if kind == "private_goto":
        return Call("goto", {"url": BAD_GOTO_URL})
    if kind == "missing_argument":
        return Call("fill", {"value": "x", "intent": "Type into nothing"})
    if kind == "broken_json":
        return Call("click", '{"ref": "e1", "intent": ')
    raise ValueError(f"unknown bad call {kind!r}")


def conversation_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def user_prompt(messages: list[dict[str, Any]]) -> tuple[Prompt, list[dict[str, Any]]]:
    """The newest user message, parsed, and the messages after it (the ``tool`` errors of bad calls)."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "user":
            content = messages[index].get("content")
            text = conversation_text(content)
            if isinstance(content, list):  # vision: the text part that holds the page
                parts = [
                    str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
                ]
                with_page = [part for part in parts if "--- snapshot ---" in part]
                text = with_page[0] if len(with_page) == 1 else text
            return parse_prompt(text), messages[index + 1 :]
    raise LayoutError("no user message")


def choose(prompt: Prompt, mode: str, *, bad_index: int = 0, bad_once_due: bool = False) -> Call:
    """The call for ``mode``: the ``bad`` mode answers ``BAD_CALLS[bad_index % len]``; ``bad_once``
    answers an unknown ref when ``bad_once_due`` and the default otherwise."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    if mode == "bad":
        return bad_call(prompt, BAD_CALLS[bad_index % len(BAD_CALLS)])
    if mode == "bad_once" and bad_once_due:
        return bad_call(prompt, "unknown_ref")
    call = decide(prompt)
    if mode == "consequential" and call.name == "click" and isinstance(call.arguments, dict):
        return Call("click", {**call.arguments, "consequential": True})
    return call


# -- the HTTP server ---------------------------------------------------------------------------------


class RequestError(Exception):
    """An OpenAI-style error answer."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


def validate(body: Any) -> tuple[list[dict[str, Any]], set[str]]:
    """The messages and offered tool names of a chat completion request, or :class:`RequestError`."""
    if not isinstance(body, dict):
        raise RequestError(400, "The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise RequestError(400, "You must provide a model parameter.", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "'messages' must be a non-empty array.", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise RequestError(400, f"Invalid value for 'messages[{index}].role'.", f"messages[{index}].role")
        if message["role"] == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise RequestError(400, f"'messages[{index}].tool_call_id' is required.", f"messages[{index}]")
    if body.get("stream"):
        raise RequestError(400, "The test model does not stream; send stream: false.", "stream")
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        raise RequestError(400, "The test model needs 'tools' (the agent always sends them).", "tools")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            raise RequestError(
                400, f"Invalid value for 'tools[{index}]': a function tool.", f"tools[{index}]"
            )
        if not isinstance(function.get("name"), str) or not function["name"]:
            raise RequestError(
                400, f"Missing 'tools[{index}].function.name'.", f"tools[{index}].function.name"
            )
        names.add(function["name"])
    if body.get("tool_choice") != "required":
        raise RequestError(400, "The agent sends tool_choice: 'required'.", "tool_choice")
    return messages, names


def _tokens(characters: int) -> int:
    return max(1, math.ceil(characters / 4))


def _message_characters(messages: Iterable[dict[str, Any]]) -> int:
    total = 0
    for message in messages:
        total += len(conversation_text(message.get("content")))
        for call in message.get("tool_calls") or []:
            function = call.get("function", {}) if isinstance(call, dict) else {}
            total += len(str(function.get("name", ""))) + len(str(function.get("arguments", "")))
    return total


def completion(call: Call, model: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``chat.completion`` object with one tool call and its usage."""
    arguments = call.arguments_json
    prompt_tokens, completion_tokens = _tokens(_message_characters(messages)), _tokens(len(arguments))
    return {
        "id": f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": f"call_{secrets.token_hex(12)}",
                            "type": "function",
                            "function": {"name": call.name, "arguments": arguments},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class TestModel:
    """An OpenAI-compatible chat completions server on 127.0.0.1 (a free port), in daemon threads."""

    __test__ = False  # not a pytest test class

    def __init__(self, *, latency: float = 0.0) -> None:
        self._default_latency = latency
        self.latency = latency
        """Seconds slept before each answer (the benchmark uses 2.0 and 0.3)."""
        self._lock = threading.Lock()
        self._mode = DEFAULT_MODE
        self.requests: list[dict[str, Any]] = []
        """Every request body to ``/chat/completions``, parsed, in order (``{"_unparsed": text}`` when
        it is not JSON)."""
        self.replies: list[Call] = []
        """Every tool call answered, in order."""
        self.calls = 0
        """How many chat completions were answered with a tool call (errors are not counted)."""
        self._bad_calls = 0
        self._bad_once_sent = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> TestModel:
        if self._server is not None:
            raise RuntimeError("TestModel is already running")
        server = _Server(("127.0.0.1", 0), self)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-model", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> TestModel:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, for ``TWIN_LLM_BASE_URL`` or ``OpenAI(base_url=...)``."""
        if self._server is None:
            raise RuntimeError("TestModel is not running; call start() first")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def settings(self) -> dict[str, str]:
        """The Django settings that point Twin at this server."""
        return {
            "TWIN_LLM_BASE_URL": self.base_url,
            "TWIN_LLM_MODEL": MODEL_NAME,
            "TWIN_LLM_API_KEY": "test-key",
        }

    # -- state --

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"unknown mode {value!r}; one of {', '.join(MODES)}")
        with self._lock:
            self._mode = value

    def reset(self) -> None:
        """Forget every request and reply; mode back to default, latency back to the constructor's."""
        with self._lock:
            self.requests.clear()
            self.replies.clear()
            self.calls = 0
            self._bad_calls = 0
            self._bad_once_sent = False
            self._mode = DEFAULT_MODE
            self.latency = self._default_latency

    def leaked(self, *values: str) -> list[str]:
        """Those of ``values`` that appear in any request received (anywhere in its text)."""
        with self._lock:
            texts = [json.dumps(body, ensure_ascii=False) for body in self.requests]
            texts.extend(text for body in self.requests for text in _strings(body))
        return [value for value in values if value and any(value in text for text in texts)]

    def prompts(self) -> list[Prompt]:
        """The user message of every well-formed request, parsed."""
        with self._lock:
            bodies = list(self.requests)
        found = []
        for body in bodies:
            try:
                found.append(user_prompt(validate(body)[0])[0])
            except (RequestError, LayoutError):
                continue
        return found

    # -- answering --

    def answer(self, raw: bytes, authorization: str = "Bearer x") -> dict[str, Any]:
        """The response body for a ``/chat/completions`` request, or :class:`RequestError`."""
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            self.requests.append(body if body is not None else {"_unparsed": raw.decode("utf-8", "replace")})
        if not authorization.startswith("Bearer ") or not authorization[7:].strip():
            raise RequestError(401, "You didn't provide an API key (Authorization: Bearer <key>).")
        if body is None:
            raise RequestError(400, "We could not parse the JSON body of your request.")
        messages, offered = validate(body)
        try:
            prompt, _after = user_prompt(messages)
        except LayoutError as exc:
            raise RequestError(
                400, f"The test model cannot read the user message: {exc}", "messages"
            ) from None
        with self._lock:
            mode, bad_index, due = self._mode, self._bad_calls, not self._bad_once_sent
            if mode == "bad":
                self._bad_calls += 1
            if mode == "bad_once":
                self._bad_once_sent = True
        call = choose(prompt, mode, bad_index=bad_index, bad_once_due=due)
        if mode not in ("bad", "bad_once") and call.name not in offered:
            raise RequestError(
                400, f"The test model chose {call.name!r}, which the request does not offer.", "tools"
            )
        if self.latency > 0:
            time.sleep(self.latency)
        with self._lock:
            self.calls += 1
            self.replies.append(call)
        return completion(call, str(body["model"]), messages)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], model: TestModel) -> None:
        self.model = model
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), which can stall on a reverse DNS lookup.
        socketserver.TCPServer.server_bind(self)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the openai client's connection pool expects
    server_version = "TwinTestModel/1.0"
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, data: Any) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if path == "/v1/models":
            entry = {"id": MODEL_NAME, "object": "model", "created": 0, "owned_by": "twin-tests"}
            self._send(HTTPStatus.OK, {"object": "list", "data": [entry]})
        else:
            self._send(HTTPStatus.NOT_FOUND, RequestError(404, f"Unknown request URL: GET {path}.").body())

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        raw = self._read()
        if path != "/v1/chat/completions":
            self._send(HTTPStatus.NOT_FOUND, RequestError(404, f"Unknown request URL: POST {path}.").body())
            return
        try:
            self._send(HTTPStatus.OK, self.server.model.answer(raw, self.headers.get("Authorization", "")))
        except RequestError as exc:
            self._send(exc.status, exc.body())


# -- pytest fixtures (import both into a conftest.py) ------------------------------------------------


@pytest.fixture(scope="session")
def test_model_server() -> Iterator[TestModel]:
    """One test model for the whole session."""
    model = TestModel().start()
    yield model
    model.stop()


@pytest.fixture
def test_model(test_model_server: TestModel) -> Iterator[TestModel]:
    """The session's test model, reset: no requests, mode ``default``, no latency."""
    test_model_server.reset()
    yield test_model_server
    test_model_server.reset()
