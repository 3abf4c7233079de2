"""The dashboard on a phone (390 by 844): a one-row menu, tables as labelled cards, nothing wider
than the screen, a live view that fits and zooms; and every page at 1366 by 900 as well."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.utils import timezone
from playwright.sync_api import BrowserContext, Page, expect

from tests.dashboard.conftest import SCREENSHOTS, Person, sign_in, wait_js
from tests.dashboard.flows import pay_with_approval
from tests.site.server import FixtureSite
from tests.skill_factories import add_version, finished_run, make_skill
from webhooks.models import Attempt, Delivery, DeliveryStatus
from webhooks.services import endpoint_create

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}
# Tables shown as cards on a phone: every cell names its column.
CARD_TABLES = (
    "table.runs, table.endpoints, table.deliveries, table.skills, table.params, table.pauses, table.attempts"
)


def a_tenant_with_something_on_every_page(alice: Person, site: FixtureSite) -> dict[str, str]:
    """A paused run, a finished one with its video, a skill with two versions, a webhook with messages."""
    done = alice.start_run(
        [
            {
                "action": "goto",
                "url": site.url("/pay"),
                "label": "Open the payment page of the supplier portal",
            },
            {
                "action": "assert_text",
                "text": "Confirm payment",
                "label": "Check that the page asks to confirm",
            },
        ],
        goal="Check the payment page of a supplier with a rather long name, for the monthly report",
    )
    paused = alice.start_run(
        pay_with_approval(site), goal="Pay the supplier $42.00 for the invoice of November"
    )
    skill = make_skill(alice.tenant, user=alice.user)
    first = add_version(skill)
    add_version(skill, changed_steps=[2])
    finished_run(first, seconds=3, user=alice.user)
    endpoint, _ = endpoint_create(
        tenant=alice.tenant,
        url="http://127.0.0.1:9/twin/a-rather-long-path/for-the-receiver/that-never-answers",
        events=[],
    )
    now = timezone.now()
    for n, status in enumerate([DeliveryStatus.DELIVERED, DeliveryStatus.FAILED], start=1):
        delivery = Delivery.objects.create(
            tenant=alice.tenant,
            endpoint=endpoint,
            event_type="run.awaiting_approval",
            body="{}",
            status=status,
            attempts=n,
        )
        for number in range(1, n + 1):
            Attempt.objects.create(
                delivery=delivery,
                number=number,
                started_at=now - timedelta(minutes=number),
                duration_ms=120 * number,
                status_code=200 if status == DeliveryStatus.DELIVERED else 502,
                response_excerpt='{"ok": true, "note": "a body long enough to wrap on a phone screen"}',
                error="" if status == DeliveryStatus.DELIVERED else "bad gateway",
                ok=status == DeliveryStatus.DELIVERED,
            )
    assert alice.run(str(paused["id"]), wait=25)["status"] == "awaiting_approval"
    assert alice.run(str(done["id"]), wait=25)["status"] == "completed"
    return {
        "paused": str(paused["id"]),
        "done": str(done["id"]),
        "webhook": str(endpoint.pk),
        "skill": skill.slug,
    }


def every_page(ids: dict[str, str]) -> list[tuple[str, str]]:
    return [
        ("inbox", "/inbox/"),
        ("runs", "/runs/"),
        ("run-paused", f"/runs/{ids['paused']}/"),
        ("run-done", f"/runs/{ids['done']}/"),
        ("live", f"/runs/{ids['paused']}/live"),
        ("start", "/runs/new"),
        ("skills", "/skills/"),
        ("skill", f"/skills/{ids['skill']}/"),
        ("skill-run", f"/skills/{ids['skill']}/run"),
        ("save-skill", f"/runs/{ids['done']}/save-skill"),
        ("webhooks", "/webhooks/"),
        ("webhook", f"/webhooks/{ids['webhook']}/"),
        ("webhook-delete", f"/webhooks/{ids['webhook']}/delete"),
        ("two-factor", "/account/two-factor/"),
        ("not-found", "/runs/00000000-0000-0000-0000-000000000000/"),
    ]


def fits(page: Page) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"))


def wider_than_the_screen(page: Page) -> list[str]:
    """What sticks out to the right (for the failure message)."""
    return list(
        page.evaluate(
            """() => Array.from(document.querySelectorAll('body *'))
              .filter(el => el.getBoundingClientRect().right > window.innerWidth + 0.5)
              .filter(el => !el.closest('dialog:not([open]), .visually-hidden, .skip, thead'))
              .slice(0, 8)
              .map(el => `${el.tagName}.${el.className} ${Math.round(el.getBoundingClientRect().right)}`)"""
        )
    )


def test_every_page_fits_a_phone_and_a_laptop_and_is_photographed(
    new_context: Callable[..., BrowserContext], alice: Person, site: FixtureSite, worker: object
) -> None:
    ids = a_tenant_with_something_on_every_page(alice, site)
    for size, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        context = new_context(viewport=viewport, is_mobile=size == "phone", has_touch=size == "phone")
        page = context.new_page()
        page.goto("/login/")
        assert fits(page), wider_than_the_screen(page)
        (SCREENSHOTS / size).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / size / "login.png"), full_page=True)
        sign_in(page, alice)
        for name, path in every_page(ids):
            page.goto(path)
            page.wait_for_load_state("load")
            if name == "run-done":
                expect(page.locator("#video-player")).to_be_visible(timeout=60_000)
            if name == "live":
                wait_js(page, "window.twinLive && window.twinLive.frames > 0")
            assert fits(page), f"{name} at {size}: {wider_than_the_screen(page)}"
            page.screenshot(path=str(SCREENSHOTS / size / f"{name}.png"), full_page=True)


def a_pause_on_a_phone(
    new_context: Callable[..., BrowserContext], alice: Person, site: FixtureSite
) -> tuple[dict[str, Any], Page]:
    """A payment waiting for approval, and alice signed in on a phone."""
    run = alice.start_run(pay_with_approval(site), goal="Pay the supplier")
    assert alice.run(str(run["id"]), wait=25)["status"] == "awaiting_approval"
    page = new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    sign_in(page, alice)
    return run, page


def test_the_phone_menu_is_one_row_keeps_the_pending_count_and_unfolds_the_links(
    new_context: Callable[..., BrowserContext], alice: Person, site: FixtureSite, worker: object
) -> None:
    _run, page = a_pause_on_a_phone(new_context, alice, site)

    header = page.locator("header.nav")
    assert header.bounding_box()["height"] < 60  # type: ignore[index]  # one row, not ~170 px
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_have_attribute("aria-expanded", "false")
    main = page.get_by_role("navigation", name="Main")
    expect(main.get_by_role("link", name=re.compile("Inbox"))).to_be_visible()
    expect(page.locator("#pending-count")).to_have_text("1")
    expect(main.get_by_role("link", name="Runs")).to_be_hidden()
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()

    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    for name in ("Runs", "Skills", "Start a run", "Webhooks"):
        expect(main.get_by_role("link", name=name)).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "phone-menu-open.png"))
    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_be_focused()

    main.get_by_role("link", name=re.compile("Inbox")).click()
    expect(page.locator("#inbox-list article.item")).to_have_count(1)
    assert fits(page)

    # Without JavaScript there is no Menu button: every link stays shown.
    plain = new_context(viewport=PHONE, java_script_enabled=False).new_page()
    sign_in(plain, alice)
    expect(plain.get_by_role("button", name="Menu")).to_be_hidden()
    expect(plain.get_by_role("navigation", name="Main").get_by_role("link", name="Runs")).to_be_visible()


def test_tables_become_cards_with_every_cell_labelled_on_a_phone(
    new_context: Callable[..., BrowserContext], alice: Person, site: FixtureSite, worker: object
) -> None:
    ids = a_tenant_with_something_on_every_page(alice, site)
    page = new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    sign_in(page, alice)
    for path in (
        "/runs/",
        f"/runs/{ids['paused']}/",
        "/webhooks/",
        f"/webhooks/{ids['webhook']}/",
        "/skills/",
        f"/skills/{ids['skill']}/",
    ):
        page.goto(path)
        cells = page.locator(f":is({CARD_TABLES}) td:not(.empty)")
        assert cells.count() > 0, path
        unlabelled = cells.evaluate_all(
            """cells => cells.filter(td => td.offsetParent !== null)
                 .filter(td => ['', 'none', 'normal'].includes(getComputedStyle(td, '::before').content))
                 .map(td => td.textContent.trim().slice(0, 40))"""
        )
        assert unlabelled == [], f"{path}: {unlabelled}"
        assert (
            page.locator(f":is({CARD_TABLES}) thead").first.evaluate(
                "el => el.getBoundingClientRect().height"
            )
            <= 1
        )
        assert fits(page), f"{path}: {wider_than_the_screen(page)}"
    page.goto("/runs/")
    row = page.locator("table.runs tbody tr").first
    expect(row).to_have_css("display", "block")  # a card, not a table row
    wait_js(
        page,
        "getComputedStyle(document.querySelector('table.runs tbody td'), '::before').content"
        " === '\"Status\"'",
    )


def test_the_live_view_fits_a_phone_and_zooms_with_buttons(
    new_context: Callable[..., BrowserContext], alice: Person, site: FixtureSite, worker: object
) -> None:
    run, page = a_pause_on_a_phone(new_context, alice, site)
    page.goto(f"/runs/{run['id']}/live")
    wait_js(page, "window.twinLive && window.twinLive.frames > 0")
    canvas = page.locator("#live-canvas")
    screen = page.locator("#live-screen")
    fit_width = canvas.bounding_box()["width"]  # type: ignore[index]
    assert fit_width <= PHONE["width"]
    assert fits(page)

    page.get_by_role("button", name="Zoom in").click()
    expect(page.locator("#live-zoom-level")).to_have_text("150%")
    page.get_by_role("button", name="Zoom in").click()
    expect(page.locator("#live-zoom-level")).to_have_text("200%")
    assert canvas.bounding_box()["width"] > fit_width * 1.9  # type: ignore[index]
    assert screen.evaluate("el => el.scrollWidth > el.clientWidth")  # scrolls inside its frame
    assert fits(page)  # the page itself still does not scroll sideways
    page.screenshot(path=str(SCREENSHOTS / "phone-live-zoomed.png"))
    page.get_by_role("button", name="Zoom out").click()
    expect(page.locator("#live-zoom-level")).to_have_text("150%")
    page.get_by_role("button", name="Fit").click()
    expect(page.locator("#live-zoom-level")).to_have_text("")
    assert abs(canvas.bounding_box()["width"] - fit_width) < 1  # type: ignore[index]
    expect(page.get_by_role("button", name="Zoom out")).to_be_disabled()
