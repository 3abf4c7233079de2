"""A pause arrives in an open inbox, a wrong code is refused inline, the right one resumes the run."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.dashboard.conftest import LIVE_TIMEOUT_MS, Person, sign_in, wait_live
from tests.dashboard.flows import OTP_STEP, OTP_STEPS, login_then_otp
from tests.site.server import TOTP_SEED, FixtureSite
from vault.totp import totp


def test_a_pause_arrives_without_reload_a_wrong_code_keeps_it_and_the_right_one_completes_the_run(
    page: Page, alice: Person, site: FixtureSite, worker: object
) -> None:
    sign_in(page, alice)
    expect(page).to_have_url(re.compile(r"/inbox/$"))
    expect(page.get_by_text("Nothing is waiting for you")).to_be_visible()
    count = page.locator("#pending-count")
    expect(count).to_have_text("0")
    wait_live(page)

    run = alice.start_run(login_then_otp(site), goal="Pay the supplier")

    item = page.locator("article.item", has_text="Pay the supplier")
    expect(item).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(count).to_have_text("1")
    expect(item).to_contain_text(f"step {OTP_STEP} of {OTP_STEPS}")
    expect(item).to_contain_text("MFA")
    expect(item.locator(".prompt")).to_have_text("One-time code")
    expect(item).to_contain_text(site.url("/otp"))
    expect(item).to_contain_text("started by alice")
    expect(item.get_by_role("img", name=re.compile("The page the run saw"))).to_be_visible()

    code_field = item.get_by_label("One-time code")
    code_field.fill("12ab")
    item.get_by_role("button", name="Submit and resume").click()

    expect(page.locator("#notices .notice-error")).to_contain_text("does not match the pattern")
    expect(item.get_by_role("button", name="Submit and resume")).to_be_visible()
    assert alice.run(run["id"])["status"] == "awaiting_approval"
    assert site.count("otp_ok") + site.count("otp_bad") == 0

    code_field.fill(totp(TOTP_SEED))
    item.get_by_role("button", name="Submit and resume").click()

    expect(page.locator("#notices")).to_contain_text(
        f"You decided: approved step {OTP_STEP} of “Pay the supplier”"
    )
    expect(item).to_be_hidden(timeout=LIVE_TIMEOUT_MS)  # decided pauses leave the inbox
    expect(count).to_have_text("0")

    page.locator("#notices").get_by_role("link", name="Open the run").first.click()
    expect(page).to_have_url(re.compile(rf"/runs/{run['id']}/$"))
    wait_live(page)
    status = page.locator(".page-head .badge").first
    expect(status).to_have_text("completed", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator(f"#step-{OTP_STEPS}")).to_contain_text("done")
    expect(page.locator("table.pauses")).to_contain_text("Approved with an input by alice")
    assert site.count("otp_ok") == 1
