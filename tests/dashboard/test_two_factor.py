"""Two-factor sign-in with an authenticator app (TOTP): enrolling, signing in with a code, a
tenant that requires it, and decision links behind it."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Page, expect
from playwright.sync_api import Error as PlaywrightError

from tenants.models import Tenant
from tests.dashboard.conftest import Person, shoot, sign_in, wait_live
from tests.dashboard.flows import pay_with_approval
from tests.site.server import FixtureSite
from vault.totp import totp

PERIOD = 30


def code(secret: str, *, ahead: int = 0) -> str:
    # A code is accepted once: the next one (still within the allowed drift) signs in right
    # after the enrollment used the current one.
    return totp(secret, at=time.time() + ahead * PERIOD)


def password_step(page: Page, who: Person, *, path: str = "/login/") -> None:
    page.goto(path)
    page.get_by_label("Username").fill(who.username)
    page.get_by_label("Password").fill(who.password)
    page.get_by_role("button", name="Sign in").click()


def enroll(page: Page, *, screenshot: str = "") -> str:
    """On the enrollment page: read the key as a person would type it into their app, confirm."""
    expect(page.get_by_role("heading", level=1)).to_have_text("Two-factor sign-in")
    expect(
        page.get_by_role("figure", name="QR code for your authenticator app").locator("svg")
    ).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    uri = page.locator("details.otpauth code").text_content() or ""
    assert uri.startswith("otpauth://totp/Twin") and f"secret={secret}" in uri
    if screenshot:
        shoot(page, screenshot, full_page=False)
    page.get_by_label("Code", exact=True).fill("123456" if code(secret) != "123456" else "654321")
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    expect(page.get_by_role("alert")).to_contain_text("That code is not right")
    time.sleep(1.1)  # wrong codes are throttled (1 s after the first)
    page.get_by_label("Code", exact=True).fill(code(secret))
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    return secret


def test_an_approver_enrolls_an_app_and_from_then_on_signs_in_with_a_code(page: Page, alice: Person) -> None:
    sign_in(page, alice)
    page.locator(".who").get_by_role("link", name="alice").click()
    secret = enroll(page, screenshot="two-factor-enroll")
    expect(page.get_by_role("status")).to_contain_text("Two-factor sign-in is on")

    page.get_by_role("button", name="Sign out").click()
    # Signed out first: a goto racing the sign-out's POST found the session still there (and no form).
    expect(page).to_have_url(re.compile(r"/login/$"))
    password_step(page, alice)

    expect(page).to_have_url(re.compile(r"/login/code/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your sign-in code")
    page.goto("/inbox/")  # the password alone opens nothing
    expect(page).to_have_url(re.compile(r"/login/\?next=/inbox/$"))
    assert alice.api("GET", "/api/runs").status_code == 200  # API tokens need no code

    password_step(page, alice)
    page.get_by_label("Code", exact=True).fill("000000")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("That code is not right")
    expect(page.get_by_label("Code", exact=True)).to_have_attribute("aria-invalid", "true")
    shoot(page, "two-factor-code-error", full_page=False)
    time.sleep(1.1)
    page.get_by_label("Code", exact=True).fill(code(secret, ahead=1))
    page.get_by_role("button", name="Verify").click()

    expect(page).to_have_url(re.compile(r"/inbox/$"))
    expect(page.locator(".who")).to_contain_text("alice")


def test_a_tenant_that_requires_two_factor_sends_members_without_an_app_to_enroll_first(
    new_context: Callable[..., BrowserContext], alice: Person, bob: Person
) -> None:
    signed_in_before = new_context().new_page()
    sign_in(signed_in_before, alice)
    # The page's own refreshes on connecting are done: the next request is the click below
    # (two requests racing on one session could both be held, and the second loses the first's
    # "waiting for a code" state: that person signs in again, which is safe but not this test).
    wait_live(signed_in_before)
    signed_in_before.wait_for_timeout(1000)
    Tenant.objects.filter(pk=alice.tenant.pk).update(require_two_factor=True)

    # A session from before the tenant required it is held at its next click.
    with contextlib.suppress(PlaywrightError):
        signed_in_before.goto("/runs/")
    expect(signed_in_before).to_have_url(re.compile(r"/account/two-factor/$"))
    expect(signed_in_before.get_by_text("Your organisation requires two-factor sign-in")).to_be_visible()
    shoot(signed_in_before, "two-factor-required", full_page=False)
    signed_in_before.goto("/inbox/")
    expect(signed_in_before).to_have_url(re.compile(r"/login/"))

    # A member signing in now enrolls before anything else, then lands where they were going.
    page = new_context().new_page()
    password_step(page, bob, path="/login/?next=/runs/")
    expect(page).to_have_url(re.compile(r"/account/two-factor/$"))
    enroll(page)
    expect(page).to_have_url(re.compile(r"/runs/$"))
    expect(page.locator(".who")).to_contain_text("bob")


def test_a_decision_link_asks_for_the_code_before_it_shows_the_pause(
    new_context: Callable[..., BrowserContext], alice: Person, site: FixtureSite, worker: object
) -> None:
    me = new_context().new_page()
    sign_in(me, alice)
    me.goto("/account/two-factor/")
    secret = enroll(me)
    run = alice.start_run(pay_with_approval(site), goal="Pay the supplier", wait=40)
    assert run["status"] == "awaiting_approval", run
    link = urlsplit(run["pending_step"]["decision_url"]).path

    phone = new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True).new_page()
    phone.goto(link + "?action=approve")
    password_step(phone, alice, path=phone.url.removeprefix(alice.base_url))
    expect(phone).to_have_url(re.compile(r"/login/code/$"))
    shoot(phone, "two-factor-code-phone", full_page=False)
    phone.get_by_label("Code", exact=True).fill(code(secret, ahead=1))
    phone.get_by_role("button", name="Verify").click()

    expect(phone).to_have_url(re.compile(r"/decide/"))
    expect(phone.get_by_role("heading", name="Pay the supplier")).to_be_visible()
