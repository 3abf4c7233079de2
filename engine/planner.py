"""The agent's side of the model: configuration, the protocol (tools, the message), the policy.

A goal-only run is planned one action at a time by a language model over any OpenAI-compatible
Chat Completions endpoint (``../shared/CONTRACT.md``, "The agent"). This module knows how to
talk to the model and how to judge what it answers; :mod:`engine.planning` drives the loop in
the executor. Nothing here touches the page except through the functions given a page.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from runs.program import NAME_RE, compile_pattern
from twin_site import limits

TOOL_NAMES = ("goto", "click", "fill", "select", "check", "press", "extract", "ask_human", "done")
# Tools that act on an element of the snapshot (``ref``); press takes one optionally.
REF_TOOLS = frozenset({"click", "fill", "select", "check", "extract"})
MAX_ERRORS_IN_A_ROW = 3
REF_RE = re.compile(r"\[ref=([A-Za-z0-9]+)\]")
ONE_TIME_CODE_RE = re.compile(
    r"\b(code|otp|one[- ]?time|verification|verify|2fa|two[- ]?factor|authenticator|passcode|totp)\b",
    re.IGNORECASE,
)


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


_REF = {"type": "string", "description": "The element's ref in the newest snapshot, such as e5 or f1e5."}
_INTENT = {
    "type": "string",
    "description": "One short sentence: what this action is for (a person reads it).",
}
TOOLS: list[dict[str, Any]] = [
    _tool("goto", "Open a URL in the page.", {"url": {"type": "string"}}, ["url"]),
    _tool(
        "click",
        "Click an element.",
        {
            "ref": _REF,
            "intent": _INTENT,
            "consequential": {
                "type": "boolean",
                "description": "true if this click commits something (pays, sends, deletes): "
                "a person approves first.",
            },
        },
        ["ref", "intent"],
    ),
    _tool(
        "fill",
        "Type a value into a field (replacing what it holds).",
        {
            "ref": _REF,
            "value": {
                "type": "string",
                "description": "A literal, {{secrets.NAME}} (a secret you may use) or {{params.NAME}}.",
            },
            "intent": _INTENT,
        },
        ["ref", "value", "intent"],
    ),
    _tool(
        "select",
        "Choose an option of a select box, by its value or label.",
        {"ref": _REF, "value": {"type": "string"}, "intent": _INTENT},
        ["ref", "value", "intent"],
    ),
    _tool("check", "Tick a checkbox or a radio button.", {"ref": _REF, "intent": _INTENT}, ["ref", "intent"]),
    _tool(
        "press",
        "Press a key (Enter, Tab, Escape, ArrowDown…) in an element, or in the focused one.",
        {"key": {"type": "string"}, "ref": _REF, "intent": _INTENT},
        ["key", "intent"],
    ),
    _tool(
        "extract",
        "Read an element's text into the run's outputs under a name.",
        {"name": {"type": "string", "description": "letters, digits and _"}, "ref": _REF, "intent": _INTENT},
        ["name", "ref", "intent"],
    ),
    _tool(
        "ask_human",
        "Ask a person instead of guessing: the goal is ambiguous, or you are unsure what to do.",
        {
            "prompt": {"type": "string"},
            "kind": {"type": "string", "enum": ["input", "choice"]},
            "options": {"type": "array", "items": {"type": "string"}},
        },
        ["prompt", "kind"],
    ),
    _tool(
        "done",
        "The goal is reached (or cannot be): finish, with a summary and any values found.",
        {
            "summary": {"type": "string"},
            "outputs": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        ["summary"],
    ),
]

SYSTEM_PROMPT = """You operate a web browser for a person, one action at a time, to reach their goal.
Each turn you get the goal, the actions so far with their outcomes, and the page: its URL, title and
an accessibility snapshot in which elements carry refs such as [ref=e5]. Answer with exactly one tool
call. Rules:
- Act only on refs of the newest snapshot. Say in `intent` what the action is for, in a few words.
- Never guess. When the goal is ambiguous or you are unsure, call ask_human (kind "choice" with options
  when there are a few possibilities, else kind "input").
- You never see secrets. Type one as {{secrets.NAME}} using a name from "Secrets"; type a parameter as
  {{params.NAME}}. Values shown as [secret:NAME] or [redacted] are hidden from you on purpose.
