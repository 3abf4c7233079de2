"""A run's events as a person reads them: one sentence each, take-over inputs grouped.

Every string here ends up in a template that escapes it; nothing is marked safe. The events'
data was scrubbed when it was recorded (runs.events.record_event); what is shown of it is the
public part (no address or browser of the person deciding), bounded in size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .cost import seconds_label
from .events import public_data

# How much of one event's data its details show (a take-over group shows this much per event).
DETAIL_CHARS = 4000
# A group shows the data of this many of its inputs; the rest are counted.
GROUP_DETAILS = 50
# Texts quoted in a sentence (a prompt, an error, a note) are cut to this length.
QUOTE_CHARS = 200

PAUSED = {
    "approval": "Paused for approval",
    "mfa": "Paused for a one-time code",
    "ambiguity": "Paused to ask which element was meant",
    "blocked": "Blocked — needs a decision",
}
BLOCKED = {"retry", "skip", "fail"}  # a blocked pause's options
CHANNELS = {
    "dashboard": "the dashboard",
    "api": "the API",
    "link": "a decision link",
    "takeover": "the live view",
    "email": "email",
    "system": "the system",
}


@dataclass
class Detail:
    """One recorded event behind an entry: its raw name and its data as JSON text."""

    type: str
    at: datetime
    data: str


@dataclass
class Entry:
    """One line of the timeline."""

    at: datetime
    text: str
    type: str  # the first event's type (a group: "takeover.input")
    step_index: int | None = None
    actor: str = ""
    tone: str = ""  # "", "good", "bad", "wait": how the line is marked
    count: int = 1  # how many events it stands for
    details: list[Detail] = field(default_factory=list)
    more: int = 0  # events of a group whose data is not shown
    key: str = ""  # stable across refreshes (the oldest event's id): the page keeps it open


@dataclass
class Context:
    """What the sentences may quote besides the event: the run, its steps and its pauses."""

    run_error: str = ""
    step_labels: dict[int, str] = field(default_factory=dict)
    step_errors: dict[int, str] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)  # approval id → prompt


def context_for(run: Any, steps: Iterable[Any], approvals: Iterable[Any]) -> Context:
    steps = list(steps)
    return Context(
        run_error=run.error or "",
        step_labels={step.index: step.label or step.action for step in steps},
        step_errors={step.index: step.error for step in steps if step.error},
        prompts={str(approval.pk): approval.prompt for approval in approvals},
    )


# -- small words -----------------------------------------------------------------------------------
def quote(text: Any, limit: int = QUOTE_CHARS) -> str:
    """A text from a page, a model or a person, on one line and bounded."""
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def plural(count: int, one: str, many: str = "") -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def readable(type: str) -> str:
    """An event name nobody taught this module: "foo.bar_baz" → "Foo: bar baz"."""
    head, _, rest = quote(type, 64).partition(".")
    head = head.replace("_", " ").strip() or "event"
    rest = rest.replace(".", " ").replace("_", " ").strip()
    return head[:1].upper() + head[1:] + (f": {rest}" if rest else "")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _who(actor: str, fallback: str = "Someone") -> str:
    return actor or fallback


def _step(index: int | None) -> str:
    return f"step {index}" if index else "the step"


def _indexes(values: Any) -> str:
    numbers = [str(v) for v in values if _int(v) is not None] if isinstance(values, list) else []
    if not numbers:
        return "Later steps"
    if len(numbers) == 1:
        return f"Step {numbers[0]}"
    shown = numbers if len(numbers) <= 8 else [*numbers[:7], "…"]
    return "Steps " + ", ".join(shown[:-1]) + " and " + shown[-1]


# -- one sentence per event type ---------------------------------------------------------------
Words = Callable[[dict[str, Any], "Event", Context], "tuple[str, str] | str"]


@dataclass
class Event:
    """What a sentence needs of an event (the model's row or an API dict alike)."""

    type: str
    at: datetime
    step_index: int | None
    actor: str
    data: dict[str, Any]
    id: int | None = None


def _queued(data: dict[str, Any], event: Event, ctx: Context) -> str:
    steps = _int(data.get("steps"))
    text = f"{_who(event.actor, 'Queued')} started the run" if event.actor else "Queued"
    skill = data.get("skill")
    if isinstance(skill, dict) and skill.get("slug"):
        text += f": a replay of skill {quote(skill.get('slug'), 80)}"
        if _int(skill.get("version")):
            text += f" v{skill['version']}"
        if data.get("matched_goal"):
            text += " (its goal matched)"
    elif data.get("planner") == "model":
        text += ": the agent plans its steps"
    elif steps is not None:
        text += f" with {plural(steps, 'step')}"
    return text


def _running(data: dict[str, Any], event: Event, ctx: Context) -> str:
    return "Started running" if data.get("from") in {"queued", None} else "Running"


def _paused(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    trigger = _str(data.get("trigger"))
    text = PAUSED.get(trigger, "Paused for a person")
    if event.step_index:
        text += f" at step {event.step_index}"
    prompt = ctx.prompts.get(_str(data.get("approval_id")), "")
    if prompt:
        text += f": {quote(prompt)}"
    return text, "wait"


def _resumed(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    text = f"Resumed at step {event.step_index}" if event.step_index else "Resumed"
    if event.actor:
        text += f" after {event.actor}'s decision"
    return text, "good"


def _completed(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    return "Completed", "good"


def _failed(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    error = quote(ctx.run_error)
    return ("Failed: " + error if error else "Failed"), "bad"


def _rejected(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    by = f" by {event.actor}" if event.actor else ""
    return f"Ended: {_step(event.step_index)} was rejected{by}", "bad"


def _cancelled(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    return (f"Cancelled by {event.actor}" if event.actor else "Cancelled"), "bad"


def _expired(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    return f"Expired: nobody decided {_step(event.step_index)} in time", "bad"


def _cancel_requested(data: dict[str, Any], event: Event, ctx: Context) -> str:
    return f"{_who(event.actor)} cancelled the run"


def _in_place(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    return "Resumed on the same page", "good"


def _restored(data: dict[str, Any], event: Event, ctx: Context) -> str:
    step = _int(data.get("checkpoint_step"))
    text = "Restored from the checkpoint" + (f" taken after step {step}" if step else "")
    return text + " (the paused page was gone)"


def _verified(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    compared = data.get("compared")
    refilled = data.get("refilled")
    text = "Verified the page: it is as the approver saw it"
    if isinstance(compared, list | dict) and compared:
        text += f" ({plural(len(compared), 'check')})"
    if isinstance(refilled, list) and refilled:
        text += f"; {plural(len(refilled), 'field')} filled in again"
    return text, "good"


def _state_changed(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    differences = data.get("differences")
    count = len(differences) if isinstance(differences, list | dict) else 0
    text = "The page is not what the approver saw"
    if count:
        text += f" ({plural(count, 'difference')})"
    return text + ": the answer was not used", "bad"


def _evicted(data: dict[str, Any], event: Event, ctx: Context) -> str:
    cap = _int(data.get("cap"))
    text = "The paused page was closed to make room"
    return text + (f" (at most {cap} paused pages per worker)" if cap else "") + "; it will be restored"


def _skipped_steps(data: dict[str, Any], event: Event, ctx: Context) -> str:
    because = _str(data.get("because"))
    indexes = data.get("indexes")
    verb = "was" if isinstance(indexes, list) and len(indexes) == 1 else "were"
    return f"{_indexes(indexes)} {verb} skipped" + (f" (the run {because})" if because else "")


def _step_started(data: dict[str, Any], event: Event, ctx: Context) -> str:
    label = ctx.step_labels.get(event.step_index or 0, "")
    return f"Step {event.step_index} started" + (f": {quote(label)}" if label else "")


def _step_finished(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    status = _str(data.get("status"))
    step = f"Step {event.step_index}" if event.step_index else "A step"
    if status == "done":
        return f"{step} done", ""
    if status == "failed":
        error = quote(ctx.step_errors.get(event.step_index or 0, ""))
        return f"{step} failed" + (f": {error}" if error else ""), "bad"
    if status == "skipped":
        why = " (rejected)" if data.get("rejected") else ""
        return f"{step} skipped{why}", ""
    if status == "queued":
        return f"{step} queued to go ahead", ""
    return f"{step} {status or 'changed'}".replace("_", " "), ""


def _step_paused(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    return f"Step {event.step_index} waits for a person", "wait"


def _healed(data: dict[str, Any], event: Event, ctx: Context) -> str:
    by = quote(data.get("by"), 60)
    by = by or "another locator"
    return f"Step {event.step_index}: the recorded element was not found; found it by {by}"


def _repeated(data: dict[str, Any], event: Event, ctx: Context) -> str:
    return f"Step {event.step_index} repeated: its worker stopped during it"


def _retried(data: dict[str, Any], event: Event, ctx: Context) -> str:
    return f"Step {event.step_index} retried after reloading the page"


def _planned(data: dict[str, Any], event: Event, ctx: Context) -> str:
    what = quote(data.get("intent")) or quote(data.get("action"), 40)
    return f"The agent planned step {event.step_index}" + (f": {what}" if what else "")


def _replanned(data: dict[str, Any], event: Event, ctx: Context) -> str:
    return f"The agent repaired step {event.step_index}"


def _replan_declined(data: dict[str, Any], event: Event, ctx: Context) -> str:
    return f"The agent could not repair step {event.step_index}"


def _mfa_from_vault(data: dict[str, Any], event: Event, ctx: Context) -> str:
    return f"The agent took the one-time code for step {event.step_index} from the vault"


def _agent_blocked(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    detail = quote(data.get("detail"))
    return "The agent is blocked" + (f": {detail}" if detail else ""), "wait"


def _channel(data: dict[str, Any]) -> str:
    channel = _str(data.get("channel"))
    words = CHANNELS.get(channel, quote(channel, 40))
    token = quote(data.get("token_name"), 60)
    if channel == "api" and token:
        words += f" (token “{token}”)"
    return f" via {words}" if words else ""


def _decided(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    who = _who(event.actor or _str(data.get("decided_by")))
    step = _step(event.step_index)
    decision = _str(data.get("decision"))
    choice = quote(data.get("choice"), 80)
    trigger = _str(data.get("trigger"))
    if trigger == "blocked" and decision in {"approve", "approved", ""} and choice in BLOCKED:
        decision = choice  # before decisions were stored by name, a blocked pause's was its choice
    tone = "good"
    if decision in {"approve", "approved"}:
        text = f"{who} chose “{choice}” at {step}" if choice else f"{who} approved {step}"
    elif decision in {"reject", "rejected"}:
        text, tone = f"{who} rejected {step}", "bad"
    elif decision == "retry":
        text = f"{who} chose to retry {step}"
    elif decision == "skip":
        text = f"{who} chose to skip {step}"
    elif decision == "fail":
        text, tone = f"{who} chose to fail the run at {step}", "bad"
    elif decision:
        text, tone = f"{who} decided {step}: {quote(decision, 40)}", ""
    else:
        text, tone = f"{who} decided {step}", ""
    text += _channel(data)
    given = data.get("input")
    if isinstance(given, dict) and _int(given.get("length")) is not None:
        text += f", giving {plural(given['length'], 'character')}"
    note = quote(data.get("note"))
    if note:
        text += f": “{note}”"
    return text, tone


def _given(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    """One approval of several a gate requires (the run goes on at the last)."""
    who = _who(event.actor or _str(data.get("decided_by")))
    text = f"{who} approved {_step(event.step_index)}" + _channel(data)
    given, required = _int(data.get("given")), _int(data.get("required"))
    approvals = data.get("approvals")
    if isinstance(approvals, dict):
        given = given if given is not None else _int(approvals.get("given"))
        required = required if required is not None else _int(approvals.get("required"))
    if given is not None and required is not None:
        text += f" ({given} of {required} approvals)"
    note = quote(data.get("note"))
    if note:
        text += f": “{note}”"
    return text, "good"


def _escalated(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    text = f"No decision on {_step(event.step_index)} in time: escalated"
    after = _int(data.get("waited_s")) or _int(data.get("after")) or _int(data.get("escalate_after"))
    if after:
        text = f"No decision on {_step(event.step_index)} after {seconds_label(after)}: escalated"
    to = data.get("escalate_to") or data.get("to") or data.get("approvers")
    if to == "role:approver":
        text += " to every approver"
    elif isinstance(to, list) and to:
        text += " to " + ", ".join(quote(name, 40) for name in to[:5]) + ("…" if len(to) > 5 else "")
    elif isinstance(to, str) and to:
        text += f" to {quote(to, 60)}"
    return text, "wait"


def _input_refused(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    attempt = _int(data.get("attempt"))
    text = f"A wrong input for {_step(event.step_index)} was refused"
    return text + (f" (attempt {attempt})" if attempt else ""), "bad"


def _locked(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    seconds, wrong = _int(data.get("seconds")), _int(data.get("wrong_inputs"))
    text = f"{_step(event.step_index).capitalize()} takes no input"
    text += f" for {seconds_label(seconds)}" if seconds else " for a while"
    return text + (f" after {plural(wrong, 'wrong input')}" if wrong else ""), "bad"


def _notified(data: dict[str, Any], event: Event, ctx: Context) -> str:
    count = _int(data.get("recipients"))
    channel = _str(data.get("channel")) or "email"
    whom = plural(count, "approver") if count is not None else "the approvers"
    how = "Emailed" if channel == "email" else f"Notified ({quote(channel, 20)})"
    return f"{how} {whom} about {_step(event.step_index)}"


def _takeover_started(data: dict[str, Any], event: Event, ctx: Context) -> str:
    return f"{_who(event.actor)} took over the page"


def _takeover_input(data: dict[str, Any], event: Event, ctx: Context) -> str:
    return f"{_who(event.actor)} took over: {inputs_summary([data])}"


def _takeover_ended(data: dict[str, Any], event: Event, ctx: Context) -> str:
    inputs = _int(data.get("inputs"))
    reason = quote(data.get("reason"), 60)
    text = f"{_who(event.actor)} handed the page back"
    extras = [plural(inputs, "input")] if inputs is not None else []
    if reason:
        extras.append(reason)
    return text + (f" ({', '.join(extras)})" if extras else "")


def _video_ready(data: dict[str, Any], event: Event, ctx: Context) -> str:
    duration = data.get("duration")
    seconds = float(duration) if isinstance(duration, int | float) and not isinstance(duration, bool) else 0
    return "Session video ready" + (f" ({seconds_label(seconds)})" if seconds else "")


def _purged(data: dict[str, Any], event: Event, ctx: Context) -> str:
    days = _int(data.get("retention_days"))
    return "Screenshots and video deleted" + (f" after {plural(days, 'day')}" if days else "")


def _compiled(data: dict[str, Any], event: Event, ctx: Context) -> tuple[str, str]:
    slug, version = quote(data.get("skill"), 80), _int(data.get("version"))
    by = f" by {event.actor}" if event.actor else ""
    return f"Saved as skill {slug}" + (f" v{version}" if version else "") + by, "good"


def _compile_failed(data: dict[str, Any], event: Event, ctx: Context) -> str:
    detail = quote(data.get("detail"))
    return "Could not be saved as a skill" + (f": {detail}" if detail else "")


WORDS: dict[str, Words] = {
    "run.queued": _queued,
    "run.running": _running,
    "run.awaiting_approval": _paused,
    "run.resumed": _resumed,
    "run.completed": _completed,
    "run.failed": _failed,
    "run.rejected": _rejected,
    "run.cancelled": _cancelled,
    "run.expired": _expired,
    "run.cancel_requested": _cancel_requested,
    "run.resumed_in_place": _in_place,
    "run.restored_from_checkpoint": _restored,
    "run.state_verified": _verified,
    "run.state_changed": _state_changed,
    "page.evicted": _evicted,
    "steps.skipped": _skipped_steps,
    "step.started": _step_started,
    "step.finished": _step_finished,
    "step.paused": _step_paused,
    "step.healed": _healed,
    "step.repeated_after_interruption": _repeated,
    "step.retried_after_reload": _retried,
    "step.planned": _planned,
    "step.replanned": _replanned,
    "step.replan_declined": _replan_declined,
    "agent.mfa_from_vault": _mfa_from_vault,
    "agent.blocked": _agent_blocked,
    "approval.decided": _decided,
    "approval.given": _given,
    "approval.escalated": _escalated,
    "approval.input_refused": _input_refused,
    "approval.locked": _locked,
    "approval.notified": _notified,
    "takeover.started": _takeover_started,
    "takeover.input": _takeover_input,  # a lone one; timeline() groups consecutive ones
    "takeover.ended": _takeover_ended,
    "video.ready": _video_ready,
    "media.purged": _purged,
    "skill.compiled": _compiled,
    "skill.compile_failed": _compile_failed,
}


def words(event: Event, ctx: Context | None = None) -> tuple[str, str]:
    """The event's sentence and tone; an event type nobody worded reads as its name."""
    ctx = ctx or Context()
    data = event.data if isinstance(event.data, dict) else {}
    worder = WORDS.get(event.type)
    if worder is None:
        return readable(event.type), ""
    try:
        said = worder(data, event, ctx)
    except (TypeError, ValueError, AttributeError, KeyError):  # data of an older or odd shape
        return readable(event.type), ""
    return said if isinstance(said, tuple) else (said, "")


# -- take-over inputs, grouped -----------------------------------------------------------------
def inputs_summary(datas: Iterable[dict[str, Any]]) -> str:
    """ "typed 8 characters, 2 clicks, 1 key, 3 scrolls" for a run of take-over inputs."""
    typed = clicks = keys = scrolls = other = 0
    for data in datas:
        kind = data.get("kind") if isinstance(data, dict) else None
        if kind == "text":
            typed += _int(data.get("length")) or 0
        elif kind == "key":
            if data.get("key") == "(character)":
                typed += 1
            else:
                keys += 1
        elif kind == "mouse.press":
            clicks += 1
        elif kind == "wheel":
            scrolls += 1
        elif kind != "mouse.release":
            other += 1
    parts = []
    if typed:
        parts.append(f"typed {plural(typed, 'character')}")
    if clicks:
        parts.append(plural(clicks, "click"))
    if keys:
        parts.append(plural(keys, "key"))
    if scrolls:
        parts.append(plural(scrolls, "scroll"))
    if other:
        parts.append(plural(other, "other input"))
    return ", ".join(parts) or "no input"


def _detail(event: Event) -> Detail:
    data = public_data(event.data if isinstance(event.data, dict) else {})
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str) if data else ""
    if len(text) > 100:  # more than a line: a key a line
        text = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False, default=str)
    if len(text) > DETAIL_CHARS:
        text = text[:DETAIL_CHARS] + "\n… (cut)"
    return Detail(type=event.type, at=event.at, data=text)


def as_event(row: Any) -> Event:
    actor = getattr(row, "actor", None)
    return Event(
        type=str(row.type),
        at=row.created_at,
        step_index=row.step_index,
        actor=actor.get_username() if actor is not None else "",
        data=row.data if isinstance(row.data, dict) else {},
        id=row.pk,
    )


# A decision is recorded just after the transition it causes (in one transaction): it is read first.
DECIDES = {"approval.decided"}
CAUSED = {"run.resumed", "run.rejected"}


def _decision_first(events: list[Event]) -> list[Event]:
    """``events`` with each decision told before the resume or rejection it caused."""
    newest_first = len(events) > 1 and (events[0].id or 0) > (events[-1].id or 0)
    ordered = list(reversed(events)) if newest_first else list(events)
    for i in range(len(ordered) - 1):
        cause, decision = ordered[i], ordered[i + 1]
        if cause.type in CAUSED and decision.type in DECIDES and cause.step_index == decision.step_index:
            ordered[i], ordered[i + 1] = decision, cause
    return list(reversed(ordered)) if newest_first else ordered


def timeline(events: Sequence[Any], ctx: Context | None = None) -> list[Entry]:
    """The entries for ``events`` (RunEvent rows or :class:`Event`), in the order given
    (oldest or newest first), a decision before the resume it caused.

    Consecutive ``takeover.input`` events of one person (in either order) become one entry.
    """
    ctx = ctx or Context()
    entries: list[Entry] = []
    group: list[Event] = []
    events = _decision_first([row if isinstance(row, Event) else as_event(row) for row in events])

    def close_group() -> None:
        if not group:
            return
        first, last = group[0], group[-1]
        chronological = sorted(group, key=lambda e: e.at)
        shown = chronological[:GROUP_DETAILS]
        entries.append(
            Entry(
                at=min(first.at, last.at),
                text=f"{_who(first.actor)} took over: {inputs_summary(e.data for e in group)}",
                type="takeover.input",
                step_index=first.step_index,
                actor=first.actor,
                count=len(group),
                details=[_detail(e) for e in shown],
                more=len(group) - len(shown),
                key=f"ev-{chronological[0].id}" if chronological[0].id is not None else "",
            )
        )
        group.clear()

    for event in events:
        if event.type == "takeover.input":
            if group and group[0].actor != event.actor:
                close_group()
            group.append(event)
            continue
        close_group()
        text, tone = words(event, ctx)
        entries.append(
            Entry(
                at=event.at,
                text=text,
                type=event.type,
                step_index=event.step_index,
                actor=event.actor,
                tone=tone,
                details=[_detail(event)],
                key=f"ev-{event.id}" if event.id is not None else "",
            )
        )
    close_group()
    return entries
