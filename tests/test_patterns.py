"""Gate patterns cannot hang anything: RE2 compiles them, at submission and at approve time."""

from __future__ import annotations

import time

import pytest

from approvals.models import Approval, ApprovalStatus
from runs.models import Run
from tests.conftest import start_run, wait_run
from tests.test_bad_programs import assert_json_error
from tests.test_state_machine import paused_run

# Python's re backtracks on this pair for about 9 s (doubling with every extra "a").
CATASTROPHIC = "(a+)+"
HOSTILE_INPUT = "a" * 28 + "!"
AT_ONCE = 1.0  # seconds: what "answers at once" means on a busy 2-core test machine


def input_gated(url: str, pattern: str) -> list[dict[str, object]]:
    return [
        {"action": "goto", "url": url},
        {
            "action": "fill",
            "selector": "#user",
            "value": "{{input}}",
            "gate": {"kind": "input", "prompt": "Your name", "pattern": pattern},
        },
    ]


def test_a_catastrophic_pattern_answers_a_hostile_input_at_once_and_the_run_still_works(alice, site, worker):
    run = start_run(alice, input_gated(site.url("/login"), CATASTROPHIC))
    assert run["status"] == "awaiting_approval", run

    started = time.monotonic()
    refused = alice.post(f"/api/runs/{run['id']}/approve", {"input": HOSTILE_INPUT})
    took = time.monotonic() - started

    assert_json_error(refused, 400, "input_invalid")
    assert took < AT_ONCE, f"the approve took {took:.1f} s"
    assert wait_run(alice, run["id"], wait=0)["status"] == "awaiting_approval"

    accepted = alice.post(f"/api/runs/{run['id']}/approve", {"input": "aaaa"})

    assert accepted.status_code == 202, accepted.content
    assert wait_run(alice, run["id"])["status"] == "completed"


@pytest.mark.usefixtures("private_urls")
def test_every_channel_checks_the_pattern_in_linear_time(alice):
    """The service every channel calls (API, dashboard, decision link) is what uses RE2."""
    run, approval = paused_run(alice.tenant, alice.user, kind="input")
    Approval.objects.filter(pk=approval.pk).update(pattern=CATASTROPHIC)
    alice.get("/api/runs")  # the first request of a process is slow for reasons of its own

    started = time.monotonic()
    refused = alice.post(f"/api/runs/{run.pk}/approve", {"input": "a" * 5_000 + "!"})

    assert_json_error(refused, 400, "input_invalid")
    assert time.monotonic() - started < AT_ONCE
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


@pytest.mark.usefixtures("private_urls")
@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(\d)\1", "invalid escape sequence"),  # a backreference
        (r"^(?=.*\d)[a-z0-9]{6}$", "invalid perl operator"),  # lookahead
        (r"(?<!x)y", "invalid perl operator"),  # lookbehind
        ("[0-9", "missing ]"),
        ("a{2000}", "invalid repetition size"),
    ],
)
def test_a_pattern_re2_cannot_run_is_refused_at_submission_naming_step_field_and_reason(
    alice, pattern, reason
):
    steps = input_gated("http://127.0.0.1:9/login", pattern)

    body = assert_json_error(alice.post("/api/runs", {"goal": "g", "steps": steps}), 400, "invalid_program")

    [problem] = body["problems"]
    assert problem["step"] == 2
    assert problem["field"] == "gate.pattern"
    assert "RE2" in problem["message"] and reason in problem["message"], problem
    assert Run.objects.count() == 0


@pytest.mark.usefixtures("private_urls")
def test_a_pattern_longer_than_the_limit_is_refused(alice):
    steps = input_gated("http://127.0.0.1:9/login", "[0-9]" * 101)  # 505 characters

    body = assert_json_error(alice.post("/api/runs", {"goal": "g", "steps": steps}), 400, "invalid_program")

    assert body["problems"] == [
        {"step": 2, "field": "gate.pattern", "message": "must be at most 500 characters (got 505)"}
    ]
    assert Run.objects.count() == 0


@pytest.mark.usefixtures("private_urls")
def test_the_patterns_people_write_keep_working(alice):
    run, approval = paused_run(alice.tenant, alice.user, kind="input")
    Approval.objects.filter(pk=approval.pk).update(pattern=r"(?i)^[A-Z]{2}-\d{4}$")

    assert_json_error(alice.post(f"/api/runs/{run.pk}/approve", {"input": "ab-12345"}), 400, "input_invalid")
    assert alice.post(f"/api/runs/{run.pk}/approve", {"input": "ab-1234"}).status_code == 202


@pytest.mark.usefixtures("private_urls")
def test_a_pause_whose_pattern_predates_re2_is_refused_clearly_and_can_be_rejected(alice):
    run, approval = paused_run(alice.tenant, alice.user, kind="input")
    Approval.objects.filter(pk=approval.pk).update(pattern=r"(\d)\1")  # stored before RE2 checked it

    body = assert_json_error(alice.post(f"/api/runs/{run.pk}/approve", {"input": "11"}), 400)

    assert body["error"] == "pattern_unsupported"
    assert "reject" in body["detail"]
    assert alice.post(f"/api/runs/{run.pk}/reject", {"reason": "old pattern"}).status_code == 200


@pytest.mark.usefixtures("private_urls")
def test_a_template_that_never_closes_is_validated_at_once(alice):
    """Twin's own template pattern, run on every templated field, backtracked too (26 s at 2,000)."""
    steps = [
        {"action": "goto", "url": "http://127.0.0.1:9/"},
        {"action": "click", "selector": "#a{{" + " " * 1_500},
        {"action": "fill", "selector": "#q", "value": "{{" + " " * 9_990},
    ]
    alice.get("/api/runs")  # the first request of a process is slow for reasons of its own

    started = time.monotonic()
    created = alice.post("/api/runs", {"goal": "g", "steps": steps})

    assert time.monotonic() - started < AT_ONCE
    assert created.status_code == 201, created.content  # no template in there: plain text
