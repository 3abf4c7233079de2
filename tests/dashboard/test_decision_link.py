"""A decision link opened on a phone, as from an email: sign in, see the pause, answer it."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, expect

from tests.dashboard.conftest import Person, shoot
from tests.dashboard.flows import OTP_STEP, OTP_STEPS, login_then_otp
from tests.site.server import TOTP_SEED, FixtureSite
from vault.totp import totp


def test_a_decision_link_signs_in_shows_the_pause_and_its_code_resumes_the_run(
    new_context: Callable[..., BrowserContext],
    alice: Person,
    site: FixtureSite,
    worker: object,
) -> None:
    run = alice.start_run(login_then_otp(site), goal="Pay the supplier", wait=40)
    assert run["status"] == "awaiting_approval", run
    link = urlsplit(run["pending_step"]["decision_url"]).path

    phone = new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True).new_page()
    phone.goto(link)
    expect(phone).to_have_url(re.compile(r"/login/\?next=/decide/"))  # nothing shows before sign-in
    phone.get_by_label("Username").fill(alice.username)
    phone.get_by_label("Password").fill(alice.password)
    phone.get_by_role("button", name="Sign in").click()

    expect(phone.get_by_role("heading", name="Pay the supplier")).to_be_visible()
    expect(phone.locator("article.item")).to_contain_text(f"step {OTP_STEP} of {OTP_STEPS}")
    code = phone.get_by_label("One-time code")
    expect(code).to_be_focused()  # the link exists to answer: the field is ready to type in
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the decision page scrolls sideways ({width}px)"
    shoot(phone, "decision-link-phone", full_page=False)

    code.fill("12ab")
    phone.get_by_role("button", name="Submit and resume").click()
    expect(phone.get_by_role("alert")).to_contain_text("does not match the pattern")
    assert alice.run(run["id"])["status"] == "awaiting_approval"

    phone.get_by_label("One-time code").fill(totp(TOTP_SEED))
    phone.get_by_role("button", name="Submit and resume").click()
    expect(phone.get_by_role("status").filter(has_text="You decided")).to_contain_text("Approved")
    expect(phone.get_by_text("This link decides nothing any more.")).to_be_visible()
    done = alice.run(run["id"], wait=30)
    assert done["status"] == "completed", done
    assert site.count("otp_ok") == 1
    decided = alice.api("GET", f"/api/approvals?run={run['id']}").json()
    assert [(a["status"], a["channel"]) for a in decided] == [("approved", "link")]
