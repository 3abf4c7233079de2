"""Approval rules in the dashboard: a pause that needs two approvals says how many it has and
from whom, stays in the inbox after the first, refuses the same person twice, and resumes on the
second; a blocked pause answered "Fail the run" says exactly that."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import BrowserContext, Response, expect

from tenants.models import Role
from tests.dashboard.conftest import LIVE_TIMEOUT_MS, Person, shoot, sign_in, wait_js, wait_live
from tests.dashboard.flows import blocked_on_a_missing_button
from tests.site.server import FixtureSite

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def two_person_payment(site: FixtureSite) -> list[dict[str, Any]]:
    gate = {"kind": "approval", "prompt": "Pay $42.00?", "required": 2, "approvers": ["dave", "erin"]}
    return [
        {"action": "goto", "url": site.url("/pay")},
        {"action": "click", "selector": "#pay", "gate": gate},
        {"action": "assert_text", "text": "Payment complete"},
    ]


def test_two_approvals_are_counted_on_the_card_and_the_second_resumes_the_run(
    new_context: Callable[..., BrowserContext],
    alice: Person,
    dave: Person,
    person: Callable[..., Person],
    site: FixtureSite,
    worker: object,
) -> None:
    erin = person("erin", "acme", Role.APPROVER)
    run = alice.start_run(two_person_payment(site), goal="Pay the deposit", wait=30)
    assert run["status"] == "awaiting_approval", run

    phone = new_context(**PHONE).new_page()
    sign_in(phone, erin)
    wait_live(phone)
    phone_card = phone.locator("article.item", has_text="Pay the deposit")
    expect(phone_card.locator(".votes")).to_contain_text("0 of 2 approvals given")

    desk = new_context(viewport={"width": 1366, "height": 900}).new_page()
    sign_in(desk, dave)
    card = desk.locator("article.item", has_text="Pay the deposit")
    expect(card.locator(".votes")).to_contain_text("0 of 2 approvals given; waiting for 2 more")
    card.get_by_role("button", name="Approve").click()

    expect(desk.locator("#notices")).to_contain_text(
        "You approved step 2 of “Pay the deposit”: 1 of 2 approvals given; it waits for 1 more."
    )
    expect(card.locator(".votes")).to_contain_text("1 of 2 approvals given (dave); you approved")
    assert alice.run(run["id"])["status"] == "awaiting_approval"
    shoot(desk, "inbox-one-of-two-approvals", full_page=False)

    card.get_by_role("button", name="Approve").click()  # dave again: refused, with the reason
    expect(desk.locator("#notices .notice-error")).to_contain_text("the same person cannot give two of them")

    # Erin's inbox heard of dave's approval without a reload.
    expect(phone_card.locator(".votes")).to_contain_text(
        "1 of 2 approvals given (dave)", timeout=LIVE_TIMEOUT_MS
    )
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the phone inbox scrolls sideways ({width}px)"
    shoot(phone, "inbox-one-of-two-approvals-phone", full_page=False)
    phone_card.get_by_role("button", name="Approve").click()

    expect(phone.locator("#notices")).to_contain_text("You decided: approved step 2 of “Pay the deposit”")
    expect(card).to_have_count(0, timeout=LIVE_TIMEOUT_MS)  # gone from dave's inbox too
    done = alice.run(run["id"], wait=30)
    assert done["status"] == "completed", done
    assert site.count("payment") == 1

    shown = desk.goto(f"/runs/{run['id']}/")
    assert shown is not None and shown.ok
    expect(desk.locator("table.pauses")).to_contain_text("Approved by erin")


def test_failing_a_blocked_step_reads_fail_the_run_not_approved(
    new_context: Callable[..., BrowserContext],
    alice: Person,
    dave: Person,
    site: FixtureSite,
    worker: object,
) -> None:
    run = alice.start_run(blocked_on_a_missing_button(site), goal="Press the flaky button", wait=30)
    assert run["status"] == "awaiting_approval" and run["pending_step"]["trigger"] == "blocked", run

    page = new_context(viewport={"width": 1366, "height": 900}).new_page()
    sign_in(page, dave)
    card = page.locator("article.item", has_text="Press the flaky button")
    card.get_by_role("radio", name="Fail the run").check()
    card.get_by_role("button", name="Go on").click()

    notices = page.locator("#notices")
    expect(notices).to_contain_text("You decided: fail the run at step 2 of “Press the flaky button”.")
    expect(notices).not_to_contain_text("approved")
    assert alice.run(run["id"], wait=30)["status"] == "failed"
    (listed,) = [a for a in alice.api("GET", "/api/approvals").json() if a["run_id"] == run["id"]]
    assert listed["decision"] == "fail"

    page.goto(f"/runs/{run['id']}/")
    expect(page.locator("table.pauses")).to_contain_text("Fail the run by dave")
    expect(page.locator("table.pauses")).not_to_contain_text("Approved")
    shoot(page, "run-page-fail-the-run", full_page=False)


def test_an_approval_heard_while_the_list_is_being_redrawn_still_shows_on_the_card(
    new_context: Callable[..., BrowserContext],
    alice: Person,
    dave: Person,
    person: Callable[..., Person],
    site: FixtureSite,
    worker: object,
) -> None:
    """A live refresh whose answer left before an approval, swapped in just as the approval's
    event arrives, must not leave the card stale: htmx does not listen on the new list until it
    has settled, so that event used to be lost and the card said "0 of 2" until the next event."""
    erin = person("erin", "acme", Role.APPROVER)
    run = alice.start_run(two_person_payment(site), goal="Pay the rent", wait=30)
    assert run["status"] == "awaiting_approval", run

    desk = new_context(viewport={"width": 1366, "height": 900}).new_page()
    sign_in(desk, dave)
    wait_live(desk)
    card = desk.locator("article.item", has_text="Pay the rent")
    expect(card.locator(".votes")).to_contain_text("0 of 2 approvals given; waiting for 2 more")

    # The refresh the socket's opening asked for is in and listening.
    wait_js(desk, "!document.querySelector('#inbox-list.htmx-request, #inbox-list.htmx-settling')")
    # A slow browser: the new list settles (and listens) 3 s after it is swapped in.
    desk.evaluate("htmx.config.defaultSettleDelay = 3000")

    def the_list(response: Response) -> bool:
        return response.url.split("?")[0].endswith("/inbox/") and response.request.method == "GET"

    with desk.expect_response(the_list):
        desk.evaluate("document.body.dispatchEvent(new CustomEvent('twin:inbox'))")
    given = erin.api("POST", f"/api/runs/{run['id']}/approve", {})
    assert given.status_code == 202, given.text

    expect(card.locator(".votes")).to_contain_text("1 of 2 approvals given (erin)", timeout=LIVE_TIMEOUT_MS)
