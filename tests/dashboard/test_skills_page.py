"""Skills as a person meets them: a completed run saved as a skill from its page (the preview
suggests the email it typed as a parameter), the skill run from its generated form (a missing
value is refused at its field), and the skill's page charting the run."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.dashboard.conftest import LIVE_TIMEOUT_MS, Person, shoot, sign_in
from tests.dashboard.test_content_security_policy import Watch
from tests.site.server import FixtureSite
from tests.skill_factories import SIGN_UP_TESTID, add_version, finished_run, make_skill, signup_steps


def echo_an_email(site: FixtureSite) -> list[dict[str, object]]:
    return [
        {"action": "goto", "url": site.url("/echo"), "label": "Open the echo page"},
        {"action": "fill", "selector": "#v", "value": "ann@example.com", "label": "Type the email"},
        {"action": "click", "selector": "#send", "label": "Send it"},
        {"action": "assert_text", "text": "You said ann@example.com", "label": "Check it was heard"},
        {"action": "extract", "selector": "#said", "name": "said", "label": "Read the answer"},
    ]


def test_save_a_run_as_a_skill_run_it_from_its_form_and_see_it_charted(
    page: Page, olga: Person, site: FixtureSite, worker: object
) -> None:
    source = olga.start_run(echo_an_email(site), goal="Echo an email", wait=40)
    assert source["status"] == "completed", source

    watch = Watch(page)  # the strict Content Security Policy: not one violation on these pages
    sign_in(page, olga)
    page.goto(f"/runs/{source['id']}/")
    page.get_by_role("link", name="Save as skill").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Save as skill")
    expect(page.locator(".skill-step")).to_have_count(5)
    expect(page.locator("#skill-step-2")).to_contain_text("Type the email")
    suggestion = page.locator(".suggestion").filter(has_text="ann@example.com")
    expect(suggestion).to_have_count(1)
    suggestion.get_by_role("checkbox").check()
    suggestion.locator("input.param-name").fill("email")
    page.get_by_label("Name", exact=True).fill("Echo an email")
    page.get_by_label("Slug").fill("echo-email")
    watch.check("the save-as-skill preview")
    shoot(page, "skills-save-preview")
    page.get_by_role("button", name="Save the skill").click()

    expect(page).to_have_url(re.compile(r"/skills/echo-email/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Echo an email")
    expect(page.locator("#skill-step-2 mark.tpl-params")).to_have_text("params.email")
    expect(page.locator("#skill-step-4 mark.tpl-params")).to_have_text("params.email")
    expect(page.locator("svg.chart")).to_have_count(0)  # not run yet

    page.get_by_role("link", name="Run this skill").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Run Echo an email")
    email = page.get_by_label("email")
    page.get_by_role("button", name="Run the skill").click()  # nothing typed: refused at the field
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#param-email-errors")).to_be_visible()
    watch.check("the run form")
    shoot(page, "skills-run-form-errors")
    email.fill("bea@example.com")
    page.get_by_role("button", name="Run the skill").click()

    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}/$"))
    replay = olga.run(page.url.rstrip("/").rsplit("/", 1)[-1], wait=40)
    assert replay["status"] == "completed", (replay["error"], replay["steps"])
    assert replay["skill"] == {"slug": "echo-email", "version": 1}
    assert replay["params"] == {"email": "bea@example.com"}
    assert replay["outputs"] == {"said": "You said bea@example.com"}
    expect(page.locator(".page-head .badge").first).to_have_text("completed", timeout=LIVE_TIMEOUT_MS)
    # The page said the email typed in the form, not the source run's.
    expect(page.locator("#run-body")).to_contain_text("You said bea@example.com")
    expect(page.get_by_role("link", name="Echo an email")).to_be_visible()

    page.get_by_role("link", name="Echo an email").click()
    expect(page).to_have_url(re.compile(r"/skills/echo-email/$"))
    points = page.locator("svg.chart-duration-s circle.point")
    expect(points).to_have_count(1)
    expect(page.locator("svg.chart-amount circle.point")).to_have_count(1)
    expect(page.locator("section[aria-labelledby=runs-h] tbody tr")).to_have_count(1)
    watch.check("the skill page with its chart")
    shoot(page, "skills-detail")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Skills").click()
    row = page.locator("#skill-echo-email")
    expect(row).to_contain_text("Echo an email")
    expect(row.locator("td").nth(2)).to_have_text("1")  # runs
    expect(row.locator("td").nth(3)).to_have_text("100%")
    shoot(page, "skills-list")


def test_the_versions_show_what_a_repair_changed_old_against_new(page: Page, alice: Person) -> None:
    skill = make_skill(alice.tenant, user=alice.user)
    first = add_version(skill)
    add_version(skill, steps=signup_steps(button=SIGN_UP_TESTID, label="Press Sign up"), changed_steps=[4])
    finished_run(first, seconds=3, user=alice.user)

    sign_in(page, alice)
    page.goto("/skills/sign-up/")

    expect(page.locator("#skill-step-4")).to_have_class(re.compile(r"\bchanged\b"))
    diff = page.locator("#version-2 table.diff")
    expect(diff.locator("caption")).to_have_text("What changed since version 1")
    expect(diff.locator("tbody.diff-step")).to_have_count(1)
    label = diff.locator("tr").filter(has=page.get_by_role("rowheader", name="label", exact=True))
    expect(label.locator("td.old.changed")).to_have_text("Sign up")
    expect(label.locator("td.new.changed")).to_have_text("Press Sign up")
    expect(page.locator("#version-1")).to_contain_text("The first version.")
    page.locator("#versions-h").scroll_into_view_if_needed()
    shoot(page, "skills-versions")
