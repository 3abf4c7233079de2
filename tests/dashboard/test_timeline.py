"""A run's timeline reads as what happened, in words, with what was recorded one click away."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import BrowserContext, Page, expect

from engine.liveview import takeover_end, takeover_input, takeover_start
from runs.models import Run
from tests.dashboard.conftest import Person, shoot, sign_in, wait_live
from tests.dashboard.flows import blocked_on_a_missing_button
from tests.site.server import FixtureSite

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}
PROMPT = "Pay $42.00 <b>now</b>?"
GATE = {"kind": "approval", "prompt": PROMPT}


def pay(site: FixtureSite) -> list[dict[str, object]]:
    return [
        {"action": "goto", "url": site.url("/pay"), "label": "Open the payment page"},
        {"action": "click", "selector": "#pay", "label": "Pay", "gate": GATE},
        {"action": "assert_text", "text": "Payment complete"},
    ]


def take_over(run_id: str, who: Person) -> None:
    """What the live view records while a person types a code and clicks (8 characters, 2 clicks, 1 key)."""
    user = who.user
    takeover_input(run_id=run_id, user=user, data={"kind": "mouse.press", "x": 10, "y": 10, "clicks": 1})
    takeover_input(run_id=run_id, user=user, data={"kind": "mouse.release", "x": 10, "y": 10, "clicks": 1})
    takeover_input(run_id=run_id, user=user, data={"kind": "text", "length": 6})
    takeover_input(run_id=run_id, user=user, data={"kind": "key", "key": "(character)", "modifiers": 0})
    takeover_input(run_id=run_id, user=user, data={"kind": "key", "key": "(character)", "modifiers": 0})
    takeover_input(run_id=run_id, user=user, data={"kind": "mouse.press", "x": 20, "y": 30, "clicks": 1})
    takeover_input(run_id=run_id, user=user, data={"kind": "key", "key": "Tab", "modifiers": 0})


def timeline_texts(page: Page) -> list[str]:
    return page.locator("ol.timeline .tl-text").all_inner_texts()


def test_the_timeline_tells_a_paused_taken_over_and_approved_run_in_words(
    new_context: Callable[..., BrowserContext], alice: Person, olga: Person, site: FixtureSite, worker: object
) -> None:
    run = olga.start_run(pay(site), goal="Pay the July invoice")
    assert olga.run(run["id"], wait=40)["status"] == "awaiting_approval"
    takeover_start(run_id=run["id"], user=alice.user)
    take_over(run["id"], alice)

    page = new_context(viewport=DESKTOP).new_page()
    sign_in(page, alice)
    page.goto(f"/runs/{run['id']}/")
    wait_live(page)
    timeline = page.locator("ol.timeline")
    expect(timeline).to_contain_text(f"Paused for approval at step 2: {PROMPT}")
    expect(timeline).to_contain_text("alice took over: typed 8 characters, 2 clicks, 1 key")
    expect(timeline).to_contain_text("olga started the run with 3 steps")
    # Seven inputs are one line, and no raw event name is on show.
    expect(page.locator("ol.timeline li[data-type='takeover.input']")).to_have_count(1)
    expect(timeline.locator("b")).to_have_count(0)  # the prompt is text, never markup
    assert not any("takeover.input" in text or "run.queued" in text for text in timeline_texts(page))

    # One click shows what was recorded: each input's data, and the event's own name.
    group = timeline.locator("details").filter(has_text="alice took over: typed")
    details = group.locator(".tl-details")
    expect(details).to_be_hidden()
    group.locator("summary").click()
    expect(details).to_be_visible()
    expect(details.locator("code").first).to_have_text("takeover.input")
    expect(details.locator(".tl-event")).to_have_count(7)
    expect(details).to_contain_text('"length": 6')
    expect(details).to_contain_text('"key": "Tab"')

    # The page redraws on every event; the line opened stays open.
    takeover_end(run_id=run["id"], user=alice.user, reason="closed", inputs=7)
    expect(timeline).to_contain_text("alice handed the page back (7 inputs, closed)")
    expect(group.locator(".tl-details")).to_be_visible()
    shoot(page, "timeline-paused-desktop")

    decided = alice.api("POST", f"/api/runs/{run['id']}/approve", {"note": "invoice checked"})
    assert decided.status_code == 202, decided.text
    assert alice.run(run["id"], wait=40)["status"] == "completed"
    expect(timeline).to_contain_text("Completed")
    texts = timeline_texts(page)
    approved = next(text for text in texts if text.startswith("alice approved step 2"))
    assert approved.startswith("alice approved step 2 via the API") and approved.endswith("“invoice checked”")
    assert any(text.startswith("Resumed at step 2") for text in texts)
    restored = any(text.startswith("Restored from the checkpoint") for text in texts)
    assert "Resumed on the same page" in texts or restored
    assert "Step 3 done" in texts and "Completed" in texts
    assert texts.index("Completed") < texts.index(approved)  # newest first

    # The decision's details never show where the person decided from.
    line = timeline.locator("details").filter(has_text="alice approved step 2")
    line.locator("summary").click()
    expect(line.locator(".tl-details")).to_contain_text('"decision"')
    expect(line.locator(".tl-details")).not_to_contain_text("user_agent")
    shoot(page, "timeline-desktop")

    phone = new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    sign_in(phone, alice)
    phone.goto(f"/runs/{run['id']}/")
    phone_group = phone.locator("ol.timeline details").filter(has_text="alice took over: typed")
    phone_group.locator("summary").click()
    expect(phone_group.locator(".tl-details")).to_be_visible()
    shoot(phone, "timeline-phone")
    # The timeline fits the phone: no line or detail reaches past its edge.
    widest = phone.evaluate(
        "Math.max(...[...document.querySelectorAll('section.timeline-section *')]"
        ".map(e => e.getBoundingClientRect().right))"
    )
    assert widest <= PHONE["width"]


def test_a_blocked_step_that_was_failed_reads_as_failed_not_approved(
    page: Page, alice: Person, olga: Person, site: FixtureSite, worker: object
) -> None:
    run = olga.start_run(blocked_on_a_missing_button(site), goal="Submit the flaky form")
    assert olga.run(run["id"], wait=40)["status"] == "awaiting_approval"
    decided = alice.api("POST", f"/api/runs/{run['id']}/approve", {"choice": "fail"})
    assert decided.status_code == 202, decided.text
    assert alice.run(run["id"], wait=40)["status"] == "failed"
    error = Run.objects.get(pk=run["id"]).error

    sign_in(page, alice)
    page.goto(f"/runs/{run['id']}/")
    timeline = page.locator("ol.timeline")
    expect(timeline).to_contain_text("Blocked — needs a decision at step 2")
    expect(timeline).to_contain_text("alice chose to fail the run at step 2 via the API")
    assert not any("approved" in text for text in timeline_texts(page))
    expect(timeline).to_contain_text("Step 2 failed")
    expect(page.locator("ol.timeline li.tl-bad").filter(has_text=f"Failed: {error[:40]}")).to_have_count(1)


def test_a_long_take_over_is_one_line_and_the_page_says_how_many_events_it_leaves_out(
    page: Page, alice: Person
) -> None:
    run = Run.objects.create(
        tenant=alice.tenant,
        created_by=alice.user,
        goal="Fix the address by hand",
        url="https://shop.example/",
        program=[{"action": "goto", "url": "https://shop.example/"}],
        step_total=1,
        current_step=1,
        status="awaiting_approval",
    )
    for _ in range(210):
        takeover_input(run_id=str(run.pk), user=alice.user, data={"kind": "key", "key": "(character)"})

    sign_in(page, alice)
    page.goto(f"/runs/{run.pk}/")
    expect(page.locator("#events-h + .head-note")).to_contain_text("The latest 200 of 210 events are shown")
    line = page.locator("ol.timeline li")
    expect(line).to_have_count(1)
    expect(line).to_contain_text("alice took over: typed 200 characters")
    line.locator("summary").click()
    expect(line.locator(".tl-event")).to_have_count(50)
    expect(line).to_contain_text("and 150 more inputs")
