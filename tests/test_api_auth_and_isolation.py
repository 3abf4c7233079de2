"""Who may see what: bearer tokens, tenant isolation, and the shape of what the API answers."""

from __future__ import annotations

from datetime import datetime
from io import StringIO

import pytest
import yaml
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from rest_framework.test import APIClient

from approvals.models import ApprovalStatus
from runs.models import Run, RunStatus
from runs.services import run_create
from runs.states import run_transition
from tenants.models import ApiToken, Role, Tenant
from tests.conftest import Persona
from tests.test_state_machine import paused_run

pytestmark = pytest.mark.usefixtures("private_urls")


STEPS = [{"action": "goto", "url": "http://127.0.0.1:9/pay"}, {"action": "click", "selector": "#pay"}]

RUN_FIELDS = {
    "id",
    "status",
    "goal",
    "url",
    "current_step",
    "resumed_from",
    "steps",
    "pending_step",
    "outputs",
    "error",
    "video_url",
    "created_at",
    "updated_at",
}
STEP_FIELDS = {"index", "action", "status", "started_at", "finished_at"}
PENDING_FIELDS = {
    "index",
    "action",
    "trigger",
    "kind",
    "prompt",
    "options",
    "page_url",
    "screenshot_url",
    "expires_at",
}


def new_run(persona: Persona, status: str = RunStatus.QUEUED, goal: str = "g") -> Run:
    run = run_create(tenant=persona.tenant, created_by=persona.user, goal=goal, url="", steps=STEPS)
    if status != RunStatus.QUEUED:
        if status != RunStatus.CANCELLED:
            assert run_transition(run, to=RunStatus.RUNNING, expect=[RunStatus.QUEUED])
        if status != RunStatus.RUNNING:
            assert run_transition(run, to=status, expect=[run.status])
    return run


