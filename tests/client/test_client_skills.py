"""twin_client's skills and run-events calls: the requests they send and how they read the answers
(an httpx MockTransport stands in for the server), and ``runs.events`` against the live server."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from tests.client.test_client import pay
from tests.dashboard.conftest import Person
from twin_client import (
    AsyncTwin,
    Conflict,
    InvalidRequest,
    NotFound,
    RunCost,
    RunEvent,
    Skill,
    SkillVersion,
    Twin,
)

BASE = "http://twin.test"
RUN_ID = "6f1c0000-0000-4000-8000-000000000001"
SKILL_ID = "0b7e0000-0000-4000-8000-000000000002"

PARAMS = [
    {"name": "invoice", "type": "string", "example": "INV-1041"},
    {"name": "speed", "type": "enum", "example": "express", "options": ["standard", "express"]},
]
STEPS = [
    {"action": "goto", "url": "https://shop.example/pay"},
    {"action": "fill", "selector": "#invoice", "value": "{{params.invoice}}", "label": "Invoice number"},
]
VERSION = {
    "id": SKILL_ID,
    "version_id": "5a5a0000-0000-4000-8000-000000000003",
    "slug": "pay-invoice",
    "name": "Pay invoice",
    "version": 2,
    "params": PARAMS,
    "steps": STEPS,
    "changed_steps": [2],
    "source_run": RUN_ID,
    "created_at": "2026-11-24T16:09:12Z",
    "a_field_from_a_newer_server": {"x": 1},
}
SKILL = {
    "id": SKILL_ID,
    "slug": "pay-invoice",
    "name": "Pay invoice",
    "version": 2,
    "params": PARAMS,
    "steps": STEPS,
    "goal": "Pay the invoice",
    "url": "https://shop.example/pay",
    "archived": False,
    "archived_at": None,
    "created_at": "2026-11-20T10:00:00Z",
    "updated_at": "2026-11-24T16:09:12Z",
    "stats": {
        "runs": 4,
        "completed": 3,
        "success_rate": 0.75,
        "median_duration_s": 12.5,
        "last_run_at": "2026-11-24T16:20:00Z",
    },
}
COST = {
    "wall_s": 14.2,
    "browser_s": 9.8,
    "steps": 2,
    "pauses": 0,
    "human_wait_s": 0.0,
    "model_calls": 0,
    "tokens_in": 0,
    "tokens_out": 0,
    "amount": 0.0049,
    "currency": "EUR",
}


def a_run(status: str = "completed", **extra: Any) -> dict[str, Any]:
    return {"id": RUN_ID, "status": status, "goal": "Pay the invoice", "steps": [], **extra}


class Server:
    """Answers each request with the next answer of its route; keeps every request."""

    def __init__(self, routes: dict[tuple[str, str], list[httpx.Response]]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answers = self.routes.get((request.method, request.url.path))
        if not answers:
            return httpx.Response(404, json={"error": "not_found", "detail": "no such route in the test"})
        return answers.pop(0)

    def twin(self) -> Twin:
        return Twin(BASE, "t", http=httpx.Client(base_url=BASE, transport=httpx.MockTransport(self)))

    def async_twin(self) -> AsyncTwin:
        return AsyncTwin(
            BASE, "t", http=httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(self))
        )


def ok(data: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=data, headers=headers)


def body(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


def query(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.url.query.decode())


# -- run events ------------------------------------------------------------------------------------------
def event(n: int, name: str = "step.finished", **extra: Any) -> dict[str, Any]:
    return {
        "id": n,
        "event": name,
        "step": 1,
        "actor": None,
        "at": f"2026-11-24T16:00:0{n}Z",
        "data": {},
        **extra,
    }


def test_runs_events_follows_every_page_and_reads_each_event() -> None:
    events_path = f"/api/runs/{RUN_ID}/events"
    next_page = f'<{BASE}{events_path}?limit=2&after=2>; rel="next"'
    server = Server(
        {
            ("GET", events_path): [
                ok([event(1, "run.queued", step=None, actor="alice"), event(2)], Link=next_page),
                ok([event(3, "approval.decided", step=2, actor="alice", data={"decision": "approved"})]),
            ]
        }
    )

    events = server.twin().runs.events(RUN_ID, page_size=2)

    assert [e.id for e in events] == [1, 2, 3]
    assert all(isinstance(e, RunEvent) for e in events)
    assert (events[0].event, events[0].step, events[0].actor) == ("run.queued", None, "alice")
    assert events[2].data == {"decision": "approved"} and events[2].step == 2
    assert [query(r) for r in server.requests] == [{"limit": ["2"]}, {"limit": ["2"], "after": ["2"]}]


def test_async_runs_events_follows_every_page_too() -> None:
    events_path = f"/api/runs/{RUN_ID}/events"
    server = Server(
        {
            ("GET", events_path): [
                ok([event(1)], Link=f'<{BASE}{events_path}?limit=1&after=1>; rel="next"'),
                ok([event(2, "run.completed")]),
            ]
        }
    )

    async def read() -> list[RunEvent]:
        async with server.async_twin() as twin:
            return await twin.runs.events(RUN_ID, page_size=1)

    assert [e.event for e in asyncio.run(read())] == ["step.finished", "run.completed"]


# -- compile and preview ---------------------------------------------------------------------------------
def test_compile_posts_the_names_and_literals_and_reads_the_version() -> None:
    server = Server({("POST", f"/api/runs/{RUN_ID}/compile"): [ok(VERSION, 201)]})

    version = server.twin().skills.compile(
        RUN_ID, slug="pay-invoice", params={"invoice": "INV-1041"}, idempotency_key="k1"
    )

    (request,) = server.requests
    assert body(request) == {"slug": "pay-invoice", "params": {"invoice": "INV-1041"}}  # no name: not sent
    assert request.headers["Idempotency-Key"] == "k1"
    assert isinstance(version, SkillVersion)
    assert (version.id, version.slug, version.version, version.source_run) == (
        SKILL_ID,
        "pay-invoice",
        2,
        RUN_ID,
    )
    assert version.version_id == VERSION["version_id"]
    assert [(p.name, p.type, p.example) for p in version.params] == [
        ("invoice", "string", "INV-1041"),
        ("speed", "enum", "express"),
    ]
    assert version.params[1].options == ["standard", "express"] and version.params[0].options is None
    assert version.steps == STEPS and version.changed_steps == [2]
    assert version.raw["a_field_from_a_newer_server"] == {"x": 1}


def test_compile_of_a_run_that_is_not_completed_is_a_conflict() -> None:
    answer = ok({"error": "not_completed", "detail": "the run is running", "status": "running"}, 409)
    server = Server({("POST", f"/api/runs/{RUN_ID}/compile"): [answer]})

    with pytest.raises(Conflict) as conflict:
        server.twin().skills.compile(RUN_ID)

    assert conflict.value.code == "not_completed"
    assert conflict.value.run_status == "running"
    assert body(server.requests[0]) == {}


def test_compile_with_a_literal_the_run_never_used_lists_the_problem() -> None:
    problem = {"field": "params.invoice", "message": "the run never used 'INV-9'"}
    answer = ok({"error": "literal_not_used", "detail": "1 problem", "problems": [problem]}, 400)
    server = Server({("POST", f"/api/runs/{RUN_ID}/compile"): [answer]})

    with pytest.raises(InvalidRequest) as invalid:
        server.twin().skills.compile(RUN_ID, params={"invoice": "INV-9"})

    assert invalid.value.code == "literal_not_used"
    assert invalid.value.problems == [problem]


def test_preview_sends_the_params_as_json_and_reads_the_suggestions() -> None:
    preview = {
        **{k: v for k, v in VERSION.items() if k not in {"id", "version_id", "source_run", "created_at"}},
        "suggested": [
            {"name": "email", "literal": "ann@example.com", "reason": "an email address", "steps": [3]}
        ],
        "left_out": [4, 5],
    }
    server = Server({("GET", f"/api/runs/{RUN_ID}/compile"): [ok(preview), ok(preview)]})
    twin = server.twin()

    got = twin.skills.preview(RUN_ID, params={"invoice": "INV-1041"})
    twin.skills.preview(RUN_ID)

    assert json.loads(query(server.requests[0])["params"][0]) == {"invoice": "INV-1041"}
    assert query(server.requests[1]) == {}  # no params: none sent
    assert (got.slug, got.version, got.left_out) == ("pay-invoice", 2, [4, 5])
    (suggestion,) = got.suggested
    assert (suggestion.name, suggestion.literal, suggestion.steps) == ("email", "ann@example.com", [3])
    assert [p.name for p in got.params] == ["invoice", "speed"]


# -- skills ----------------------------------------------------------------------------------------------
def test_list_get_versions_and_archive_call_their_paths() -> None:
    archived = {**SKILL, "slug": "old", "archived": True, "archived_at": "2026-11-25T00:00:00Z"}
    server = Server(
        {
            ("GET", "/api/skills"): [ok([SKILL]), ok([SKILL, archived])],
            ("GET", "/api/skills/pay-invoice"): [ok(SKILL)],
            ("GET", "/api/skills/pay-invoice/versions"): [ok([VERSION, {**VERSION, "version": 1}])],
            ("GET", "/api/skills/pay-invoice/versions/1"): [ok({**VERSION, "version": 1})],
            ("DELETE", "/api/skills/pay-invoice"): [httpx.Response(204)],
        }
    )
    twin = server.twin()

    (listed,) = twin.skills.list()
    both = twin.skills.list(archived=True)
    skill = twin.skills.get("pay-invoice")
    versions = twin.skills.versions("pay-invoice")
    first = twin.skills.version("pay-invoice", 1)
    twin.skills.archive("pay-invoice")

    assert [r.url.query.decode() for r in server.requests[:2]] == ["", "archived=1"]
    assert isinstance(skill, Skill) and skill == listed
    assert (skill.id, skill.version, skill.goal, skill.archived) == (SKILL_ID, 2, "Pay the invoice", False)
    assert skill.steps == STEPS and [p.name for p in skill.params] == ["invoice", "speed"]
    assert skill.stats is not None
    assert (skill.stats.runs, skill.stats.success_rate, skill.stats.median_duration_s) == (4, 0.75, 12.5)
    assert [(s.slug, s.archived, s.archived_at) for s in both][1] == ("old", True, "2026-11-25T00:00:00Z")
    assert [v.version for v in versions] == [2, 1] and first.version == 1
    archive = server.requests[-1]
    assert (archive.method, archive.url.path) == ("DELETE", "/api/skills/pay-invoice")


def test_a_slug_is_one_path_segment_and_an_unknown_skill_is_not_found() -> None:
    server = Server({})

    with pytest.raises(NotFound):
        server.twin().skills.get("../runs?x=1")

    assert server.requests[0].url.raw_path == b"/api/skills/..%2Fruns%3Fx%3D1"


def test_a_skill_without_stats_from_an_older_server_reads_as_none() -> None:
    skill = Skill.from_api({"id": SKILL_ID, "slug": "s", "name": "S", "version": 1})
    assert skill.stats is None and skill.params == [] and skill.archived is False


# -- running a skill ---------------------------------------------------------------------------------------
def test_run_posts_skill_params_and_version_and_waits_like_agents_run() -> None:
    running = a_run("running", planner="skill", skill={"slug": "pay-invoice", "version": 1})
    done = a_run("completed", planner="skill", skill={"slug": "pay-invoice", "version": 1}, cost=COST)
    server = Server({("POST", "/api/runs"): [ok(running, 201)], ("GET", f"/api/runs/{RUN_ID}"): [ok(done)]})

    run = server.twin().skills.run("pay-invoice", {"invoice": "INV-1041"}, version=1, timeout=90)

    post, poll = server.requests
    assert body(post) == {"skill": "pay-invoice", "params": {"invoice": "INV-1041"}, "version": 1}
    assert query(post) == {"wait": ["60"]} and "Idempotency-Key" in post.headers
    assert 29 < float(query(poll)["wait"][0]) <= 30  # what is left of the timeout
    assert run.status == "completed" and run.planner == "skill"
    assert run.skill is not None and (run.skill.slug, run.skill.version) == ("pay-invoice", 1)
    assert run.cost == RunCost(
        wall_s=14.2,
        browser_s=9.8,
        steps=2,
        pauses=0,
        human_wait_s=0.0,
        model_calls=0,
        tokens_in=0,
        tokens_out=0,
        amount=0.0049,
        currency="EUR",
    )


def test_run_without_waiting_returns_the_queued_run_at_once() -> None:
    server = Server({("POST", "/api/runs"): [ok(a_run("queued"), 201)]})

    run = server.twin().skills.run("pay-invoice", wait=False)

    (post,) = server.requests
    assert run.status == "queued"
    assert query(post) == {} and body(post) == {"skill": "pay-invoice", "params": {}}


def test_the_old_run_signature_still_works_and_bad_params_list_every_problem() -> None:
    problems = [
        {"field": "params.invoice", "message": "missing"},
        {"field": "params.colour", "message": "unknown parameter"},
    ]
    server = Server(
        {
            ("POST", "/api/runs"): [
                ok(a_run("completed"), 201),
                ok({"error": "invalid_params", "detail": "2 problems", "problems": problems}, 400),
            ]
        }
    )
    twin = server.twin()

    run = twin.skills.run(skill="pay-invoice", params={"invoice": "1"}, timeout=5, idempotency_key="k")
    with pytest.raises(InvalidRequest) as invalid:
        twin.skills.run("pay-invoice", {"colour": "red"})

    assert run.status == "completed" and server.requests[0].headers["Idempotency-Key"] == "k"
    assert query(server.requests[0]) == {"wait": ["5"]}
    assert invalid.value.code == "invalid_params" and invalid.value.problems == problems


def test_a_run_from_an_older_server_has_no_cost_planner_or_skill() -> None:
    server = Server({("GET", f"/api/runs/{RUN_ID}"): [ok(a_run()), ok(a_run(cost={"wall_s": 1.5}))]})
    twin = server.twin()

    old = twin.runs.get(RUN_ID)
    partial = twin.runs.get(RUN_ID)

    assert (old.cost, old.planner, old.skill) == (None, None, None)
    assert partial.cost is not None and partial.cost.wall_s == 1.5 and partial.cost.amount is None


def test_the_async_skills_calls_send_the_same_requests() -> None:
    server = Server(
        {
            ("POST", f"/api/runs/{RUN_ID}/compile"): [ok(VERSION, 201)],
            ("GET", "/api/skills"): [ok([SKILL])],
            ("GET", f"/api/skills/{SKILL_ID}"): [ok(SKILL)],
            ("GET", "/api/skills/pay-invoice/versions"): [ok([VERSION])],
            ("GET", "/api/skills/pay-invoice/versions/2"): [ok(VERSION)],
            ("GET", f"/api/runs/{RUN_ID}/compile"): [ok({**VERSION, "suggested": [], "left_out": []})],
            ("DELETE", "/api/skills/pay-invoice"): [httpx.Response(204)],
            ("POST", "/api/runs"): [ok(a_run("awaiting_approval", planner="skill"), 201)],
        }
    )

    async def calls() -> list[Any]:
        async with server.async_twin() as twin:
            skills = twin.skills
            answers = [
                await skills.compile(RUN_ID, name="Pay invoice"),
                await skills.list(),
                await skills.get(SKILL_ID),
                await skills.versions("pay-invoice"),
                await skills.version("pay-invoice", 2),
                await skills.preview(RUN_ID, params={"invoice": "INV-1041"}),
                await skills.run("pay-invoice", {"invoice": "INV-1041"}),
            ]
            await skills.archive("pay-invoice")
            return answers

    version, listed, skill, versions, one, preview, run = asyncio.run(calls())

    assert body(server.requests[0]) == {"name": "Pay invoice"}
    assert version.slug == "pay-invoice" and listed == [skill] and versions == [one]
    assert preview.version == 2
    assert run.status == "awaiting_approval" and run.planner == "skill"  # settled: no second call
    assert [(r.method, r.url.path) for r in server.requests][-2:] == [
        ("POST", "/api/runs"),
        ("DELETE", "/api/skills/pay-invoice"),
    ]
    assert len(server.requests) == 8


# -- live ---------------------------------------------------------------------------------------------------
def test_runs_events_reads_a_real_runs_trail(alice: Person, carol: Person, site: Any, worker: Any) -> None:
    twin = Twin(alice.base_url, alice.token)
    run = twin.agents.run(goal="Pay the invoice", steps=pay(site), record_video=False)
    assert run.status == "awaiting_approval"
    twin.runs.approve(run.id, note="ok")
    assert twin.runs.wait(run.id, timeout=30).status == "completed"

    events = twin.runs.events(run.id, page_size=4)  # several pages

    names = [e.event for e in events]
    assert names[0] == "run.queued" and names[-1] == "run.completed"
    assert [e.id for e in events] == sorted({e.id for e in events})  # oldest first, each once
    (decided,) = [e for e in events if e.event == "approval.decided"]
    assert (decided.actor, decided.step, decided.data["note"]) == ("alice", 2, "ok")
    assert "ip" not in decided.data and "user_agent" not in decided.data
    assert events[0].at and events[0].actor == "alice"
    with pytest.raises(NotFound):
        Twin(carol.base_url, carol.token).runs.events(run.id)
