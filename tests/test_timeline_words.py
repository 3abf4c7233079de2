"""The run page's timeline reads as sentences: every event type the code records has its words."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runs.states import RUN_EVENT
from runs.timeline import WORDS, Context, Event, inputs_summary, timeline, words

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)


def event(
    type: str, data: dict[str, Any] | None = None, *, step: int | None = 3, actor: str = "", n: int = 0
) -> Event:
    return Event(
        type=type, at=T0 + timedelta(seconds=n), step_index=step, actor=actor, data=data or {}, id=n + 1
    )


def said(type: str, data: dict[str, Any] | None = None, ctx: Context | None = None, **kw: Any) -> str:
    return words(event(type, data, **kw), ctx)[0]


def recorded_types() -> set[str]:
    """Every literal event type passed to record_event in the product's code."""
    types: set[str] = set()
    for folder in ("runs", "engine", "approvals", "skills", "webhooks", "vault", "tenants", "twin_site"):
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call) or len(node.args) < 2:
                    continue
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                if name != "record_event":
                    continue
                for part in ast.walk(node.args[1]):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        types.add(part.value)
    # Recorded through a variable: a run's and a step's transitions.
    types |= set(RUN_EVENT.values()) | {"run.resumed", "step.started", "step.finished", "step.paused"}
    return types


def test_every_event_type_the_code_records_has_its_own_words() -> None:
    types = recorded_types()
    assert len(types) > 30  # the scan found the calls
    assert sorted(types - set(WORDS)) == []


@pytest.mark.parametrize("type", sorted(WORDS))
def test_each_event_type_reads_as_a_sentence_even_with_no_data(type: str) -> None:
    text = said(type, {}, actor="alice")
    assert (text and text[0].isupper()) or text.startswith("alice")
    assert "_" not in text and type not in text


def test_an_unknown_event_type_reads_as_its_name_in_words() -> None:
    assert said("payment.card_declined") == "Payment: card declined"
    assert said("webhook") == "Webhook"
    assert said("") == "Event"


def test_a_pause_says_what_it_waits_for_and_quotes_the_prompt() -> None:
    ctx = Context(prompts={"a1": "Pay $42?"})
    assert said("run.awaiting_approval", {"trigger": "approval", "approval_id": "a1"}, ctx) == (
        "Paused for approval at step 3: Pay $42?"
    )
    assert said("run.awaiting_approval", {"trigger": "mfa"}, step=7).startswith(
        "Paused for a one-time code at step 7"
    )
    assert said("run.awaiting_approval", {"trigger": "blocked"}) == "Blocked — needs a decision at step 3"
    assert said("run.awaiting_approval", {}) == "Paused for a person at step 3"


def test_a_decision_says_who_decided_what_and_where() -> None:
    base = {"trigger": "approval", "channel": "dashboard"}
    assert said("approval.decided", {**base, "decision": "approved"}, actor="alice") == (
        "alice approved step 3 via the dashboard"
    )
    assert said("approval.decided", {**base, "decision": "approve"}, actor="alice") == (
        "alice approved step 3 via the dashboard"
    )
    rejected = said(
        "approval.decided", {**base, "decision": "rejected", "note": "wrong amount"}, actor="dave"
    )
    assert rejected == "dave rejected step 3 via the dashboard: “wrong amount”"
    by_token = said(
        "approval.decided",
        {
            "decision": "approve",
            "channel": "api",
            "token_name": "ci",
            "input": {"supplied": True, "length": 6},
        },
        actor="alice",
    )
    assert by_token == "alice approved step 3 via the API (token “ci”), giving 6 characters"
    chose = said(
        "approval.decided", {"decision": "approved", "choice": "Savings", "channel": "link"}, actor="bo"
    )
    assert chose == "bo chose “Savings” at step 3 via a decision link"


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        ("retry", "alice chose to retry step 4"),
        ("skip", "alice chose to skip step 4"),
        ("fail", "alice chose to fail the run at step 4"),
    ],
)
def test_a_blocked_pause_decision_is_worded_as_what_was_chosen_never_as_approved(
    decision: str, expected: str
) -> None:
    named = said("approval.decided", {"decision": decision, "trigger": "blocked"}, actor="alice", step=4)
    assert named == expected
    # As decisions were stored before they were named: "approved" with the option as the choice.
    older = said(
        "approval.decided",
        {"decision": "approved", "trigger": "blocked", "choice": decision},
        actor="alice",
        step=4,
    )
    assert older == expected


def test_a_decision_with_no_decision_key_still_reads() -> None:
    assert said("approval.decided", {}, actor="alice") == "alice decided step 3"
    assert said("approval.decided", {"decision": "escalate?"}) == "Someone decided step 3: escalate?"


def test_one_of_several_approvals_and_an_escalation_are_worded() -> None:
    given = said("approval.given", {"given": 1, "required": 2, "channel": "dashboard"}, actor="alice")
    assert given == "alice approved step 3 via the dashboard (1 of 2 approvals)"
    nested = said("approval.given", {"approvals": {"given": 2, "required": 3}}, actor="dave")
    assert nested == "dave approved step 3 (2 of 3 approvals)"
    assert said("approval.given", {}) == "Someone approved step 3"
    escalated = said("approval.escalated", {"after": 600, "to": ["carol", "erin"]})
    assert escalated.startswith("No decision on step 3 after 10 min") and escalated.endswith(
        "escalated to carol, erin"
    )
    assert said("approval.escalated", {}) == "No decision on step 3 in time: escalated"
    # As approvals.services records it.
    recorded = said("approval.escalated", {"waited_s": 120, "escalate_to": "role:approver"})
    assert recorded == "No decision on step 3 after 2 min: escalated to every approver"


