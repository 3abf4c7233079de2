"""Security headers and a strict Content Security Policy on every dashboard page; and
``manage.py check --deploy`` clean under the production environment."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from typing import Any

import pytest
from django.test import Client

from approvals.links import link_path
from tenants.models import Role
from tenants.services import tenant_create
from tests.conftest import ROOT
from tests.test_state_machine import paused_run
from webhooks.services import endpoint_create

pytestmark = pytest.mark.usefixtures("private_urls")


def directives(header: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


def assert_protected(response: Any, path: str) -> None:
    assert "Content-Security-Policy" in response, f"{path} has no Content-Security-Policy"
    csp = directives(response["Content-Security-Policy"])
    assert csp["default-src"] == ["'self'"], path
    assert "'unsafe-inline'" not in csp.get("script-src", csp["default-src"]), path
    assert "'unsafe-eval'" not in csp.get("script-src", csp["default-src"]), path
    assert csp["frame-ancestors"] == ["'none'"], path
    assert csp["object-src"] == ["'none'"], path
    assert csp["base-uri"] == ["'self'"], path
    assert csp["form-action"] == ["'self'"], path
    assert csp["connect-src"] == ["'self'"], path  # 'self' covers ws:// and wss:// to this host
    assert response["X-Content-Type-Options"] == "nosniff", path
    assert response["Referrer-Policy"] == "same-origin", path
    assert response["Cross-Origin-Opener-Policy"] == "same-origin", path
    assert response["X-Frame-Options"] == "DENY", path


def test_every_dashboard_page_carries_the_security_headers(db: Any) -> None:
    tenant, alice, _ = tenant_create(
        slug="acme", owner_username="alice", password="correct horse battery staple", role=Role.APPROVER
    )
    alice.is_staff = alice.is_superuser = True
    alice.save()
    run, approval = paused_run(tenant, alice)
    endpoint, _ = endpoint_create(tenant=tenant, url="https://hooks.example/twin", actor=alice)

    anonymous = Client()
    for path in ["/login/", "/runs/", "/no-such-page/"]:
        assert_protected(anonymous.get(path), path)

    me = Client()
    me.force_login(alice)
    pages = [
        "/",
        "/inbox/",
        "/runs/",
        "/runs/new",
        f"/runs/{run.pk}/",
        f"/runs/{run.pk}/live",
        "/webhooks/",
        f"/webhooks/{endpoint.pk}/",
        link_path(approval),
        "/account/two-factor/",
        "/admin/",
        "/admin/runs/run/",
        "/api/docs",
        "/no-such-page/",
    ]
    for path in pages:
        response = me.get(path)
        assert response.status_code in (200, 302, 404), (path, response.status_code)
        assert_protected(response, path)


def test_only_the_api_docs_allow_inline_styles_and_no_page_allows_inline_scripts(db: Any) -> None:
    docs = Client().get("/api/docs")
    login = Client().get("/login/")

    assert "'unsafe-inline'" in directives(docs["Content-Security-Policy"])["style-src"]
    assert "'unsafe-inline'" not in directives(login["Content-Security-Policy"])["style-src"]
    # Swagger UI's start-up script is a file of its own, not inline.
    assert b"<script>" not in docs.content
    script = Client().get("/api/docs?script")
    assert script.status_code == 200
    assert b"SwaggerUIBundle" in script.content


def production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWIN_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="twin_site.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        TWIN_DEBUG="0",
        TWIN_HTTPS="1",
        TWIN_ALLOWED_HOSTS="twin.example.com",
        TWIN_VAR_DIR=str(ROOT / "var"),
    )
    env.update(extra)
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_under_the_production_environment() -> None:
    result = check_deploy(production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout + result.stderr


def test_check_deploy_reports_a_production_setup_without_https_or_a_real_secret_key() -> None:
    env = production_env()
    del env["DJANGO_SECRET_KEY"], env["TWIN_HTTPS"]

    result = check_deploy(env)

    output = result.stdout + result.stderr
    assert result.returncode != 0
    for warning in ["security.W004", "security.W008", "security.W009", "security.W012", "security.W016"]:
        assert warning in output, output


def test_behind_a_tls_proxy_the_forwarded_scheme_is_trusted_only_when_told(settings: Any) -> None:
    env = production_env(TWIN_TRUST_X_FORWARDED_PROTO="1")
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_PROXY_SSL_HEADER, s.SECURE_SSL_REDIRECT, "
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    ).stdout
    assert out.strip() == "('HTTP_X_FORWARDED_PROTO', 'https') True True True"
    assert getattr(settings, "SECURE_PROXY_SSL_HEADER", None) is None  # not without the switch
