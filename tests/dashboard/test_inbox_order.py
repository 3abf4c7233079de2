"""A long inbox: the most urgent first, every pause a page away, arrivals announced, expiries noted."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import BrowserContext, Page, expect

from approvals.models import ApprovalStatus, Trigger
from tests.dashboard.conftest import LIVE_TIMEOUT_MS, Person, shoot, sign_in, wait_live
from tests.dashboard.flows import OTP_GATE, login_then_otp
from tests.site.server import FixtureSite
from tests.test_inbox_pagination import en, pause


def test_sixty_pauses_page_by_urgency_a_new_code_is_announced_then_first_and_expiries_leave_a_notice(
    page: Page,
    new_context: Callable[..., BrowserContext],
    alice: Person,
    olga: Person,
    site: FixtureSite,
    worker: object,
) -> None:
    now = timezone.now()
    for i in range(60):
        pause(
            alice.tenant,
            created=now - timedelta(minutes=60 - i),
            expires=now + timedelta(hours=2, minutes=(i * 37) % 60),
            trigger=Trigger.BLOCKED if i % 7 == 0 else Trigger.APPROVAL,
            goal=f"Pay supplier invoice {i:02d}",
        )
    gone = pause(
        alice.tenant,
        created=now - timedelta(hours=3),
        expires=now - timedelta(minutes=20),
        status=ApprovalStatus.EXPIRED,
        decided=now - timedelta(minutes=20),
        goal="Renew the domain",
    )

    page.set_viewport_size({"width": 1366, "height": 900})
    sign_in(page, alice)
    items = page.locator("article.item")
    expect(items).to_have_count(50)
    expect(page.locator("#inbox-range")).to_have_text(en("1-50 of 60 pending"))
    expect(page.locator("#pending-count")).to_have_text("60")
    expect(page.get_by_label("Sort")).to_have_value("urgent")
    # The soonest expiry leads (the one created at i = 52: 2 h 4 min ... every 37 minutes wraps).
    expiries = [t.get_attribute("datetime") or "" for t in page.locator("article.item time.expires").all()]
    assert expiries == sorted(expiries)

    notice = page.locator(".inbox-expired li", has_text="Renew the domain")
    expired = timezone.localtime(gone.decided_at)
    # An expiry of another day (20 minutes ago, run just after midnight) names its day.
    day = "" if expired.date() == timezone.localtime().date() else f"{expired:%a} "
    expect(notice).to_contain_text(f"Expired at {day}{expired:%H:%M} — run ended")
    expect(notice.get_by_role("button")).to_have_count(0)  # never decidable
    expect(notice.get_by_role("link", name="Renew the domain")).to_have_attribute(
        "href", f"/runs/{gone.run_id}/"
    )
    shoot(page, "inbox-many", full_page=False)
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    expect(page.get_by_role("link", name="Next page")).to_be_in_viewport()
    shoot(page, "inbox-pager", full_page=False)

    page.get_by_role("link", name="Next page").click()
    expect(page).to_have_url(re.compile(r"/inbox/\?cursor="))
    expect(items).to_have_count(10)
    expect(page.locator("#inbox-range")).to_have_text(en("51-60 of 60 pending"))
    expect(page.locator(".inbox-expired")).to_have_count(0)  # the notices are the first page's
    wait_live(page)

    # A one-time code that expires in five minutes arrives while the person is on page 2.
    otp = login_then_otp(site)
    otp[6] = {**otp[6], "gate": {**OTP_GATE, "expires_in": 300}}
    run = olga.start_run(otp, goal="Sign in to the bank")
    banner = page.locator(".inbox-new")
    expect(banner).to_have_text("1 new pause — show", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#pending-count")).to_have_text("61")
    expect(items).to_have_count(10)  # not slipped in unannounced
    expect(page.locator("#inbox-range")).to_have_text(en("51-60 of 61 pending"))
    shoot(page, "inbox-new-arrivals", full_page=False)

    banner.get_by_role("link", name="show").click()
    expect(page.locator("#inbox-range")).to_have_text(en("1-50 of 61 pending"))
    expect(items.first).to_contain_text("Sign in to the bank")
    expect(items.first.locator(".badge.trigger")).to_have_text("MFA")

    page.get_by_label("Sort").select_option("oldest")
    expect(page).to_have_url(re.compile(r"order=oldest"))
    expect(items.first).to_contain_text("Pay supplier invoice 00")
    page.get_by_label("Sort").select_option("newest")
    expect(items.first).to_contain_text("Sign in to the bank")
    page.reload()  # the choice is kept in the address
    expect(page.get_by_label("Sort")).to_have_value("newest")
    expect(items.first).to_contain_text("Sign in to the bank")

    page.get_by_label("Trigger").select_option("ambiguity")
    expect(page.locator("#inbox-list .empty")).to_contain_text("No ambiguity pauses are waiting.")
    page.get_by_label("Trigger").select_option("blocked")
    expect(items).to_have_count(9)
    expect(page.locator("#inbox-range")).to_have_text("9 pending")

    phone = new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True).new_page()
    sign_in(phone, alice)
    expect(phone.locator("article.item")).to_have_count(50)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the phone inbox scrolls sideways ({width}px)"
    shoot(phone, "inbox-many-phone", full_page=False)
    # A live refresh may redraw the list meanwhile: scroll the window, not a node it may replace.
    phone.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    expect(phone.get_by_role("link", name="Next page")).to_be_in_viewport()
    shoot(phone, "inbox-pager-phone", full_page=False)
    assert olga.run(run["id"])["status"] == "awaiting_approval"