def test_a_resume_says_how_the_page_came_back() -> None:
    assert said("run.resumed_in_place", {"host": "w1"}) == "Resumed on the same page"
    assert said("run.restored_from_checkpoint", {"checkpoint_step": 2}).startswith(
        "Restored from the checkpoint taken after step 2"
    )
    assert said("run.state_verified", {"compared": ["url", "title"]}).startswith(
        "Verified the page: it is as the approver saw it"
    )


def test_a_failed_step_quotes_its_error_and_a_failed_run_its_reason() -> None:
    ctx = Context(
        step_errors={4: "no element matches #pay"}, run_error="step 4 failed", step_labels={4: "Pay"}
    )
    assert (
        said("step.finished", {"status": "failed"}, ctx, step=4) == "Step 4 failed: no element matches #pay"
    )
    assert words(event("step.finished", {"status": "failed"}, step=4), ctx)[1] == "bad"
    assert said("step.finished", {"status": "done"}, ctx, step=4) == "Step 4 done"
    assert said("step.started", {"status": "running"}, ctx, step=4) == "Step 4 started: Pay"
    assert said("run.failed", {}, ctx) == "Failed: step 4 failed"
    assert (
        said("steps.skipped", {"indexes": [5, 6], "because": "cancelled"})
        == "Steps 5 and 6 were skipped (the run cancelled)"
    )


def test_quoted_text_is_kept_to_one_bounded_line() -> None:
    ctx = Context(prompts={"a": "line one\nline two " + "x" * 500})
    text = said("run.awaiting_approval", {"trigger": "approval", "approval_id": "a"}, ctx)
    assert "\n" not in text and len(text) < 260 and text.endswith("…")


def test_data_of_an_unexpected_shape_never_breaks_a_sentence() -> None:
    odd: dict[str, Any] = {
        "decision": ["approve"],
        "choice": {"x": 1},
        "input": "six",
        "steps": "9",
        "indexes": "5",
        "given": True,
        "to": 7,
        "duration": "long",
        "compared": 3,
        "skill": "slug",
    }
    for type in WORDS:
        assert said(type, odd, actor="alice")


def test_take_over_inputs_are_counted_in_words() -> None:
    inputs: list[dict[str, Any]] = [
        {"kind": "mouse.press", "button": "left", "clicks": 1},
        {"kind": "mouse.release"},
        {"kind": "text", "length": 6},
        {"kind": "key", "key": "(character)"},
        {"kind": "key", "key": "(character)"},
        {"kind": "mouse.press", "button": "left", "clicks": 1},
        {"kind": "key", "key": "Enter"},
        {"kind": "wheel", "delta_y": 100},
    ]
    assert inputs_summary(inputs) == "typed 8 characters, 2 clicks, 1 key, 1 scroll"
    assert inputs_summary([]) == "no input"


def test_consecutive_take_over_inputs_become_one_line_per_person() -> None:
    rows = [
        event("takeover.started", actor="alice", n=0),
        *[event("takeover.input", {"kind": "text", "length": 1}, actor="alice", n=i) for i in range(1, 8)],
        event("takeover.input", {"kind": "mouse.press"}, actor="alice", n=8),
        event("takeover.input", {"kind": "key", "key": "Tab"}, actor="dave", n=9),
        event("takeover.ended", {"reason": "closed", "inputs": 9}, actor="alice", n=10),
    ]
    entries = timeline(rows)
    assert [entry.text for entry in entries] == [
        "alice took over the page",
        "alice took over: typed 7 characters, 1 click",
        "dave took over: 1 key",
        "alice handed the page back (9 inputs, closed)",
    ]
    group = entries[1]
    assert group.count == 8 and len(group.details) == 8 and group.key == "ev-2"
    # Newest first (as the page lists them), the same groups, keyed by their oldest input.
    newest_first = timeline(list(reversed(rows)))
    assert [entry.text for entry in newest_first] == [entry.text for entry in reversed(entries)]
    assert newest_first[2].key == "ev-2"


def test_details_show_the_public_data_only_and_bounded() -> None:
    decided = event(
        "approval.decided",
        {
            "decision": "approve",
            "ip": "10.0.0.1",
            "user_agent": "Firefox",
            "seen": {"x": 1},
            "note": "n" * 9000,
        },
    )
    (entry,) = timeline([decided])
    data = entry.details[0].data
    assert "10.0.0.1" not in data and "Firefox" not in data and '"seen"' not in data
    assert len(data) < 4100 and data.endswith("(cut)")
    assert entry.details[0].type == "approval.decided"


def test_a_decision_is_told_before_the_resume_it_caused_in_either_order() -> None:
    rows = [
        event("run.awaiting_approval", {"trigger": "approval"}, n=0),
        event("run.resumed", {"from": "awaiting_approval"}, actor="alice", n=1),
        event("approval.decided", {"decision": "approve", "channel": "dashboard"}, actor="alice", n=2),
        event("step.finished", {"status": "queued"}, n=3),
    ]
    oldest_first = [entry.type for entry in timeline(rows)]
    assert oldest_first == ["run.awaiting_approval", "approval.decided", "run.resumed", "step.finished"]
    newest_first = [entry.type for entry in timeline(list(reversed(rows)))]
    assert newest_first == list(reversed(oldest_first))