- One-time codes: fill the code field with any placeholder; a person or the vault supplies the code.
- Actions that pay, buy, send, delete or otherwise commit are approved by a person before they happen:
  do them when the goal asks for them; set consequential=true on any other click that commits.
- When the goal is reached, call done with a one-sentence summary and the values asked for as outputs.
"""


# -- configuration -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelConfig:
    base_url: str
    model: str
    api_key: str = field(default="", repr=False)
    source: str = "server"  # "tenant": the tenant's own endpoint; "server": TWIN_LLM_*


class ModelUnavailable(Exception):
    """The model could not be asked (not configured, unreachable, or it answered nonsense)."""


def model_config(tenant: Any) -> ModelConfig | None:
    """The endpoint that plans the tenant's runs: its own if set, else the server's; None: none."""
    if tenant is not None and tenant.llm_base_url and tenant.llm_model:
        key = ""
        if tenant.llm_key_secret:
            from vault.services import secret_resolve

            secret = secret_resolve(tenant_id=tenant.pk, name=tenant.llm_key_secret)
            key = secret.value if secret is not None else ""
        return ModelConfig(tenant.llm_base_url.rstrip("/"), tenant.llm_model, key, "tenant")
    if settings.TWIN_LLM_BASE_URL and settings.TWIN_LLM_MODEL:
        return ModelConfig(
            settings.TWIN_LLM_BASE_URL.rstrip("/"), settings.TWIN_LLM_MODEL, settings.TWIN_LLM_API_KEY
        )
    return None


def check_endpoint(config: ModelConfig) -> None:
    """A tenant's endpoint is a URL a tenant controls: the same guard as a page's (not the server's own)."""
    if config.source != "tenant":
        return
    from .netguard import UrlRefused, check_url

    try:
        check_url(config.base_url)
    except UrlRefused as exc:
        raise ModelUnavailable(f"the tenant's model endpoint is refused: {exc}") from None


# -- asking ----------------------------------------------------------------------------------------------
@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any] | None  # None: not a JSON object
    raw: str


@dataclass
class Answer:
    call: ToolCall | None  # None: the model answered without a tool call
    tokens_in: int
    tokens_out: int
    latency_ms: int
    message: dict[str, Any]  # the assistant message, as it goes back into the conversation


_clients: dict[tuple[str, str], Any] = {}


def _client(config: ModelConfig) -> Any:
    from openai import OpenAI

    key = (config.base_url, config.api_key)
    client = _clients.get(key)
    if client is None:
        client = OpenAI(
            base_url=config.base_url,
            api_key=config.api_key or "none",  # local servers (Ollama, vLLM) take any key
            timeout=settings.TWIN_LLM_TIMEOUT,
            max_retries=1,
        )
        _clients[key] = client
    return client


def ask(config: ModelConfig, messages: list[dict[str, Any]]) -> Answer:
    """One Chat Completions call with the tools and ``tool_choice: "required"``; its first tool call."""
    import openai

    check_endpoint(config)
    started = time.monotonic()
    try:
        completion = _client(config).chat.completions.create(
            model=config.model,
            messages=messages,
            tools=TOOLS,
            tool_choice="required",
            stream=False,
        )
    except openai.APIStatusError as exc:
        raise ModelUnavailable(f"the model answered HTTP {exc.status_code}: {_short(str(exc))}") from None
    except openai.APIError as exc:
        raise ModelUnavailable(f"the model could not be reached: {_short(str(exc))}") from None
    latency_ms = int((time.monotonic() - started) * 1000)
    usage = getattr(completion, "usage", None)
    tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
    tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
    choices = getattr(completion, "choices", None) or []
    if not choices:
        raise ModelUnavailable("the model's answer had no choices")
    message = choices[0].message
    calls = getattr(message, "tool_calls", None) or []
    first = calls[0] if calls else None
    call = None
    if first is not None and getattr(first, "function", None) is not None:
        raw = first.function.arguments or ""
        try:
            parsed = json.loads(raw) if raw.strip() else {}
        except ValueError:
            parsed = None
        call = ToolCall(
            id=first.id or "call_0",
            name=str(first.function.name or ""),
            arguments=parsed if isinstance(parsed, dict) else None,
            raw=raw[:4000],
        )
    back: dict[str, Any] = {"role": "assistant", "content": getattr(message, "content", None) or ""}
    if call is not None:
        back["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.raw}}
        ]
    return Answer(call, tokens_in, tokens_out, latency_ms, back)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the message -------------------------------------------------------------------------------------------
