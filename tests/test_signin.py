"""Dashboard sign-in like a bank's back office: lockout after wrong passwords, password rules,
sessions that end, throttled one-time codes."""

from __future__ import annotations

import stat
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django_otp.oath import TOTP

from tenants.models import Role
from tenants.services import demo_password_get, tenant_create, totp_device_begin, totp_device_confirm

PASSWORD = "correct horse battery staple"
pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(db: Any) -> Any:
    _, user, _ = tenant_create(slug="acme", owner_username="alice", password=PASSWORD, role=Role.APPROVER)
    return user


def browser(address: str = "203.0.113.7") -> Client:
    """A person's browser: CSRF enforced, as the real form is."""
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=address)
    client.get("/login/")
    return client


def sign_in(client: Client, username: str, password: str, path: str = "/login/", **extra: Any) -> Any:
    token = client.cookies["csrftoken"].value
    return client.post(
        path, {"username": username, "password": password, "csrfmiddlewaretoken": token}, **extra
    )


def signed_in(client: Client) -> bool:
    return client.get("/runs/").status_code == 200


def code_now(device: Any, *, ahead: int = 0) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + ahead * device.step
    return f"{totp.token():0{device.digits}d}"


# -- lockout ---------------------------------------------------------------------------------------
def test_thirty_wrong_passwords_then_the_right_one_is_refused_with_a_message(alice: Any) -> None:
    me = browser()
    for _ in range(30):
        sign_in(me, "alice", "not the password")

    answer = sign_in(me, "alice", PASSWORD)

    assert answer.status_code == 429
    page = answer.content.decode()
    assert "Too many failed sign-ins" in page
    assert "Sign in to Twin" in page  # the login page with a message, not a bare 403
    assert not signed_in(me)


def test_the_lockout_starts_at_the_limit_and_keeps_out_the_admin_login_too(alice: Any) -> None:
    alice.is_staff = True
    alice.save()
    me = browser()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(me, "alice", "wrong").status_code == 200
    assert sign_in(me, "alice", "wrong").status_code == 429

    me.get("/admin/login/")
    answer = sign_in(me, "alice", PASSWORD, path="/admin/login/?next=/admin/")

    assert answer.status_code == 429
    assert not signed_in(me)


def test_the_lockout_is_per_username_and_address_so_the_real_alice_elsewhere_still_signs_in(
    alice: Any,
) -> None:
    attacker = browser("198.51.100.9")
    for _ in range(10):
        sign_in(attacker, "alice", "guess")

    me = browser("203.0.113.7")
    answer = sign_in(me, "alice", PASSWORD)

    assert answer.status_code == 302
    assert signed_in(me)


