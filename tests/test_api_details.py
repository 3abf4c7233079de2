"""Small promises of the API surface: body shapes, headers, auth before validation."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from approvals.models import ApprovalStatus
from tenants.schema import TOKEN_HELP
from tests.test_state_machine import paused_run

pytestmark = pytest.mark.usefixtures("private_urls")  # shop.example does not resolve here


@pytest.mark.parametrize("body", [[{"input": "x"}], "approve", 1])
def test_an_approve_whose_body_is_not_an_object_is_refused_and_the_run_stays_paused(alice, body):
    run, approval = paused_run(alice.tenant, alice.user)

    response = alice.client.post(f"/api/runs/{run.pk}/approve", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    approval.refresh_from_db()
    run.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert run.status == "awaiting_approval"


def test_a_409_says_the_runs_status_in_the_header_too(alice):
    run, _ = paused_run(alice.tenant, alice.user)
    assert alice.post(f"/api/runs/{run.pk}/reject").status_code == 200

    response = alice.post(f"/api/runs/{run.pk}/approve")

    assert response.status_code == 409
    assert response["X-Twin-Status"] == "rejected"
    assert response.json()["status"] == "rejected"


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_bad_wait_from_an_unauthenticated_caller_is_a_401_not_a_400(db, method):
    anonymous = APIClient()
    if method == "post":
        response = anonymous.post("/api/runs?wait=abc", {}, format="json")
    else:
        response = anonymous.get("/api/runs/00000000-0000-0000-0000-000000000000?wait=abc")

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_field_errors_come_as_a_list_of_problems_like_program_errors(alice):
    response = alice.post("/api/runs", {"goal": "no steps"})

    assert response.status_code == 400
    problems = response.json()["problems"]
    assert isinstance(problems, list)
    assert {"step": None, "field": "steps", "message": problems[0]["message"]} in problems


def test_the_schema_declares_bearer_token_authentication(alice):
    schema = alice.get("/api/schema", HTTP_ACCEPT="application/json")

    assert schema.status_code == 200
    body = schema.json() if schema["Content-Type"].startswith("application/json") else None
    if body is None:
        import yaml

        body = yaml.safe_load(schema.content)
    assert body["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": TOKEN_HELP,
    }
