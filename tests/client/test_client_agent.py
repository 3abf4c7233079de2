"""twin_client and the agent: a run from a goal and a URL alone (no steps), ``plan``, and what a
planned run reads as (``summary``, each step's ``planned``): the requests against an httpx
MockTransport, and the live server's refusal when no model is configured."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.conf import settings

from tests.client.test_client_skills import RUN_ID, Server, a_run, body, ok, query
from tests.dashboard.conftest import Person
from twin_client import AsyncTwin, InvalidRequest, PlannedStep, Twin

URL = "https://portal.example/invoices"
PAY_POLICY = "'Pay $42.00' matches the policy pattern 'pay'"


def planned(tool: str, intent: str, **extra: Any) -> dict[str, Any]:
    """A step's ``planned`` as the API carries it."""
    return {
        "tool": tool,
        "arguments": {"ref": "e5", "intent": intent},
        "intent": intent,
        "calls": 1,
        "errors": [],
        "tokens_in": 700,
        "tokens_out": 112,
        "latency_ms": 900,
        **extra,
    }


PAUSED = a_run(
    "awaiting_approval",
    goal="Pay the July invoice",
    url=URL,
    planner="model",
    summary=None,
    steps=[
        {
            "index": 1,
            "action": "goto",
            "label": "Open portal.example/invoices",
            "status": "done",
            "planned": None,
        },
        {
            "index": 2,
            "action": "ask",
            "label": "Which account should pay?",
            "status": "done",
            "planned": planned("ask_human", "Which account should pay?", answer="Checking"),
        },
        {
            "index": 3,
            "action": "click",
            "label": "Pay the invoice",
            "status": "awaiting_approval",
            "planned": planned(
                "click",
                "Pay the invoice",
                calls=2,
                errors=["there is no element [ref=e9] in the newest snapshot"],
                policy=PAY_POLICY,
            ),
        },
    ],
    pending_step={
        "index": 3,
        "action": "click",
        "trigger": "approval",
        "kind": "approval",
        "prompt": "Click button 'Pay $42.00' on portal.example/pay",
        "options": None,
        "approval_id": "a1",
    },
)
DONE = a_run(
    "completed",
    goal="Pay the July invoice",
    url=URL,
    planner="model",
    summary="Paid invoice INV-7 from Checking.",
    outputs={"receipt": "R-1042"},
    steps=[
        *PAUSED["steps"][:2],
        {**PAUSED["steps"][2], "status": "done"},
        {
            "index": 4,
            "action": "done",
            "label": "Done: Paid invoice INV-7 from Checking.",
            "status": "done",
            "planned": planned("done", "Paid invoice INV-7 from Checking."),
        },
    ],
)


def test_agents_run_with_a_goal_and_url_only_sends_no_steps_and_reads_what_the_model_planned() -> None:
    server = Server({("POST", "/api/runs"): [ok(PAUSED, 201)], ("GET", f"/api/runs/{RUN_ID}"): [ok(DONE)]})
    twin = server.twin()

    run = twin.agents.run(goal="Pay the July invoice", url=URL)

    (post,) = server.requests
    assert body(post) == {"goal": "Pay the July invoice", "url": URL}  # no "steps": the agent plans
    assert query(post) == {"wait": ["60"]} and "Idempotency-Key" in post.headers
    assert run.status == "awaiting_approval" and run.planner == "model" and run.summary is None
    assert run.pending_step is not None
    assert run.pending_step.prompt == "Click button 'Pay $42.00' on portal.example/pay"
    goto, ask, pay = run.steps
    assert goto.planned is None  # the run's URL: no model chose it
    assert ask.planned is not None and ask.planned.answer == "Checking" and ask.planned.policy is None
    assert pay.planned == PlannedStep(
        tool="click",
        arguments={"ref": "e5", "intent": "Pay the invoice"},
        intent="Pay the invoice",
        calls=2,
        errors=["there is no element [ref=e9] in the newest snapshot"],
        tokens_in=700,
        tokens_out=112,
        latency_ms=900,
        policy=PAY_POLICY,
        answer=None,
    )

    done = twin.runs.wait(run.id, timeout=30)
    assert done.status == "completed" and done.summary == "Paid invoice INV-7 from Checking."
    assert done.outputs == {"receipt": "R-1042"}
    assert done.steps[-1].planned is not None and done.steps[-1].planned.tool == "done"


def test_plan_always_and_params_are_sent_and_runs_start_takes_a_goal_alone() -> None:
    server = Server(
        {
            ("POST", "/api/runs"): [
                ok(a_run("completed", planner="model", summary="ok"), 201),
                ok(a_run("queued"), 201),
            ]
        }
    )
    twin = server.twin()

    run = twin.agents.run(
        goal="Find the receipt", url=URL, params={"invoice": "INV-7"}, plan="always", timeout=5
    )
    queued = twin.runs.start(goal="Find the receipt", url=URL)

    first, second = server.requests
    assert body(first) == {
        "goal": "Find the receipt",
        "url": URL,
        "params": {"invoice": "INV-7"},
        "plan": "always",
    }
    assert query(first) == {"wait": ["5"]}
    assert run.summary == "ok"
    assert body(second) == {"goal": "Find the receipt", "url": URL} and query(second) == {}
    assert queued.status == "queued" and queued.summary is None


def test_a_run_and_steps_from_an_older_server_have_no_summary_or_planned() -> None:
    server = Server(
        {
            ("GET", f"/api/runs/{RUN_ID}"): [
                ok(a_run(steps=[{"index": 1, "action": "goto", "status": "done"}]))
            ]
        }
    )
    old = server.twin().runs.get(RUN_ID)
    assert old.summary is None and old.steps[0].planned is None


def test_the_async_agent_run_sends_the_same_request() -> None:
    server = Server({("POST", "/api/runs"): [ok(PAUSED, 201)]})

    async def call() -> Any:
        async with server.async_twin() as twin:
            return await twin.agents.run(goal="Pay the July invoice", url=URL, plan="auto")

    run = asyncio.run(call())

    (post,) = server.requests
    assert body(post) == {"goal": "Pay the July invoice", "url": URL, "plan": "auto"}
    assert run.status == "awaiting_approval" and run.steps[2].planned is not None
    assert run.steps[2].planned.policy == PAY_POLICY


# -- live -------------------------------------------------------------------------------------------------
def test_a_goal_only_run_without_a_model_is_refused_with_planner_not_configured(alice: Person) -> None:
    """The test server has no TWIN_LLM_* and the tenant no model of its own, and no skill answers."""
    if settings.TWIN_LLM_BASE_URL:
        pytest.skip("this test environment configures a model (TWIN_LLM_BASE_URL)")
    with Twin(alice.base_url, alice.token) as twin:
        with pytest.raises(InvalidRequest) as refused:
            twin.agents.run(goal="Pay the July invoice", url="http://127.0.0.1:9/invoices")
        assert (refused.value.status, refused.value.code) == (400, "planner_not_configured")
        assert twin.runs.list() == []  # nothing half-stored

    async def async_call() -> None:
        async with AsyncTwin(alice.base_url, alice.token) as twin:
            await twin.agents.run(
                goal="Pay the July invoice", url="http://127.0.0.1:9/invoices", plan="always"
            )

    with pytest.raises(InvalidRequest) as refused_async:
        asyncio.run(async_call())
    assert refused_async.value.code == "planner_not_configured"
