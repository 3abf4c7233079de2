"""GET /api/runs/{id}/events: the run's trail, oldest first, paginated, as webhooks carry it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from rest_framework.test import APIClient

from runs.events import record_event
from runs.models import Run, RunEvent, RunStatus
from runs.services import run_create
from runs.states import run_transition
from tests.conftest import Persona, start_run, wait_run

pytestmark = pytest.mark.usefixtures("private_urls")

STEPS = [{"action": "goto", "url": "http://127.0.0.1:9/pay"}, {"action": "click", "selector": "#pay"}]
EVENT_FIELDS = {"id", "event", "step", "actor", "at", "data"}
LINK_TAIL = '>; rel="next"'


def new_run(persona: Persona) -> Run:
    return run_create(tenant=persona.tenant, created_by=persona.user, goal="g", url="", steps=STEPS)


def add_events(run: Run, count: int) -> None:
    for i in range(count):
        record_event(run, "step.note", step_index=i % 2 + 1, data={"n": i})


def follow_pages(persona: Persona, url: str) -> list[list[dict[str, Any]]]:
    pages = []
    while url:
        response = persona.get(url)
        assert response.status_code == 200, response.content
        pages.append(response.json())
        link = response.get("Link", "")
        assert not link or link.endswith(LINK_TAIL)
        url = link[1 : -len(LINK_TAIL)] if link else ""
        assert len(pages) < 50
    return pages


def test_a_runs_events_come_oldest_first_with_who_and_when(alice):
    run = new_run(alice)
    assert run_transition(run, to=RunStatus.RUNNING, expect=[RunStatus.QUEUED])
    record_event(run, "takeover.started", step_index=2, actor=alice.user)
    assert run_transition(run, to=RunStatus.CANCELLED, expect=[RunStatus.RUNNING], actor=alice.user)

    response = alice.get(f"/api/runs/{run.pk}/events")

    assert response.status_code == 200, response.content
    assert response["X-Twin-Status"] == "cancelled"
    assert "Link" not in response
    events = response.json()
    assert [e["event"] for e in events] == [
        "run.queued",
        "run.running",
        "takeover.started",
        "run.cancelled",
        "steps.skipped",
    ]
    assert all(set(e) == EVENT_FIELDS for e in events)
    assert [e["actor"] for e in events] == ["alice", None, "alice", "alice", None]
    assert events[2]["step"] == 2
    assert events[1]["data"] == {"from": "queued", "to": "running"}
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 5
    times = [datetime.fromisoformat(e["at"].replace("Z", "+00:00")) for e in events]
    assert times == sorted(times)


def test_pages_follow_the_link_header_with_no_gap_and_no_repeat(alice):
    run = new_run(alice)
    add_events(run, 22)  # 23 with run.queued
    expected = list(RunEvent.objects.filter(run=run).order_by("pk").values_list("pk", flat=True))

    pages = follow_pages(alice, f"/api/runs/{run.pk}/events?limit=5")

    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [e["id"] for page in pages for e in page] == expected
    assert [e["data"].get("n") for page in pages for e in page] == [None, *range(22)]


def test_a_page_holds_100_events_unless_asked_and_never_more_than_500(alice):
    run = new_run(alice)
    add_events(run, 120)

    default = alice.get(f"/api/runs/{run.pk}/events")
    most = alice.get(f"/api/runs/{run.pk}/events?limit=5000")

    assert len(default.json()) == 100 and "after=" in default["Link"]
    assert len(most.json()) == 121 and "Link" not in most


def test_events_written_between_two_pages_are_on_the_next_one(alice):
    run = new_run(alice)
    add_events(run, 3)
    first = alice.get(f"/api/runs/{run.pk}/events?limit=2")
    record_event(run, "run.later")

    rest = follow_pages(alice, first["Link"][1 : -len(LINK_TAIL)])

    assert [e["event"] for page in rest for e in page] == ["step.note", "step.note", "run.later"]


def test_keys_kept_for_the_audit_trail_only_never_appear(alice):
    run = new_run(alice)
    record_event(
        run,
        "approval.decided",
        step_index=2,
        actor=alice.user,
        data={"decision": "approved", "ip": "203.0.113.9", "user_agent": "curl/8", "seen": {"x": 1}},
    )

    response = alice.get(f"/api/runs/{run.pk}/events")

    decided = response.json()[-1]
    assert decided["data"] == {"decision": "approved"}
    assert b"203.0.113.9" not in response.content and b"curl/8" not in response.content
    # ... while the trail itself keeps them.
    assert RunEvent.objects.get(pk=decided["id"]).data["ip"] == "203.0.113.9"


def test_a_viewer_may_read_the_events(alice, bob):
    run = new_run(alice)

    response = bob.get(f"/api/runs/{run.pk}/events")

    assert response.status_code == 200
    assert [e["event"] for e in response.json()] == ["run.queued"]


def test_another_tenants_run_is_a_404_and_no_token_is_a_401(alice, carol):
    run = new_run(alice)

    other = carol.get(f"/api/runs/{run.pk}/events")
    anonymous = APIClient().get(f"/api/runs/{run.pk}/events")

    assert other.status_code == 404 and other.json()["error"] == "not_found"
    assert b"run.queued" not in other.content
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"


@pytest.mark.parametrize(("query", "code"), [("limit=abc", "invalid_limit"), ("after=x1", "invalid_cursor")])
def test_a_bad_page_parameter_is_a_json_400(alice, query, code):
    run = new_run(alice)

    response = alice.get(f"/api/runs/{run.pk}/events?{query}")

    assert response.status_code == 400
    assert response.json()["error"] == code


def pay_program(site):
    return [
        {"action": "goto", "url": site.url("/pay")},
        {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay $42?"}},
        {"action": "assert_text", "text": "Payment complete"},
    ]


def test_a_real_run_lists_its_trail_from_queued_to_completed(alice, site, worker):
    run = start_run(alice, pay_program(site), record_video=False)  # no video.ready after the end
    assert run["status"] == "awaiting_approval"
    assert alice.post(f"/api/runs/{run['id']}/approve", {"note": "ok"}).status_code == 202
    assert wait_run(alice, run["id"])["status"] == "completed"
    expected = list(RunEvent.objects.filter(run_id=run["id"]).order_by("pk").values_list("pk", "type"))

    pages = follow_pages(alice, f"/api/runs/{run['id']}/events?limit=3")

    events = [e for page in pages for e in page]
    assert [(e["id"], e["event"]) for e in events] == expected
    names = [e["event"] for e in events]
    assert names[0] == "run.queued" and names[-1] == "run.completed"
    paused = names.index("run.awaiting_approval")
    assert paused < names.index("approval.decided") and paused < names.index("run.resumed")
    (decided,) = [e for e in events if e["event"] == "approval.decided"]
    assert decided["actor"] == "alice" and decided["step"] == 2
    assert decided["data"]["decision"] == "approved" and decided["data"]["note"] == "ok"
    assert not {"ip", "user_agent", "seen"} & set(decided["data"])
    assert {e["step"] for e in events if e["event"] == "step.finished"} == {1, 2, 3}
