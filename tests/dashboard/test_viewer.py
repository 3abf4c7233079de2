"""A viewer looks, and only looks: no decide buttons, and the server refuses a crafted decision."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from approvals.models import Approval
from tests.dashboard.conftest import LIVE_TIMEOUT_MS, Person, csrf_token, sign_in
from tests.dashboard.flows import pay_with_approval
from tests.site.server import FixtureSite


def test_a_viewer_sees_the_pause_without_decide_buttons_and_a_crafted_post_is_refused(
    page: Page, alice: Person, bob: Person, site: FixtureSite, worker: object
) -> None:
    run = alice.start_run(pay_with_approval(site), goal="Pay invoice 7", wait=30)
    assert run["status"] == "awaiting_approval", run
    approval_id = run["pending_step"]["approval_id"]

    sign_in(page, bob)
    expect(page).to_have_url(re.compile(r"/runs/$"))  # viewers land on the runs list
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Start a run")).to_have_count(0)
    row = page.locator(f"#run-{run['id']}")
    expect(row).to_contain_text("awaiting approval")

    page.goto("/inbox/")
    item = page.locator(f"#approval-{approval_id}")
    expect(item).to_contain_text("Pay $42.00?")
    expect(item).to_contain_text("Waiting for an approver")
    expect(item.get_by_role("button")).to_have_count(0)

    row_link = page.get_by_role("link", name="Pay invoice 7")
    row_link.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Pay invoice 7")
    expect(page.get_by_role("heading", name="Waiting for a decision")).to_be_visible()
    expect(page.locator("#run-body").get_by_role("button")).to_have_count(0)  # nor cancel

    refused = page.request.post(
        f"/inbox/{approval_id}/decide",
        form={"action": "approve", "csrfmiddlewaretoken": csrf_token(page)},
        headers={"HX-Request": "true", "Referer": page.url},
    )
    assert refused.status == 403, refused.text()
    assert "CSRF" not in refused.text()
    cancel = page.request.post(
        f"/runs/{run['id']}/cancel",
        form={"csrfmiddlewaretoken": csrf_token(page)},
        headers={"Referer": page.url},
    )
    assert cancel.status == 403

    assert alice.run(run["id"])["status"] == "awaiting_approval"
    assert Approval.objects.get(pk=approval_id).status == "pending"
    page.reload()
    expect(page.locator(".page-head .badge").first).to_have_text("awaiting approval", timeout=LIVE_TIMEOUT_MS)