def test_the_lockout_counts_the_forwarded_address_only_behind_a_trusted_proxy(
    alice: Any, settings: Any
) -> None:
    # Untrusted: a made-up X-Forwarded-For changes nothing, the proxy's own address is locked.
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in(browser("10.0.0.1"), "alice", "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert (
        sign_in(browser("10.0.0.1"), "alice", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 429
    )

    # Trusted: each client behind the proxy is counted on its own.
    settings.TWIN_TRUST_X_FORWARDED_FOR = True
    answer = sign_in(browser("10.0.0.1"), "alice", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert answer.status_code == 302


def test_a_right_password_clears_the_failures(alice: Any) -> None:
    me = browser()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(me, "alice", "wrong")
    assert sign_in(me, "alice", PASSWORD).status_code == 302
    me.post("/logout/", {"csrfmiddlewaretoken": me.cookies["csrftoken"].value})

    me = browser()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(me, "alice", "wrong")
    assert sign_in(me, "alice", PASSWORD).status_code == 302


# -- password rules --------------------------------------------------------------------------------
@pytest.mark.parametrize("weak", ["demo", "password123", "12345678901", "alice1234"])
def test_createtenant_refuses_a_weak_password(db: Any, weak: str) -> None:
    with pytest.raises(CommandError, match="The password is refused"):
        call_command("createtenant", "acme", "--owner", "alice", "--password", weak)


def test_createtenant_takes_a_strong_password(db: Any, capsys: Any) -> None:
    call_command("createtenant", "acme", "--owner", "alice", "--password", PASSWORD)
    assert capsys.readouterr().out.strip().startswith("twin_")
    assert signed_in_with(PASSWORD)


def signed_in_with(password: str) -> bool:
    me = browser()
    return sign_in(me, "alice", password).status_code == 302 and signed_in(me)


def test_the_demo_password_is_generated_once_kept_private_and_passes_the_rules(tmp_path: Path) -> None:
    first = demo_password_get(var_dir=tmp_path)
    second = demo_password_get(var_dir=tmp_path)

    assert first == second
    assert first != "demo"
    validate_password(first)  # raises if it would fail the rules
    assert stat.S_IMODE((tmp_path / "demo-password").stat().st_mode) == 0o600


# -- sessions that end -----------------------------------------------------------------------------
def _age_session(client: Client, **seconds_ago: float) -> None:
    session = client.session
    for key, ago in seconds_ago.items():
        session[key] = time.time() - ago
    session.save()


def test_a_session_idle_for_longer_than_the_limit_is_signed_out(alice: Any) -> None:
    me = browser()
    sign_in(me, "alice", PASSWORD)
    assert signed_in(me)

    _age_session(me, twin_seen_at=settings.TWIN_SESSION_IDLE_SECONDS + 5)
    answer = me.get("/runs/")

    assert answer.status_code == 302
    assert answer["Location"] == "/login/?next=/runs/"
    assert not signed_in(me)


def test_a_busy_session_still_ends_at_the_absolute_maximum(alice: Any) -> None:
    me = browser()
    sign_in(me, "alice", PASSWORD)
    _age_session(me, twin_login_at=settings.TWIN_SESSION_MAX_SECONDS + 5, twin_seen_at=1)

    answer = me.get("/runs/")

    assert answer.status_code == 302
    assert answer["Location"].startswith("/login/")


def test_a_session_used_within_the_idle_limit_lives_on(alice: Any) -> None:
    me = browser()
    sign_in(me, "alice", PASSWORD)
    _age_session(me, twin_seen_at=settings.TWIN_SESSION_IDLE_SECONDS - 120)
    assert signed_in(me)
    assert time.time() - me.session["twin_seen_at"] < 5  # the request counted as activity


# -- one-time codes --------------------------------------------------------------------------------
def enroll(user: Any) -> Any:
    device = totp_device_begin(user=user)
    assert totp_device_confirm(device=device, token=code_now(device))
    return device


def test_with_a_device_the_password_alone_signs_nobody_in(alice: Any) -> None:
    enroll(alice)
    me = browser()

    answer = sign_in(me, "alice", PASSWORD)

    assert answer.status_code == 302
    assert answer["Location"] == "/login/code/"
    assert not signed_in(me)
    assert me.get("/api/runs").status_code in (401, 403)


def test_wrong_codes_are_throttled_so_even_the_right_one_waits(alice: Any) -> None:
    device = enroll(alice)
    me = browser()
    sign_in(me, "alice", PASSWORD)
    token = me.cookies["csrftoken"].value

    wrong = me.post("/login/code/", {"code": "000000", "csrfmiddlewaretoken": token})
    assert "That code is not right" in wrong.content.decode()
    right_too_soon = me.post(
        "/login/code/", {"code": code_now(device, ahead=1), "csrfmiddlewaretoken": token}
    )

    assert "Too many wrong codes" in right_too_soon.content.decode()
    assert not signed_in(me)
    time.sleep(1.1)
    answer = me.post("/login/code/", {"code": code_now(device, ahead=1), "csrfmiddlewaretoken": token})
    assert answer.status_code == 302
    assert signed_in(me)


def test_the_admin_login_by_password_alone_is_held_for_the_code(alice: Any) -> None:
    alice.is_staff = True
    alice.save()
    enroll(alice)
    me = browser()
    me.get("/admin/login/")

    sign_in(me, "alice", PASSWORD, path="/admin/login/?next=/admin/")
    answer = me.get("/admin/")

    assert answer.status_code == 302
    assert answer["Location"] == "/login/code/"
    assert me.get("/admin/").status_code == 302  # still not in
    assert "_auth_user_id" not in me.session


def test_an_admin_session_by_password_alone_gets_no_api_answer(alice: Any) -> None:
    alice.is_staff = True
    alice.save()
    enroll(alice)
    me = browser()
    me.get("/admin/login/")
    sign_in(me, "alice", PASSWORD, path="/admin/login/?next=/admin/")

    answer = me.get("/api/runs")

    assert answer.status_code == 401
    assert answer.json()["error"] == "two_factor_required"
    assert me.get("/api/runs").status_code in (401, 403)  # and the session is no longer signed in


def test_only_a_superuser_may_change_whether_a_tenant_requires_two_factor(alice: Any) -> None:
    from django.contrib.auth.models import Permission

    from tenants.models import Tenant

    tenant = Tenant.objects.get(slug="acme")
    staff = browser()
    alice.is_staff = True
    alice.save()
    alice.user_permissions.add(*Permission.objects.filter(codename__in=["view_tenant", "change_tenant"]))
    staff.force_login(alice)
    page = staff.get(f"/admin/tenants/tenant/{tenant.pk}/change/").content.decode()
    assert 'name="require_two_factor"' not in page
    assert "require two factor" in page.lower()  # shown, read-only

    root = browser()
    root.force_login(
        type(alice).objects.create_superuser("root", "root@example.com", "another strong passphrase")
    )
    page = root.get(f"/admin/tenants/tenant/{tenant.pk}/change/").content.decode()
    assert 'name="require_two_factor"' in page


def test_an_api_token_needs_no_code(alice: Any) -> None:
    enroll(alice)
    _, _, token = tenant_create(slug="acme", owner_username="alice")
    answer = Client().get("/api/runs", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert answer.status_code == 200
