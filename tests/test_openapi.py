"""The OpenAPI schema is complete, served with its docs page (no CDN), and the API keeps to it:
schemathesis generates requests from the schema; no answer is a 5xx, every answer matches it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from django.urls import get_resolver
from hypothesis import HealthCheck, settings
from schemathesis import checks

from runs import api as runs_api
from tests.test_state_machine import paused_run

pytestmark = pytest.mark.usefixtures("private_urls")


def api_routes() -> set[str]:
    """Every /api/ URL the project routes, in the schema's {param} form."""
    routes = set()
    for pattern in get_resolver().url_patterns:
        route = str(pattern.pattern)
        if route.startswith("api/") and route not in {"api/schema", "api/docs"}:
            for converter in ("uuid:", "str:", "int:"):
                route = route.replace(f"<{converter}", "{")
            routes.add("/" + route.replace(">", "}"))
    return routes


def test_the_schema_documents_every_api_route_with_bearer_auth_and_error_shapes(alice):
    schema = alice.get("/api/schema?format=json").json()

    documented = {path.replace("{pk}", "{id}") for path in schema["paths"]}
    assert {route.replace("{pk}", "{id}") for route in api_routes()} <= documented
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            answers = operation["responses"]
            assert "401" in answers or path == "/api/schema", (method, path)
            errors = [a for code, a in answers.items() if code.startswith("4") and "content" in a]
            assert all("Error" in str(a["content"]["application/json"]["schema"]) for a in errors), (
                method,
                path,
            )
    approve = schema["paths"]["/api/runs/{id}/approve"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in approve["parameters"])


def test_the_docs_page_serves_swagger_ui_from_this_site(alice):
    page = Client().get("/api/docs")

    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower() and "unpkg" not in html and "jsdelivr" not in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")  # in the wheel


@pytest.fixture
def api_calls(db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real_wait = runs_api.wait_until_settled

    async def short_wait(run_id: Any, timeout: float) -> Any:  # no worker here: don't sit out ?wait=60
        return await real_wait(run_id, min(timeout, 0.05))

    monkeypatch.setattr(runs_api, "wait_until_settled", short_wait)
    # As Django's test client does: requests must not close the test's database connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


# No 5xx, and every answer as documented (its status, content type, headers and body). Not
# "schema-valid data is accepted": a URL can be a valid string and still point at a private address.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]

# Loaded when the module is collected (Django is set up by then; the schema needs no database).
schema = schemathesis.openapi.from_wsgi("/api/schema?format=json", get_wsgi_application())


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_the_api_keeps_to_its_schema(case: Any, alice: Any, api_calls: None) -> None:
    paused_run(alice.tenant, alice.user)  # something to list, approve, reject and cancel
    case.call_and_validate(headers={"Authorization": f"Bearer {alice.token}"}, checks=CHECKS)
