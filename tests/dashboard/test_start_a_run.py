"""Starting a run from the dashboard: errors where they belong, then the run's own page."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect

from tests.dashboard.conftest import LIVE_TIMEOUT_MS, Person, shoot, sign_in
from tests.site.server import FixtureSite


def test_start_a_run_shows_json_and_step_errors_at_the_program_then_opens_the_run(
    page: Page, olga: Person, site: FixtureSite, worker: object
) -> None:
    sign_in(page, olga)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Start a run").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Start a run")

    page.get_by_label("Goal").fill("Count one click")
    page.get_by_label("Start URL").fill(site.url("/counter"))
    program = page.get_by_label("Step program (JSON)")
    program.fill('[{"action": "goto", "url": ')
    page.get_by_role("button", name="Start the run").click()

    errors = page.locator("#program-errors")
    expect(errors).to_contain_text("this is not valid JSON")
    expect(program).to_have_attribute("aria-invalid", "true")
    expect(program).to_have_attribute("aria-describedby", re.compile(r"\bprogram-errors\b"))
    expect(program).to_be_focused()
    expect(page.get_by_label("Goal")).to_have_value("Count one click")  # nothing typed is lost

    program.fill(json.dumps([{"action": "goto", "url": site.url("/counter")}, {"action": "teleport"}]))
    page.get_by_role("button", name="Start the run").click()

    expect(errors).to_contain_text("Step 2")
    expect(errors).to_contain_text("teleport")
    expect(page.get_by_label("Start URL")).not_to_have_attribute("aria-invalid", "true")
    shoot(page, "start-form-errors")

    program.fill(
        json.dumps(
            [
                {"action": "goto", "url": site.url("/counter")},
                {"action": "click", "selector": "#click", "label": "Click the button"},
                {"action": "assert_text", "text": "Clicks: 1"},
            ]
        )
    )
    page.get_by_role("button", name="Start the run").click()

    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Count one click")
    expect(page.locator(".page-head .badge").first).to_have_text("completed", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#step-2")).to_contain_text("Click the button")
    assert site.count("click") == 1
