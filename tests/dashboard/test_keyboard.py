"""The inbox by keyboard: j/k between pauses, a to approve, r to reject after asking, ? for the keys;
the focus lands on the next pause after a decision; notices replace each other; cancel asks first."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import BrowserContext, Page, expect

from tests.dashboard.conftest import LIVE_TIMEOUT_MS, Person, shoot, sign_in, wait_js, wait_live
from tests.dashboard.flows import login_then_otp, pay_with_approval
from tests.site.server import TOTP_SEED, FixtureSite
from vault.totp import totp


def card_ids(page: Page) -> list[str]:
    return [
        str(i) for i in page.locator("#inbox-list article.item").evaluate_all("els => els.map(e => e.id)")
    ]


def wait_for_pauses(alice: Person, runs: list[dict[str, object]]) -> None:
    for run in runs:
        assert alice.run(str(run["id"]), wait=25)["status"] == "awaiting_approval"


def test_j_and_k_move_between_pauses_a_approves_r_rejects_after_asking_and_the_focus_moves_on(
    page: Page, alice: Person, site: FixtureSite, worker: object
) -> None:
    runs = [alice.start_run(pay_with_approval(site), goal=f"Pay supplier {n}") for n in (1, 2, 3)]
    wait_for_pauses(alice, runs)
    by_goal = {f"Pay supplier {n}": str(run["id"]) for n, run in zip((1, 2, 3), runs, strict=True)}

    sign_in(page, alice)
    wait_live(page)
    expect(page.locator("#inbox-list article.item")).to_have_count(3)
    expect(page.get_by_role("button", name="Press ? for keyboard shortcuts")).to_be_visible()
    first, second, third = card_ids(page)

    page.keyboard.press("j")
    expect(page.locator(f"#{first}")).to_be_focused()
    page.keyboard.press("j")
    expect(page.locator(f"#{second}")).to_be_focused()
    page.keyboard.press("j")
    expect(page.locator(f"#{third}")).to_be_focused()
    page.keyboard.press("j")  # the last stays the last
    expect(page.locator(f"#{third}")).to_be_focused()
    page.keyboard.press("k")
    expect(page.locator(f"#{second}")).to_be_focused()
    page.keyboard.press("k")
    expect(page.locator(f"#{first}")).to_be_focused()
    outline = page.locator(f"#{first}").evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline == "solid"  # a visible focus ring on the selected pause
    shoot(page, "keys-inbox-selected", full_page=False)

    # a approves the selected pause; the focus goes to the next one, not to the page.
    goal_of_first = page.locator(f"#{first} .goal").inner_text()
    page.keyboard.press("a")
    expect(page.locator("#notices")).to_contain_text(f"“{goal_of_first}”")
    expect(page.locator(f"#{second}")).to_be_focused()
    assert alice.run(by_goal[goal_of_first], wait=20)["status"] in {"running", "completed"}
    expect(page.locator(f"#{first}")).to_have_count(0, timeout=LIVE_TIMEOUT_MS)  # gone from the inbox
    expect(page.locator(f"#{second}")).to_be_focused()  # and the live refresh keeps the focus

    # r asks first; Esc (or Cancel) leaves the pause waiting and the focus where it was.
    goal_of_second = page.locator(f"#{second} .goal").inner_text()
    page.keyboard.press("r")
    dialog = page.get_by_role("dialog", name="Reject this pause?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(goal_of_second)
    expect(dialog.get_by_role("button", name="Reject")).to_be_visible()
    expect(dialog.get_by_label("Reason (optional)")).to_be_focused()
    shoot(page, "keys-reject-dialog", full_page=False)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator(f"#{second}")).to_be_focused()
    page.keyboard.press("r")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(f"#{second}")).to_be_focused()
    assert alice.run(by_goal[goal_of_second])["status"] == "awaiting_approval"

    # Tab stays inside the dialog; the reason typed there goes with the rejection.
    page.keyboard.press("r")
    expect(dialog).to_be_visible()
    for _ in range(5):
        page.keyboard.press("Tab")
        assert page.evaluate("() => !!document.activeElement.closest('dialog[open]')")
    dialog.get_by_label("Reason (optional)").fill("wrong supplier")
    dialog.get_by_role("button", name="Reject").click()
    expect(page.locator("#notices")).to_contain_text("rejected")
    expect(page.locator(f"#{third}")).to_be_focused()
    rejected = alice.run(by_goal[goal_of_second], wait=10)
    assert rejected["status"] == "rejected"

    # The last pause decided: the focus goes to the list's heading.
    page.keyboard.press("a")
    expect(page.get_by_role("heading", name="Approval inbox")).to_be_focused(timeout=LIVE_TIMEOUT_MS)
    expect(page.get_by_text("Nothing is waiting for you")).to_be_visible(timeout=LIVE_TIMEOUT_MS)


def test_question_mark_lists_the_keys_in_a_dialog_that_keeps_and_returns_the_focus(
    page: Page, alice: Person, site: FixtureSite, worker: object
) -> None:
    run = alice.start_run(pay_with_approval(site), goal="Pay the rent")
    wait_for_pauses(alice, [run])
    sign_in(page, alice)
    expect(page.locator("#inbox-list article.item")).to_have_count(1)

    # Keys typed into a field are text, not shortcuts.
    reason = page.get_by_label("Reason for rejecting")
    reason.fill("")
    reason.press_sequentially("jar?")
    expect(reason).to_have_value("jar?")
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert alice.run(str(run["id"]))["status"] == "awaiting_approval"

    card = page.locator("#inbox-list article.item")
    reason.press("Escape")  # Esc leaves the field for its pause, where the keys work again
    expect(card).to_be_focused()
    page.keyboard.press("j")
    expect(card).to_be_focused()
    page.keyboard.press("?")
    keys = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(keys).to_be_visible()
    for key, meaning in [("j", "Next pause"), ("k", "Previous pause"), ("a", "Approve"), ("r", "Reject")]:
        expect(keys.locator("dt", has_text=re.compile(rf"^{key}$"))).to_have_count(1)
        expect(keys).to_contain_text(meaning)
    shoot(page, "keys-help", full_page=False)
    page.keyboard.press("Tab")
    assert page.evaluate("() => !!document.activeElement.closest('dialog[open]')")
    page.keyboard.press("Escape")
    expect(keys).to_be_hidden()
    expect(card).to_be_focused()

    # The hint is a button too (for a mouse or a phone with a keyboard).
    page.get_by_role("button", name="Press ? for keyboard shortcuts").click()
    expect(keys).to_be_visible()
    keys.get_by_role("button", name="Close").click()
    expect(keys).to_be_hidden()


def test_a_on_a_code_focuses_its_field_and_the_accepted_code_replaces_the_still_waiting_error(
    page: Page, alice: Person, site: FixtureSite, worker: object
) -> None:
    run = alice.start_run(login_then_otp(site), goal="Pay the supplier")
    wait_for_pauses(alice, [run])
    sign_in(page, alice)
    wait_live(page)
    card = page.locator("#inbox-list article.item")
    expect(card).to_have_count(1)

    page.keyboard.press("j")
    page.keyboard.press("a")  # a code cannot be approved blind: the field takes the focus
    code = card.get_by_label("One-time code")
    expect(code).to_be_focused()
    assert alice.run(str(run["id"]))["status"] == "awaiting_approval"

    code.fill("12ab")
    code.press("Enter")
    notices = page.locator("#notices .notice")
    expect(notices).to_have_count(1)
    expect(notices.first).to_contain_text("is still waiting")
    expect(code).to_be_focused()  # back in the field to correct it

    code.fill(totp(TOTP_SEED))
    code.press("Enter")
    expect(notices.first).to_contain_text("You decided")
    expect(notices).to_have_count(1)  # the "still waiting" error is gone
    expect(page.locator("#notices")).not_to_contain_text("still waiting")
    expect(page.get_by_role("heading", name="Approval inbox")).to_be_focused(timeout=LIVE_TIMEOUT_MS)

    notices.first.get_by_role("button", name="Dismiss").click()
    expect(notices).to_have_count(0)


def test_cancelling_a_run_asks_first_and_works_without_javascript(
    new_context: Callable[..., BrowserContext], alice: Person, site: FixtureSite, worker: object
) -> None:
    kept, cancelled = (alice.start_run(pay_with_approval(site), goal=goal) for goal in ("Keep me", "Stop me"))
    wait_for_pauses(alice, [kept, cancelled])

    page = new_context().new_page()
    sign_in(page, alice)
    page.goto(f"/runs/{kept['id']}/")
    wait_live(page)
    page.get_by_role("button", name="Cancel run").click()
    dialog = page.get_by_role("dialog", name="Cancel this run?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Keep it running")).to_be_focused()
    shoot(page, "keys-cancel-dialog", full_page=False)
    page.keyboard.press("Enter")  # the safe answer has the focus
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Cancel run")).to_be_focused()
    assert alice.run(str(kept["id"]))["status"] == "awaiting_approval"

    page.get_by_role("button", name="Cancel run").click()
    dialog.get_by_role("button", name="Cancel the run").click()
    expect(page.locator(".page-head .badge").first).to_have_text("cancelled", timeout=LIVE_TIMEOUT_MS)
    assert alice.run(str(kept["id"]))["status"] == "cancelled"

    # Without JavaScript there is no dialog: the form posts as it always did.
    plain = new_context(java_script_enabled=False).new_page()
    sign_in(plain, alice)
    plain.goto(f"/runs/{cancelled['id']}/")
    plain.get_by_role("button", name="Cancel run").click()
    expect(plain.locator(".page-head .badge").first).to_have_text("cancelled")
    assert alice.run(str(cancelled["id"]))["status"] == "cancelled"


def test_a_key_pressed_just_after_a_live_refresh_decides_in_place_without_reloading_the_page(
    page: Page, alice: Person, site: FixtureSite, worker: object
) -> None:
    """htmx listens on a redrawn list only once it has settled (20 ms, longer on a busy tab), and
    the live refresh hands the focus back to the same card at once: `a` pressed in between used to
    post the card's form the browser's own way, reloading the whole page (the focus lost, the
    decision's notice never shown)."""
    runs = [alice.start_run(pay_with_approval(site), goal=f"Pay supplier {n}") for n in (1, 2)]
    wait_for_pauses(alice, runs)
    sign_in(page, alice)
    wait_live(page)
    expect(page.locator("#inbox-list article.item")).to_have_count(2)
    first, second = card_ids(page)
    page.keyboard.press("j")
    expect(page.locator(f"#{first}")).to_be_focused()
    wait_js(page, "!document.querySelector('#inbox-list.htmx-request, #inbox-list.htmx-settling')")
    page.evaluate("window.twinSamePage = true; htmx.config.defaultSettleDelay = 3000")  # a slow tab

    page.evaluate("document.body.dispatchEvent(new CustomEvent('twin:inbox'))")  # a live refresh
    wait_js(page, "!!document.querySelector('#inbox-list.htmx-settling')")  # swapped in, not settled
    expect(page.locator(f"#{first}")).to_be_focused()  # the same card, redrawn
    goal = page.locator(f"#{first} .goal").inner_text()
    page.keyboard.press("a")

    expect(page.locator("#notices")).to_contain_text(f"“{goal}”")
    assert page.evaluate("window.twinSamePage === true")  # decided in place: no reload
    expect(page.locator(f"#{second}")).to_be_focused()
    by_goal = {f"Pay supplier {n}": str(run["id"]) for n, run in zip((1, 2), runs, strict=True)}
    assert alice.run(by_goal[goal], wait=20)["status"] in {"running", "completed"}
