"""Every kind of pause in one inbox, each with the controls it needs (and the screenshots)."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import BrowserContext, Page, expect

from tests.dashboard.conftest import LIVE_TIMEOUT_MS, SCREENSHOTS, Person, shoot, sign_in, wait_live
from tests.dashboard.flows import (
    blocked_on_a_missing_button,
    choose_between,
    login_then_otp,
    pay_with_approval,
    pick_an_account,
)
from tests.site.server import FixtureSite


def test_the_inbox_shows_each_kind_of_pause_with_its_own_controls(
    page: Page,
    new_context: Callable[..., BrowserContext],
    alice: Person,
    olga: Person,
    site: FixtureSite,
    worker: object,
) -> None:
    done = olga.start_run(
        [{"action": "goto", "url": site.url("/counter")}, {"action": "click", "selector": "#click"}],
        goal="Click the counter once",
    )
    started = [
        olga.start_run(login_then_otp(site), goal="Sign in to the supplier portal"),
        olga.start_run(pay_with_approval(site), goal="Pay the July invoice"),
        olga.start_run(pick_an_account(site), goal="Delete the duplicate invoice"),
        olga.start_run(blocked_on_a_missing_button(site), goal="Submit the flaky form"),
        olga.start_run(choose_between(site), goal="Choose the paying account"),
    ]
    for run in started:
        assert olga.run(run["id"], wait=40)["status"] == "awaiting_approval"
    assert olga.run(done["id"], wait=20)["status"] == "completed"

    sign_in(page, alice)
    wait_live(page)
    items = page.locator("article.item")
    expect(items).to_have_count(5)
    expect(page.locator("#pending-count")).to_have_text("5")

    mfa = items.filter(has_text="Sign in to the supplier portal")
    expect(mfa.locator(".badge.trigger")).to_have_text("MFA")
    expect(mfa.get_by_label("One-time code")).to_have_attribute("autocomplete", "one-time-code")
    approval = items.filter(has_text="Pay the July invoice")
    expect(approval.locator(".badge.trigger")).to_have_text("Approval")
    expect(approval.get_by_role("button", name="Approve")).to_be_visible()
    ambiguity = items.filter(has_text="Delete the duplicate invoice")
    expect(ambiguity.locator(".badge.trigger")).to_have_text("Ambiguity")
    expect(ambiguity.get_by_role("radio")).to_have_count(2)
    blocked = items.filter(has_text="Submit the flaky form")
    expect(blocked.locator(".badge.trigger")).to_have_text("Blocked — needs a decision")
    for option in ("Retry the step", "Skip the step", "Fail the run"):
        expect(blocked.get_by_role("radio", name=option)).to_be_visible()
    choice = items.filter(has_text="Choose the paying account")
    expect(choice.get_by_role("radio", name="Savings")).to_be_visible()
    for item in items.all():
        expect(item.get_by_role("button", name="Reject")).to_be_visible()
        expect(item.get_by_label("Reason for rejecting")).to_be_visible()
    # Oldest first: the item that has waited longest leads.
    since = page.locator("article.item .meta time:first-child")
    waited = [moment.get_attribute("datetime") or "" for moment in since.all()]
    assert waited == sorted(waited)

    page.get_by_label("Trigger").select_option("blocked")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("Submit the flaky form")
    page.get_by_label("Trigger").select_option("")
    expect(items).to_have_count(5)
    shoot(page, "inbox")

    # Keyboard: from the reason field, Shift+Tab reaches Approve, with a visible focus ring.
    approval.get_by_label("Reason for rejecting").focus()
    page.keyboard.press("Shift+Tab")
    expect(approval.get_by_role("button", name="Approve")).to_be_focused()
    approval.screenshot(path=str(SCREENSHOTS / "inbox-item-keyboard-focus.png"))

    phone = new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True).new_page()
    sign_in(phone, alice)
    expect(phone.locator("article.item")).to_have_count(5)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the phone inbox scrolls sideways ({width}px)"
    shoot(phone, "inbox-phone", full_page=False)

    # Choosing an option decides an ambiguity pause; the runs list shows the whole picture.
    # An option picked on another item survives the live refreshes that decision causes.
    blocked.get_by_role("radio", name="Fail the run").check()
    ambiguity.get_by_role("radio").first.check()
    ambiguity.get_by_role("button", name="Choose and resume").click()
    expect(page.locator("#notices")).to_contain_text("You decided: chose")
    expect(items).to_have_count(4, timeout=LIVE_TIMEOUT_MS)
    expect(blocked.get_by_role("radio", name="Fail the run")).to_be_checked()
    blocked.get_by_role("button", name="Go on").click()
    expect(items).to_have_count(3, timeout=LIVE_TIMEOUT_MS)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs").click()
    expect(page.locator("table.runs tbody tr")).to_have_count(6)
    expect(page.locator("table.runs .badge", has_text="awaiting approval")).to_have_count(3)
    expect(page.locator("table.runs .badge", has_text="failed")).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("table.runs .badge", has_text="completed")).to_have_count(2, timeout=LIVE_TIMEOUT_MS)
    shoot(page, "runs-list")

    page.get_by_role("link", name="Sign in to the supplier portal").click()
    expect(page.get_by_role("heading", name="Waiting for a decision")).to_be_visible()
    expect(page.locator("#step-7")).to_contain_text("awaiting approval")
    expect(page.locator("#step-8")).to_contain_text("queued")
    shoot(page, "run-detail-paused")

    page.goto(f"/runs/{done['id']}/")
    expect(page.locator(".page-head .badge").first).to_have_text("completed")
    shoot(page, "run-detail-completed")