def anonymous(**credentials: str) -> APIClient:
    client = APIClient()
    if credentials:
        client.credentials(**credentials)
    return client


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- authentication ---------------------------------------------------------------------------------
ENDPOINTS = [
    ("get", "/api/runs"),
    ("post", "/api/runs"),
    ("get", "/api/runs/{run}"),
    ("get", "/api/runs/{run}?wait=1"),
    ("post", "/api/runs/{run}/approve"),
    ("post", "/api/runs/{run}/reject"),
    ("post", "/api/runs/{run}/cancel"),
    ("get", "/api/approvals"),
    ("get", "/api/secrets"),
    ("post", "/api/secrets"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize(
    "header", [None, "Bearer twin_not-a-real-token", "Bearer", "Bearer a b", "Token abc"]
)
def test_a_missing_or_unknown_token_is_a_401_with_a_json_error(alice, method, path, header):
    run, _ = paused_run(alice.tenant, alice.user)
    client = anonymous(HTTP_AUTHORIZATION=header) if header else anonymous()

    response = getattr(client, method)(path.format(run=run.pk), {"goal": "g", "steps": STEPS}, format="json")

    assert response.status_code == 401, response.content
    assert response.json()["error"] == "unauthorized"
    assert response.json()["detail"]
    assert "Bearer" in response["WWW-Authenticate"]
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL
    assert Run.objects.count() == 1


def test_a_revoked_token_is_a_401(alice):
    from django.utils import timezone

    ApiToken.objects.filter(user=alice.user).update(revoked_at=timezone.now())

    response = alice.get("/api/runs")

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_a_token_of_an_inactive_user_is_a_401(alice):
    alice.user.is_active = False
    alice.user.save()

    assert alice.get("/api/runs").status_code == 401


def test_a_token_is_bound_to_its_tenant(alice, carol):
    from tenants.models import Membership

    # carol also belongs to acme, but her token was issued for globex: it shows globex only.
    Membership.objects.create(tenant=alice.tenant, user=carol.user, role=Role.APPROVER)
    run = new_run(alice)

    assert carol.get(f"/api/runs/{run.pk}").status_code == 404
    assert carol.get("/api/runs").json() == []


# -- tenant isolation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "verb"),
    [("get", ""), ("get", "?wait=1"), ("post", "/approve"), ("post", "/reject"), ("post", "/cancel")],
)
def test_another_tenants_run_is_a_404_and_stays_untouched(alice, carol, method, verb):
    run, approval = paused_run(alice.tenant, alice.user)

    response = getattr(carol, method)(f"/api/runs/{run.pk}{verb}")

    assert response.status_code == 404, response.content
    assert response.json()["error"] == "not_found"
    assert "X-Twin-Status" not in response
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def test_another_tenants_runs_and_approvals_are_not_listed(alice, carol):
    run, approval = paused_run(alice.tenant, alice.user)
    own_run, own_approval = paused_run(carol.tenant, carol.user)

    assert [r["id"] for r in carol.get("/api/runs").json()] == [str(own_run.pk)]
    assert [a["id"] for a in carol.get("/api/approvals?status=pending").json()] == [str(own_approval.pk)]
    assert [a["id"] for a in carol.get("/api/approvals").json()] == [str(own_approval.pk)]
    assert [r["id"] for r in alice.get("/api/runs").json()] == [str(run.pk)]
    assert [a["id"] for a in alice.get("/api/approvals").json()] == [str(approval.pk)]


def test_another_tenants_screenshot_is_a_404(alice, carol):
    path = default_storage.save("screenshots/test/pause.jpg", ContentFile(b"\xff\xd8\xff\xe0fake-jpeg"))
    try:
        run, _ = paused_run(alice.tenant, alice.user, screenshot=path)
        url = alice.get(f"/api/runs/{run.pk}").json()["pending_step"]["screenshot_url"]

        mine = alice.get(url)
        theirs = carol.get(url)

        assert mine.status_code == 200
        assert b"".join(mine.streaming_content).startswith(b"\xff\xd8")
        assert theirs.status_code == 404
    finally:
        default_storage.delete(path)


def test_a_run_id_that_is_not_a_uuid_is_a_json_404(alice):
    response = alice.get("/api/runs/not-a-run")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# -- what a run looks like --------------------------------------------------------------------------
def test_every_response_carrying_a_run_has_x_twin_status_matching_the_body(alice):
    created = alice.post("/api/runs", {"goal": "g", "steps": STEPS})
    first, _ = paused_run(alice.tenant, alice.user)
    second, _ = paused_run(alice.tenant, alice.user)
    third, _ = paused_run(alice.tenant, alice.user)

    responses = [
        created,
        alice.get(f"/api/runs/{first.pk}"),
        alice.get(f"/api/runs/{first.pk}?wait=0"),
        alice.post(f"/api/runs/{first.pk}/approve"),
        alice.post(f"/api/runs/{second.pk}/reject", {"reason": "no"}),
        alice.post(f"/api/runs/{third.pk}/cancel"),
    ]

    assert [r.status_code for r in responses] == [201, 200, 200, 202, 200, 200]
    assert [r["X-Twin-Status"] for r in responses] == [r.json()["status"] for r in responses]
    assert [r["X-Twin-Status"] for r in responses] == [
        "queued",
        "awaiting_approval",
        "awaiting_approval",
        "running",
        "rejected",
        "cancelled",
    ]


def test_a_run_answered_after_waiting_has_x_twin_status_matching_the_body(alice):
    created = alice.post("/api/runs?wait=0.2", {"goal": "g", "steps": STEPS})
    fetched = alice.get(f"/api/runs/{created.json()['id']}?wait=0.2")

    # No worker runs in these tests: the run is still queued when the wait runs out.
    assert (created.status_code, fetched.status_code) == (201, 200)
    assert created["X-Twin-Status"] == created.json()["status"] == "queued"
    assert fetched["X-Twin-Status"] == fetched.json()["status"] == "queued"


def test_a_run_has_every_field_of_the_contract(alice):
    response = alice.post(
        "/api/runs", {"goal": "pay the invoice", "url": "http://127.0.0.1:9/", "steps": STEPS}
    )

    run = response.json()
    assert set(run) >= RUN_FIELDS
    assert run["status"] == "queued"
    assert run["goal"] == "pay the invoice"
    assert run["url"] == "http://127.0.0.1:9/"
    assert run["resumed_from"] is None
    assert run["pending_step"] is None
    assert run["outputs"] == {}
    assert run["error"] is None
    assert run["video_url"] is None
    parse_time(run["created_at"]), parse_time(run["updated_at"])
    assert [s["index"] for s in run["steps"]] == [1, 2]
    assert [s["action"] for s in run["steps"]] == ["goto", "click"]
    assert all(set(s) >= STEP_FIELDS and s["status"] == "queued" for s in run["steps"])


def test_a_paused_run_has_a_pending_step_with_every_field_of_the_contract(alice):
    path = default_storage.save("screenshots/test/pause.jpg", ContentFile(b"\xff\xd8\xff\xe0fake-jpeg"))
    try:
        run, approval = paused_run(alice.tenant, alice.user, kind="input", screenshot=path)

        body = alice.get(f"/api/runs/{run.pk}").json()
    finally:
        default_storage.delete(path)

    assert body["status"] == "awaiting_approval"
    assert body["current_step"] == 2
    assert [s["status"] for s in body["steps"]] == ["done", "awaiting_approval", "queued"]
    assert body["steps"][0]["started_at"] and body["steps"][0]["finished_at"]
    pending = body["pending_step"]
    assert set(pending) >= PENDING_FIELDS
    assert pending["index"] == 2
    assert pending["action"] == "fill"
    assert pending["trigger"] == "mfa"
    assert pending["kind"] == "input"
    assert pending["prompt"] == "One-time code"
    assert pending["options"] is None
    assert pending["page_url"] == "https://shop.example/pay"
    assert pending["screenshot_url"].startswith("http://testserver/api/")
    assert abs((parse_time(pending["expires_at"]) - approval.expires_at).total_seconds()) < 1


def test_a_choice_pause_lists_its_options_and_a_resumed_run_has_no_pending_step(alice):
    run, _ = paused_run(alice.tenant, alice.user, kind="choice")

    paused = alice.get(f"/api/runs/{run.pk}").json()
    resumed = alice.post(f"/api/runs/{run.pk}/approve", {"choice": "Savings"}).json()

    assert paused["pending_step"]["kind"] == "choice"
    assert paused["pending_step"]["trigger"] == "ambiguity"
    assert paused["pending_step"]["options"] == ["Checking", "Savings"]
    assert paused["pending_step"]["screenshot_url"] is None
    assert resumed["pending_step"] is None
    assert resumed["resumed_from"] == 2


# -- listing ----------------------------------------------------------------------------------------
def test_runs_can_be_filtered_by_status(alice):
    queued = new_run(alice)
    running = new_run(alice, RunStatus.RUNNING)
    completed = new_run(alice, RunStatus.COMPLETED)
    cancelled = new_run(alice, RunStatus.CANCELLED)

    def ids(status: str) -> list[str]:
        response = alice.get(f"/api/runs?status={status}")
        assert response.status_code == 200
        return [r["id"] for r in response.json()]

    assert ids("queued") == [str(queued.pk)]
    assert ids("running") == [str(running.pk)]
    assert ids("completed") == [str(completed.pk)]
    assert ids("cancelled") == [str(cancelled.pk)]
    assert ids("awaiting_approval") == []
    assert len(alice.get("/api/runs").json()) == 4


@pytest.mark.parametrize("status", ["done", "QUEUED", "paused"])
def test_an_unknown_status_filter_is_a_400(alice, status):
    response = alice.get(f"/api/runs?status={status}")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_status"
    assert "awaiting_approval" in response.json()["detail"]


def follow_pages(persona: Persona, url: str) -> list[list[str]]:
    pages = []
    while url:
        response = persona.get(url)
        assert response.status_code == 200, response.content
        pages.append([r["id"] for r in response.json()])
        link = response.get("Link", "")
        assert not link or link.endswith('>; rel="next"')
        url = link[1 : -len('>; rel="next"')] if link else ""
        assert len(pages) < 20
    return pages


def test_runs_are_paginated_newest_first_by_limit_and_the_link_header(alice):
    runs = [new_run(alice, goal=f"run {i}") for i in range(5)]
    newest_first = [str(r.pk) for r in reversed(runs)]

    pages = follow_pages(alice, "/api/runs?limit=2")

    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]


