"""Two approvers look at the same pause: one decides, the other sees it go (or who decided)."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import BrowserContext, Page, expect

from tenants.models import FourEyes
from tests.dashboard.conftest import LIVE_TIMEOUT_MS, Person, sign_in, wait_live
from tests.dashboard.flows import pay_with_approval
from tests.site.server import FixtureSite


def inbox_of(new_context: Callable[..., BrowserContext], who: Person, *, deaf: bool = False) -> Page:
    page = new_context().new_page()
    if deaf:
        # A page that hears nothing live (as if its socket had dropped): it keeps showing the pause.
        page.route_web_socket("**/ws/**", lambda ws: None)
    sign_in(page, who, next_path="/inbox/")
    wait_live(page)
    return page


def test_the_other_approver_sees_the_pause_vanish_and_a_stale_decision_shows_who_decided(
    new_context: Callable[..., BrowserContext],
    alice: Person,
    dave: Person,
    site: FixtureSite,
    worker: object,
) -> None:
    # Four eyes would refuse alice (she starts the run): this is about two approvers racing for
    # one pause, so acme turns it off explicitly (test_four_eyes covers the default).
    alice.tenant.four_eyes = FourEyes.OFF
    alice.tenant.save(update_fields=["four_eyes"])
    alice_page = inbox_of(new_context, alice)
    dave_page = inbox_of(new_context, dave)
    dave_stale = inbox_of(new_context, dave, deaf=True)

    run = alice.start_run(pay_with_approval(site), goal="Pay invoice 42")
    for page in (alice_page, dave_page):
        expect(page.locator("article.item", has_text="Pay invoice 42")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    dave_stale.reload()
    stale_item = dave_stale.locator("article.item", has_text="Pay invoice 42")
    expect(stale_item).to_be_visible()

    alice_item = alice_page.locator("article.item", has_text="Pay invoice 42")
    expect(alice_item.locator(".prompt")).to_have_text("Pay $42.00?")
    alice_item.get_by_role("button", name="Approve").click()

    expect(alice_page.locator("#notices")).to_contain_text("You decided: approved step 2")
    expect(dave_page.locator("article.item", has_text="Pay invoice 42")).to_have_count(0)
    expect(dave_page.locator("#pending-count")).to_have_text("0")
    expect(dave_page.get_by_text("Nothing is waiting for you")).to_be_visible()

    # Dave's other tab never heard of it: his approval comes too late and says so, calmly.
    stale_item.get_by_role("button", name="Approve").click()

    expect(dave_stale.locator("#notices")).to_contain_text("alice had already decided this pause: approved")
    expect(stale_item.get_by_role("status")).to_contain_text("Approved by alice")
    expect(stale_item.get_by_role("button", name="Approve")).to_have_count(0)
    expect(dave_stale.get_by_role("heading", name="Approval inbox")).to_be_visible()

    assert alice.run(run["id"], wait=20)["status"] == "completed"
    assert site.count("payment") == 1