def user_message(
    *,
    goal: str,
    params: dict[str, Any],
    secrets: list[tuple[str, str]],
    actions: list[str],
    url: str,
    title: str,
    snapshot: str,
) -> str:
    """The newest user message, laid out as the contract says (the test model parses exactly this)."""
    lines = [
        f"Goal: {goal}",
        "Params: " + (json.dumps(params, ensure_ascii=False, sort_keys=True) if params else "none"),
        "Secrets: " + (", ".join(f"{name} ({kind})" for name, kind in secrets) if secrets else "none"),
        "Actions so far:",
        *(actions or ["none"]),
    ]
    lines += [f"URL: {url}", f"Title: {title}", "--- snapshot ---", snapshot, "--- end snapshot ---"]
    return "\n".join(lines)


def action_line(number: int, tool: str, arguments: dict[str, Any], outcome: str) -> str:
    shown = json.dumps(arguments, ensure_ascii=False, sort_keys=False)
    return f"{number}. {tool} {shown} -> {outcome}"


def snapshot_refs(snapshot: str) -> set[str]:
    return set(REF_RE.findall(snapshot))


def cut_snapshot(snapshot: str, limit: int) -> str:
    if len(snapshot) <= limit:
        return snapshot
    head = snapshot[:limit].rsplit("\n", 1)[0]
    return head + f"\n- text: [the rest of the page ({len(snapshot) - len(head):,} characters) is cut]"


class Redactor:
    """Keeps secrets out of what the model is sent: each value replaced by ``[secret:NAME]`` (a vault
    secret) or ``[redacted]`` (a password field's value, a human's input, a one-time code)."""

    MIN_ANYWHERE = 4  # shorter values are replaced only where a whole field value is the value

    def __init__(self) -> None:
        self._forms: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str], replacement: str) -> None:
        from .scrub import encodings

        changed = False
        for value in values:
            if not isinstance(value, str) or not value:
                continue
            for form in encodings(value) | {value}:
                if form not in self._forms:
                    self._forms[form] = replacement
                    changed = True
        if changed:
            long = sorted((f for f in self._forms if len(f) >= self.MIN_ANYWHERE), key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(f) for f in long)) if long else None

    def text(self, text: str) -> str:
        if self._pattern is not None and text:
            text = self._pattern.sub(lambda m: self._forms[m.group(0)], text)
        return text

    def snapshot(self, snapshot: str, field_values: Iterable[str]) -> str:
        """The snapshot with ``field_values`` (password fields) hidden wherever a field shows them."""
        hidden = {v for v in field_values if v}
        out = []
        for line in snapshot.split("\n"):
            head, sep, value = line.partition("]: ")
            if sep and "- textbox" in head:
                shown = _yaml_scalar(value)
                if shown in hidden:
                    line = f"{head}{sep}{self._forms.get(shown, '[redacted]')}"
                elif shown in self._forms:
                    line = f"{head}{sep}{self._forms[shown]}"
            out.append(line)
        return self.text("\n".join(out))