def test_pagination_keeps_the_status_filter(alice):
    completed = [new_run(alice, RunStatus.COMPLETED) for _ in range(3)]
    for _ in range(3):
        new_run(alice)

    pages = follow_pages(alice, "/api/runs?status=completed&limit=2")

    assert [run_id for page in pages for run_id in page] == [str(r.pk) for r in reversed(completed)]


def test_pagination_loses_no_run_when_runs_share_a_creation_time(alice):
    runs = [new_run(alice) for _ in range(4)]
    Run.objects.filter(pk__in=[r.pk for r in runs]).update(created_at=runs[0].created_at)

    pages = follow_pages(alice, "/api/runs?limit=1")

    assert sorted(run_id for page in pages for run_id in page) == sorted(str(r.pk) for r in runs)
    assert len(pages) == 4


@pytest.mark.parametrize("query", ["limit=abc", "before=yesterday", "before=2024-13-45T00:00:00"])
def test_a_bad_page_parameter_is_a_json_400(alice, query):
    response = alice.get(f"/api/runs?{query}")

    assert response.status_code == 400, response.content
    assert response.json()["error"].startswith("invalid_")


# -- schema and the tenant command ------------------------------------------------------------------
def test_the_schema_is_an_openapi_3_document_describing_the_runs_api(db):
    response = anonymous().get("/api/schema")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/runs"])
    assert any(p.startswith("/api/runs/{") and p.endswith("/approve") for p in paths)
    assert any(p.startswith("/api/runs/{") and p.count("/") == 3 and "get" in paths[p] for p in paths)


