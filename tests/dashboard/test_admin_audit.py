"""An auditor reviews a decision in Django admin, in a real browser: list, filter, the pause with
its screenshot and the decision record, then its run with the video and the trail."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import BrowserContext, expect

from runs.models import RecordingStatus
from tenants.models import Role
from tests.conftest import wait_until
from tests.dashboard.conftest import LIVE_TIMEOUT_MS, Person, shoot, sign_in, wait_js
from tests.dashboard.flows import pay_with_approval
from tests.site.server import FixtureSite


def test_an_auditor_follows_a_decision_from_the_list_to_its_run(
    new_context: Callable[..., BrowserContext],
    alice: Person,
    person: Callable[..., Person],
    site: FixtureSite,
    worker: object,
) -> None:
    run = alice.start_run(pay_with_approval(site), goal="Pay the ACME invoice", wait=30)
    assert run["status"] == "awaiting_approval", run
    approved = alice.api("POST", f"/api/runs/{run['id']}/approve", {"note": "invoice checked"})
    assert approved.status_code == 202
    assert alice.run(run["id"], wait=20)["status"] == "completed"
    from runs.models import Recording

    wait_until(
        lambda: Recording.objects.filter(run_id=run["id"], status=RecordingStatus.READY).exists(),
        what="the video",
        timeout=30,
    )
    ada = person("ada", "acme", Role.AUDITOR)

    page = new_context().new_page()
    sign_in(page, ada)
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Runs, pauses and what was decided")).to_be_visible()
    page.locator("tr.model-approval").get_by_role("link", name="Approvals").click()
    page.locator("#changelist-filter").get_by_role("link", name="Approval", exact=True).first.click()
    expect(page.locator("#result_list")).to_contain_text("Pay the ACME invoice")
    expect(page.locator("#result_list")).to_contain_text("alice")
    page.locator("#result_list tbody tr").first.locator("th a").click()

    expect(page.get_by_text("invoice checked")).to_be_visible()
    expect(page.locator("fieldset", has_text="The decision")).to_contain_text("API")
    shot = page.locator(".twin-shot img")
    expect(shot).to_be_visible()
    assert page.evaluate("(img) => img.naturalWidth", shot.element_handle()) > 100
    expect(page.locator(".twin-page-text")).to_contain_text("Pay")
    expect(page.get_by_role("button", name="Save")).to_have_count(0)  # read-only
    shoot(page, "admin-approval")

    page.get_by_role("link", name="Pay the ACME invoice").first.click()
    expect(page).to_have_url(re.compile(r"/admin/runs/run/[0-9a-f-]+/change/$"))
    video = page.locator("#video-player")
    expect(video).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    wait_js(page, "document.getElementById('video-player').readyState >= 1")
    chapter = page.locator("#run-video [data-step='3']")  # the chapters seek here as well
    target = float(chapter.get_attribute("data-seek") or "0")
    # Click it and pause at once: the video lasts a second, it would be over before a check.
    chapter.evaluate("(button) => { button.click(); document.getElementById('video-player').pause(); }")
    wait_js(
        page,
        "(target) => { const v = document.getElementById('video-player');"
        " return !v.seeking && Math.abs(v.currentTime - target) < 0.1; }",
        target,
    )
    page.mouse.move(0, 0)
    wait_js(page, "document.getElementById('video-player').readyState >= 3")
    page.wait_for_timeout(1500)  # the player's spinner fades out slowly after play() and pause()
    expect(page.locator(".inline-group")).to_contain_text("assert_text")
    thumb = page.locator(".twin-pauses img")  # the pause, with its screenshot, links to its page
    expect(thumb).to_have_count(1)
    assert page.evaluate("(img) => img.complete && img.naturalWidth", thumb.element_handle()) > 100
    expect(page.locator(".twin-pauses")).to_contain_text("Approved by alice (API)")
    shoot(page, "admin-run")

    page.get_by_role("link", name=re.compile(r"\d+ events")).click()
    expect(page.locator("#result_list")).to_contain_text("approval.decided")
    expect(page.locator("#result_list")).to_contain_text("video.ready")
