"""Refused requests: every problem is reported at once, as JSON, and nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest

from approvals.models import Approval, ApprovalStatus
from runs.models import Run, RunEvent
from tests.test_state_machine import paused_run
from vault.services import secret_put

pytestmark = pytest.mark.usefixtures("private_urls")


GOOD_STEPS = [{"action": "goto", "url": "http://127.0.0.1:9/pay"}, {"action": "click", "selector": "#pay"}]


def assert_json_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = dict(response.json())
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["detail"], str) and body["detail"]
    if code is not None:
        assert body["error"] == code, body
    return body


def test_a_program_with_several_problems_is_refused_with_all_of_them_and_no_run_is_stored(alice):
    steps = [
        {"action": "goto", "url": "http://127.0.0.1:9/pay"},
        {"action": "teleport", "selector": "#pay"},
        {"action": "click", "selector": "#pay", "timeout": 0, "gate": {"kind": "choice", "prompt": "Which?"}},
        {"action": "fill", "selector": "#otp", "value": "{{input}}"},
        {"action": "fill", "selector": "#pw", "value": "{{secrets.nope}}"},
        {"action": "assert_text", "text": "{{outputs.receipt}}"},
    ]

    response = alice.post("/api/runs", {"goal": "pay", "steps": steps})

    body = assert_json_error(response, 400, "invalid_program")
    assert "6 problem" in body["detail"]
    assert [(p["step"], p["field"]) for p in body["problems"]] == [
        (2, "action"),
        (3, "timeout"),
        (3, "gate.options"),
        (4, "value"),
        (5, "value"),
        (6, "text"),
    ]
    assert all(set(p) == {"step", "field", "message"} and p["message"] for p in body["problems"])
    assert Run.objects.count() == 0
    assert RunEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        ([{"action": "hover", "selector": "#menu"}], "action"),
        ([{"action": "click"}], "selector"),
        ([{"action": "click", "selector": "#a", "colour": "red"}], "colour"),
        ([{"action": "click", "selector": "#a", "timeout": "soon"}], "timeout"),
        ([{"action": "click", "selector": "#a", "gate": {"kind": "perhaps"}}], "gate.kind"),
        (
            [
                {
                    "action": "fill",
                    "selector": "#otp",
                    "value": "{{input}}",
                    "gate": {"kind": "input", "pattern": "(["},
                }
            ],
            "gate.pattern",
        ),
        ([{"action": "click", "selector": "text={{choice}}"}], "selector"),
        ([{"action": "fill", "selector": "#q", "value": "{{params.q}}"}], "value"),
        ([{"action": "click", "selector": "{{secrets.pw}}"}], "selector"),
        ([], "steps"),
        ("goto http://x", "steps"),
        ([["click", "#a"]], "step"),
    ],
)
def test_a_bad_program_is_refused_with_the_problem_and_no_run_is_stored(alice, steps, field):
    response = alice.post("/api/runs", {"goal": "g", "steps": steps})

    body = assert_json_error(response, 400, "invalid_program")
    assert [p["field"] for p in body["problems"]] == [field]
    assert Run.objects.count() == 0


def test_a_secret_of_another_tenant_does_not_make_a_program_valid(alice, carol):
    secret_put(tenant=carol.tenant, name="shop_password", value="hunter2")
    steps = [{"action": "fill", "selector": "#pw", "value": "{{secrets.shop_password}}"}]

    refused = alice.post("/api/runs", {"steps": steps})
    accepted = carol.post("/api/runs", {"steps": steps})

    body = assert_json_error(refused, 400, "invalid_program")
    assert body["problems"][0]["step"] == 1
    assert "shop_password" in body["problems"][0]["message"]
    assert accepted.status_code == 201, accepted.content
    assert Run.objects.filter(tenant=alice.tenant).count() == 0


@pytest.mark.parametrize("url", ["http://10.1.2.3/", "http://169.254.169.254/latest/meta-data/"])
def test_a_private_address_is_refused_when_private_urls_are_off(alice, settings, url):
    settings.TWIN_ALLOW_PRIVATE_URLS = False

    start_url = alice.post("/api/runs", {"url": url, "steps": [{"action": "click", "selector": "#a"}]})
    goto = alice.post("/api/runs", {"steps": [{"action": "goto", "url": url}]})

    assert [
        (p["step"], p["field"]) for p in assert_json_error(start_url, 400, "invalid_program")["problems"]
    ] == [(None, "url")]
    assert [(p["step"], p["field"]) for p in assert_json_error(goto, 400, "invalid_program")["problems"]] == [
        (1, "url")
    ]
    assert Run.objects.count() == 0


@pytest.mark.parametrize("raw", ['{"steps": [', "not json at all", '{"steps": []}}'])
def test_a_malformed_json_body_is_a_json_400(alice, raw):
    response = alice.client.post("/api/runs", data=raw, content_type="application/json")

    assert_json_error(response, 400)
    assert Run.objects.count() == 0


@pytest.mark.parametrize("body", [[GOOD_STEPS], "steps", 42])
def test_a_body_that_is_not_an_object_is_a_json_400(alice, body):
    response = alice.post("/api/runs", body)

    assert_json_error(response, 400)
    assert Run.objects.count() == 0


def test_a_body_without_steps_is_a_json_400_naming_steps(alice):
    # (A goal and a url without steps is the agent's run: tests/test_agent.py.)
    response = alice.post("/api/runs", {"goal": "pay"})

    body = assert_json_error(response, 400)
    assert "steps" in body["detail"]
    assert Run.objects.count() == 0


@pytest.mark.parametrize("wait", ["abc", "61", "-1", "nan", "inf", "1e9"])
def test_a_bad_wait_is_refused_before_anything_is_stored(alice, wait):
    response = alice.post(f"/api/runs?wait={wait}", {"goal": "g", "steps": GOOD_STEPS})

    body = assert_json_error(response, 400, "invalid_wait")
    assert "60" in body["detail"]
    assert Run.objects.count() == 0


@pytest.mark.parametrize("wait", ["abc", "61"])
def test_a_bad_wait_on_a_run_is_refused(alice, wait):
    run, _ = paused_run(alice.tenant, alice.user)

    assert_json_error(alice.get(f"/api/runs/{run.pk}?wait={wait}"), 400, "invalid_wait")


def test_a_valid_program_with_wait_zero_is_accepted(alice):
    response = alice.post("/api/runs?wait=0", {"goal": "g", "steps": GOOD_STEPS})

    assert response.status_code == 201, response.content
    assert response.json()["status"] == "queued"
    assert Run.objects.count() == 1


# -- roles ------------------------------------------------------------------------------------------
def test_a_viewer_cannot_start_a_run(bob):
    response = bob.post("/api/runs", {"goal": "g", "steps": GOOD_STEPS})

    assert_json_error(response, 403, "forbidden")
    assert Run.objects.count() == 0


@pytest.mark.parametrize("verb", ["approve", "reject", "cancel"])
def test_a_viewer_cannot_decide_or_cancel_a_paused_run(alice, bob, verb):
    run, approval = paused_run(alice.tenant, alice.user)

    response = bob.post(f"/api/runs/{run.pk}/{verb}")

    assert_json_error(response, 403, "forbidden")
    run.refresh_from_db()
    assert run.status == "awaiting_approval"
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def test_a_viewer_can_still_read_the_run(alice, bob):
    run, _ = paused_run(alice.tenant, alice.user)

    response = bob.get(f"/api/runs/{run.pk}")

    assert response.status_code == 200
    assert response.json()["status"] == "awaiting_approval"


# -- answers ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "answer",
    [
        {"input": 123456},
        {"input": 1234.5},
        {"input": True},
        {"input": ["123456"]},
        {"input": {"code": "123456"}},
        {"input": None},
    ],
)
def test_approving_with_an_input_that_is_not_a_string_is_a_400_and_the_run_stays_paused(alice, answer):
    run, approval = paused_run(alice.tenant, alice.user, kind="input")

    response = alice.post(f"/api/runs/{run.pk}/approve", answer)

    assert_json_error(response, 400)
    run.refresh_from_db()
    assert run.status == "awaiting_approval"
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


@pytest.mark.parametrize("answer", [{"choice": 1}, {"choice": ["Savings"]}])
def test_approving_with_a_choice_that_is_not_a_string_is_a_400(alice, answer):
    run, approval = paused_run(alice.tenant, alice.user, kind="choice")

    assert_json_error(alice.post(f"/api/runs/{run.pk}/approve", answer), 400)
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def test_approving_with_an_input_that_fails_the_pattern_is_a_400_and_the_run_stays_paused(alice):
    run, _ = paused_run(alice.tenant, alice.user, kind="input")

    refused = alice.post(f"/api/runs/{run.pk}/approve", {"input": "12ab56"})
    accepted = alice.post(f"/api/runs/{run.pk}/approve", {"input": "123456"})

    body = assert_json_error(refused, 400, "input_invalid")
    assert "12ab56" not in body["detail"]
    assert accepted.status_code == 202, accepted.content
    assert accepted.json()["status"] == "running"


def test_approving_with_a_choice_that_is_not_an_option_is_a_400(alice):
    run, _ = paused_run(alice.tenant, alice.user, kind="choice")

    body = assert_json_error(
        alice.post(f"/api/runs/{run.pk}/approve", {"choice": "Brokerage"}), 400, "choice_invalid"
    )

    assert "Savings" in body["detail"]
    assert Approval.objects.get(run=run).status == ApprovalStatus.PENDING


def test_a_second_approve_is_a_409_naming_the_current_status(alice):
    run, _ = paused_run(alice.tenant, alice.user)

    first = alice.post(f"/api/runs/{run.pk}/approve")
    second = alice.post(f"/api/runs/{run.pk}/approve")

    assert first.status_code == 202
    body = assert_json_error(second, 409, "conflict")
    assert body["status"] == "running"
    assert RunEvent.objects.filter(run=run, type="run.resumed").count() == 1
