"""The decision card: what approving does, what follows, the evidence large enough to read, and
the same card in the inbox, on the run page, in the live view and behind a decision link."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.dashboard.conftest import LIVE_TIMEOUT_MS, Person, shoot, sign_in, wait_live
from tests.dashboard.flows import (
    blocked_on_a_missing_button,
    login_then_otp,
    pay_with_approval,
    pick_an_account,
)
from tests.site.server import FixtureSite

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def _no_sideways_scroll(page: Page, what: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{what} scrolls sideways on a phone ({width}px)"


def _card(page: Page, goal: str) -> Locator:
    return page.locator("article.item", has_text=goal)


def test_each_card_says_what_deciding_does_and_shows_the_evidence(
    page: Page,
    new_context: Callable[..., BrowserContext],
    alice: Person,
    olga: Person,
    site: FixtureSite,
    worker: object,
) -> None:
    runs = {
        "pay": olga.start_run(pay_with_approval(site), goal="Pay the July invoice"),
        "otp": olga.start_run(login_then_otp(site), goal="Sign in to the supplier portal"),
        "which": olga.start_run(pick_an_account(site), goal="Delete the duplicate invoice"),
        "blocked": olga.start_run(blocked_on_a_missing_button(site), goal="Submit the flaky form"),
    }
    for run in runs.values():
        assert olga.run(run["id"], wait=40)["status"] == "awaiting_approval"

    page.set_viewport_size({"width": 1366, "height": 900})
    sign_in(page, alice)
    wait_live(page)
    expect(page.locator("article.item")).to_have_count(4)

    pay = _card(page, "Pay the July invoice")
    expect(pay.locator(".card-lead").first).to_have_text("Approving will")
    expect(pay.locator(".card-do")).to_have_text("Click button 'Pay $42.00'")
    expect(pay.locator(".card-next li")).to_have_text(["Check that the page shows 'Payment complete'"])
    expect(pay).to_contain_text("started by olga")
    expect(pay.get_by_role("link", name="Open the live view")).to_have_attribute(
        "href", f"/runs/{runs['pay']['id']}/live"
    )
    expect(pay.locator("svg.shot-marks rect.mark-target")).to_have_count(1)
    expect(pay.locator("figcaption")).to_contain_text("The step's element is outlined.")
    pay.get_by_text("The page's text at the pause").click()
    expect(pay.locator(".page-text pre")).to_contain_text("Pay $42.00")

    otp = _card(page, "Sign in to the supplier portal")
    expect(otp.locator(".card-lead").first).to_have_text("Submitting will")
    expect(otp.locator(".card-do")).to_have_text(
        "Type the code into textbox 'Code from your authenticator app'"
    )
    expect(otp.locator(".card-next li")).to_have_text(
        ["Click the element '#verify'", "Check that the page shows 'Confirm payment'"]
    )

    which = _card(page, "Delete the duplicate invoice")
    expect(which.locator(".card-do")).to_have_text(
        "Choose one of 2 buttons 'Delete', then click the one you choose"
    )
    # Each option is numbered like its outline on the screenshot.
    expect(which.locator("label.option .option-number")).to_have_text(["1", "2"])
    expect(which.locator("svg.shot-marks .mark-candidate text")).to_have_text(["1", "2"])
    expect(which.locator("figcaption")).to_contain_text("numbered like the options")

    blocked = _card(page, "Submit the flaky form")
    expect(blocked.locator(".badge.trigger")).to_have_text("Blocked — needs a decision")
    expect(blocked.locator(".card-do")).to_have_text("Press Go: click the element '#go'")
    for option, why in (
        ("Retry the step", "Do step 2 again on the page as it is now"),
        ("Skip the step", "Leave step 2 undone and finish the run."),
        ("Fail the run", "End the run now as failed"),
    ):
        radio = blocked.get_by_role("radio", name=option)
        expect(radio).to_be_visible()
        described = radio.get_attribute("aria-describedby") or ""
        expect(page.locator(f"#{described}")).to_contain_text(why)
    expect(blocked.locator(".reject-why")).to_contain_text("Reject: end the run as rejected")
    shoot(page, "decision-card-inbox")

    # The screenshot, large: the lightbox opens from the keyboard, zooms, and Esc gives the focus back.
    opener = pay.locator("a.shot-open")
    opener.focus()
    page.keyboard.press("Enter")
    box = page.get_by_role("dialog")
    expect(box).to_be_visible()
    expect(box.locator("svg.shot-marks rect.mark-target")).to_have_count(1)
    expect(box.locator(".lightbox-level")).to_have_text(re.compile(r"^Fit \(\d+%\)$"))
    box.get_by_role("button", name="Zoom in").click()
    expect(box.locator(".lightbox-level")).to_have_text("100%")
    page.keyboard.press("+")
    expect(box.locator(".lightbox-level")).to_have_text("150%")
    wide = box.locator(".lightbox-stage img").bounding_box()
    assert wide is not None and wide["width"] > 1.4 * 1280, wide
    box.get_by_role("button", name="Fit to the window").click()
    expect(box.locator(".lightbox-level")).to_contain_text("Fit")
    box.get_by_role("button", name="Zoom in").click()
    shoot(page, "decision-card-lightbox", full_page=False)
    page.keyboard.press("Escape")
    expect(box).to_be_hidden()
    expect(opener).to_be_focused()

    # A comment on approve is kept with the decision.
    pay.get_by_label("Comment on approving").fill("Invoice checked against the PO")
    pay.get_by_role("button", name="Approve").click()
    expect(page.locator("#notices")).to_contain_text("You decided", timeout=LIVE_TIMEOUT_MS)
    decided = [a for a in alice.api("GET", "/api/approvals").json() if a["run_id"] == runs["pay"]["id"]]
    assert [(a["status"], a["note"]) for a in decided] == [("approved", "Invoice checked against the PO")]

    # The run page and its live view show the same card.
    page.goto(f"/runs/{runs['which']['id']}/")
    card = page.locator(".pending article.item")
    expect(card.locator(".card-do")).to_contain_text("Choose one of 2 buttons 'Delete'")
    shoot(page, "decision-card-run-page")
    page.goto(f"/runs/{runs['which']['id']}/live")
    live_card = page.locator("#live-pending article.item")
    expect(live_card.locator(".card-do")).to_contain_text("Choose one of 2 buttons 'Delete'")
    expect(live_card.locator("label.option .option-number")).to_have_text(["1", "2"])
    expect(live_card.get_by_role("link", name="Open the live view")).to_be_hidden()
    shoot(page, "decision-card-live")

    # On a phone: nothing scrolls sideways, the screenshot spans the card, the lightbox fits.
    phone = new_context(**PHONE).new_page()
    sign_in(phone, alice)
    wait_live(phone)
    expect(phone.locator("article.item")).to_have_count(3)
    _no_sideways_scroll(phone, "the inbox")
    shot = _card(phone, "Delete the duplicate invoice").locator(".shot-frame img")
    expect(shot).to_be_visible()
    size = None
    for _ in range(50):  # a live refresh may redraw the card between two calls: read it again
        if size := shot.bounding_box():
            break
        phone.wait_for_timeout(100)
    assert size is not None and size["width"] > 300, size
    shoot(phone, "decision-card-inbox-phone")
    _card(phone, "Delete the duplicate invoice").locator("fieldset").scroll_into_view_if_needed()
    shoot(phone, "decision-card-inbox-phone-options", full_page=False)
    _card(phone, "Delete the duplicate invoice").locator("a.shot-open").click()
    expect(phone.get_by_role("dialog")).to_be_visible()
    shoot(phone, "decision-card-lightbox-phone", full_page=False)
    phone.keyboard.press("Escape")
    phone.goto(f"/runs/{runs['blocked']['id']}/live")
    expect(phone.locator("#live-pending article.item .badge.trigger")).to_have_text(
        "Blocked — needs a decision"
    )
    _no_sideways_scroll(phone, "the live view")
    shoot(phone, "decision-card-live-phone")
    phone.locator("#live-pending .card-action").scroll_into_view_if_needed()
    shoot(phone, "decision-card-live-phone-card", full_page=False)


def test_a_decision_link_shows_the_same_card_and_takes_a_comment_without_javascript(
    new_context: Callable[..., BrowserContext],
    alice: Person,
    site: FixtureSite,
    worker: object,
) -> None:
    run = alice.start_run(pay_with_approval(site), goal="Pay the July invoice", wait=40)
    assert run["status"] == "awaiting_approval", run
    link = urlsplit(run["pending_step"]["decision_url"]).path

    for name, options in (("desktop", {"viewport": {"width": 1366, "height": 900}}), ("phone", PHONE)):
        page = new_context(**options).new_page()
        sign_in(page, alice, next_path=link)
        card = page.locator("article.item")
        expect(card.locator(".card-do")).to_have_text("Click button 'Pay $42.00'")
        expect(card.locator("svg.shot-marks rect.mark-target")).to_have_count(1)
        expect(card.get_by_role("link", name="Open the live view")).to_be_visible()
        expect(card.locator("form.approve")).not_to_have_attribute("hx-post", re.compile("."))
        if name == "phone":
            _no_sideways_scroll(page, "the decision link")
        shoot(page, f"decision-card-link-{name}")

    # Without JavaScript the picture is a plain link to the image.
    plain = new_context(java_script_enabled=False).new_page()
    sign_in(plain, alice, next_path=link)
    href = plain.locator("a.shot-open").get_attribute("href") or ""
    assert re.fullmatch(r"/api/screenshots/[0-9a-f-]+", href), href
    plain.get_by_label("Comment on approving").fill("Approved from the email")
    plain.get_by_role("button", name="Approve").click()
    expect(plain.get_by_role("status").filter(has_text="You decided")).to_contain_text("Approved")
    expect(plain.locator(".decided")).to_contain_text("Approved from the email")
    assert alice.run(run["id"], wait=30)["status"] == "completed"
