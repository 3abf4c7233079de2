"""Four eyes: whoever started a run cannot decide its pauses, in the dashboard or over the API.

It is on by default for a tenant with two or more approvers (acme has alice and dave)."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import BrowserContext, expect

from tests.dashboard.conftest import LIVE_TIMEOUT_MS, Person, shoot, sign_in
from tests.dashboard.flows import pay_with_approval
from tests.site.server import FixtureSite


def test_with_four_eyes_the_approver_who_started_the_run_cannot_decide_it_but_another_can(
    new_context: Callable[..., BrowserContext],
    alice: Person,
    dave: Person,
    site: FixtureSite,
    worker: object,
) -> None:
    assert alice.tenant.four_eyes == "auto"  # nobody turned it on: two approvers are enough
    run = alice.start_run(pay_with_approval(site), goal="Wire the deposit", wait=30)
    assert run["status"] == "awaiting_approval", run

    alice_page = new_context().new_page()
    sign_in(alice_page, alice)
    item = alice_page.locator("article.item", has_text="Wire the deposit")
    item.get_by_role("button", name="Approve").click()

    # The refusal is said where it outlives live refreshes of the list.
    expect(alice_page.locator("#notices .notice-error")).to_contain_text("four eyes")
    expect(item.get_by_role("button", name="Approve")).to_be_visible()
    expect(alice_page.locator("#notices")).not_to_contain_text("You decided")
    shoot(alice_page, "inbox-four-eyes-refused", full_page=False)

    refused = alice.api("POST", f"/api/runs/{run['id']}/approve", {})
    assert refused.status_code == 403
    assert refused.json()["error"] == "four_eyes"
    refused = alice.api("POST", f"/api/runs/{run['id']}/reject", {"reason": "mine"})
    assert refused.status_code == 403
    assert refused.json()["error"] == "four_eyes"
    assert alice.run(run["id"])["status"] == "awaiting_approval"

    # Dave decides; his browser runs no JavaScript at all: the plain form post works the same.
    dave_page = new_context(java_script_enabled=False).new_page()
    sign_in(dave_page, dave)
    dave_item = dave_page.locator("article.item", has_text="Wire the deposit")
    expect(dave_item).to_contain_text("started by alice")
    dave_item.get_by_role("button", name="Approve").click()

    expect(dave_page).to_have_url(re.compile(r"/inbox/$"))
    expect(dave_page.locator("#notices")).to_contain_text("You decided: approved step 2")
    expect(item).to_have_count(0, timeout=LIVE_TIMEOUT_MS)  # gone from alice's inbox too
    done = alice.run(run["id"], wait=20)
    assert done["status"] == "completed", done