def test_createtenant_prints_a_working_token_as_its_last_line(db):
    out, err = StringIO(), StringIO()

    # A password that passes Django's validators ("pw" is refused since they are on).
    password = "correct horse battery staple"
    call_command("createtenant", "acme", "--owner", "alice", "--password", password, stdout=out, stderr=err)

    token = out.getvalue().rstrip("\n").splitlines()[-1]
    assert token == token.strip() and " " not in token
    response = anonymous(HTTP_AUTHORIZATION=f"Bearer {token}").get("/api/runs")
    assert response.status_code == 200
    assert response.json() == []
    tenant = Tenant.objects.get(slug="acme")
    membership = tenant.memberships.get(user__username="alice")
    assert membership.role == Role.APPROVER
    assert membership.user.check_password(password)


def test_createtenant_reuses_the_tenant_and_every_token_it_printed_works(db):
    tokens = []
    for _ in range(2):
        out = StringIO()
        call_command("createtenant", "acme", "--owner", "alice", stdout=out, stderr=StringIO())
        tokens.append(out.getvalue().splitlines()[-1])

    assert tokens[0] != tokens[1]
    assert Tenant.objects.filter(slug="acme").count() == 1
    for token in tokens:
        assert anonymous(HTTP_AUTHORIZATION=f"Bearer {token}").get("/api/approvals").status_code == 200


def test_createtenant_refuses_a_bad_slug(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("createtenant", "Not A Slug", "--owner", "alice", stdout=StringIO(), stderr=StringIO())
    assert not Tenant.objects.exists()