def _yaml_scalar(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return str(json.loads(text))
        except ValueError:
            return text[1:-1]
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text


PASSWORD_VALUES_JS = """() => Array.from(document.querySelectorAll('input[type=password]'))
  .map((e) => e.value).filter((v) => v)"""


def password_values(page: Any) -> list[str]:
    """What the page's password fields hold (every frame): never sent to the model."""
    values: list[str] = []
    for frame in page.frames:
        try:
            values += [v for v in frame.evaluate(PASSWORD_VALUES_JS) if isinstance(v, str)]
        except Exception:  # a detached or navigating frame
            continue
    return values


# -- what an element is, for the policy ---------------------------------------------------------------
# One round trip: what tells a one-time-code field, and for a key press in a form, the names of the
# buttons that submitting it would press.
ELEMENT_INFO_JS = r"""(el) => {
  const clean = (s) => (s || '').replace(/\s+/g, ' ').trim().slice(0, 200);
  const labels = el.labels ? Array.from(el.labels).map((l) => clean(l.innerText)) : [];
  const form = el.form || (el.closest ? el.closest('form') : null);
  const submits = form ? Array.from(form.querySelectorAll(
      'button:not([type]), button[type=submit], input[type=submit], input[type=image]'))
    .map((b) => clean(b.innerText || b.value || b.getAttribute('aria-label') || b.title)) : [];
  return {
    tag: el.tagName.toLowerCase(),
    type: (el.getAttribute('type') || '').toLowerCase(),
    autocomplete: (el.getAttribute('autocomplete') || '').toLowerCase(),
    name: clean(el.getAttribute('name')), id: clean(el.id),
    placeholder: clean(el.getAttribute('placeholder')),
    aria: clean(el.getAttribute('aria-label')), labels, submits,
    inputmode: (el.getAttribute('inputmode') || '').toLowerCase(),
    maxlength: el.maxLength || -1,
  };
}"""


# Codes that are not one-time codes (what a form asks for every day): never an MFA pause.
NOT_ONE_TIME_RE = re.compile(
    r"\b(postal|post|zip|promo|promotion|coupon|discount|voucher|gift|country|area|dialling|dialing|"
    r"referral|invite|invitation|tracking|product|item|sort|swift|bic|iban|security|cvc|cvv)\s*code\b",
    re.IGNORECASE,
)


def is_one_time_code(info: dict[str, Any]) -> bool:
    """A field meant for a one-time code: ``autocomplete=one-time-code``, or a label, name,
    placeholder or id that says code, OTP, verification, 2FA, authenticator."""
    if "one-time-code" in str(info.get("autocomplete", "")):
        return True
    if info.get("tag") not in {"input", "textarea"} or info.get("type") in {"password", "email", "hidden"}:
        return False
    words = [
        info.get("name"),
        info.get("id"),
        info.get("placeholder"),
        info.get("aria"),
        *info.get("labels", []),
    ]
    text = " ".join(str(w) for w in words if w).replace("_", " ").replace("-", " ")
    text = NOT_ONE_TIME_RE.sub(" ", text)
    return bool(ONE_TIME_CODE_RE.search(text)) or bool(re.search(r"\b(otp|2fa|mfa|totp)", text, re.I))


def consequential_reason(
    *,
    tool: str,
    name: str,
    also: Iterable[str] = (),
    origin: str,
    flagged: bool,
    patterns: Iterable[str],
    origins: Iterable[str],
) -> str:
    """Why the planned action needs a person's approval before it acts ("" when it does not).

    ``name`` is the accessible name of the element acted on; ``also`` the names of what the action
    sets off as well (a key press in a form submits it with its submit button).
    """
    if origin and origin in set(origins):
        return f"every action on {origin} needs approval"
    if flagged:
        return "the model marked it consequential"
    if tool not in {"click", "press", "check"}:
        return ""
    for text in [name, *also]:
        if not text:
            continue
        for pattern in patterns:
            try:
                if compile_pattern(f"(?i){pattern}").search(text) is not None:
                    return f"{text!r} matches the policy pattern {pattern!r}"
            except Exception:
                continue  # a pattern Twin cannot run matches nothing (the admin form refuses it)
    return ""


def page_place(url: str) -> str:
    """``shop.example/checkout``: where an action happens, as a person reads it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url[:200]
    return (parts.netloc + (parts.path if parts.path not in {"", "/"} else ""))[:200] or url[:200]


ROLE_WORDS = {"button": "button", "link": "link", "checkbox": "checkbox", "radio": "radio button"}


def action_words(tool: str, *, role: str, name: str, value_shown: str = "", key: str = "") -> str:
    """``Click button 'Pay $42.00'``: the action as the approver reads it."""
    what = f"{ROLE_WORDS.get(role, role or 'element')} {name!r}" if name else (role or "an element")
    if tool == "click":
        return f"Click {what}"
    if tool == "check":
        return f"Tick {what}"
    if tool == "press":
        return f"Press {key} in {what}"
    if tool == "fill":
        return f"Type {value_shown} into {what}"
    if tool == "select":
        return f"Choose {value_shown!r} in {what}"
    if tool == "extract":
        return f"Read {what}"
    return tool


def valid_name(name: Any) -> bool:
    return isinstance(name, str) and len(name) <= limits.MAX_NAME and bool(NAME_RE.match(name))
