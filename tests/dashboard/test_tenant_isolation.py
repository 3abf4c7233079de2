"""A user of another tenant sees none of acme's runs: not by URL, not in lists, not live."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from runs.models import Run
from tenants.models import Role
from tests.dashboard.conftest import Person, sign_in, wait_live
from tests.dashboard.flows import pay_with_approval
from tests.site.server import FixtureSite


def test_a_user_of_tenant_b_sees_none_of_tenant_a_s_runs(
    page: Page, alice: Person, carol: Person, site: FixtureSite, worker: object
) -> None:
    sign_in(page, carol)
    wait_live(page)
    run = alice.start_run(pay_with_approval(site), goal="Acme secret payment", wait=30)
    assert run["status"] == "awaiting_approval", run
    approval_id = run["pending_step"]["approval_id"]

    # Her inbox heard nothing of it (give a live update the time to arrive, were there one).
    page.wait_for_timeout(500)
    expect(page.locator("#pending-count")).to_have_text("0")
    expect(page.get_by_text("Nothing is waiting for you")).to_be_visible()
    page.reload()
    expect(page.get_by_text("Acme secret payment")).to_have_count(0)

    page.goto("/runs/")
    expect(page.locator("table.runs")).to_contain_text("No runs yet")
    expect(page.get_by_text("Acme secret payment")).to_have_count(0)
    page.goto("/runs/?status=awaiting_approval")
    expect(page.get_by_text("Acme secret payment")).to_have_count(0)

    for path in (f"/runs/{run['id']}/", f"/runs/{run['id']}/live", f"/api/screenshots/{approval_id}"):
        response = page.goto(path)
        assert response is not None and response.status == 404, path
        expect(page.get_by_text("Acme secret payment")).to_have_count(0)

    # Nor can she listen to it: the run's socket is refused at the handshake.
    heard = page.evaluate(
        """(runId) => new Promise((resolve) => {
            const socket = new WebSocket(`ws://${location.host}/ws/runs/${runId}/`);
            let opened = false;
            socket.onopen = () => { opened = true; };
            socket.onclose = () => resolve(opened);
        })""",
        run["id"],
    )
    assert heard is False


def test_a_member_of_two_tenants_switches_between_them_and_sees_each_one_s_runs(
    page: Page, alice: Person, carol: Person, person: Callable[..., Person]
) -> None:
    both = person("alice", "globex", Role.VIEWER)  # alice joins globex as a viewer
    make_run(alice, "Acme's run")
    make_run(carol, "Globex's run")

    sign_in(page, alice, next_path="/runs/")
    expect(page.get_by_text("Acme's run")).to_be_visible()
    expect(page.get_by_text("Globex's run")).to_have_count(0)
    tenant = page.get_by_label("Tenant")
    expect(tenant.locator("option")).to_have_text(["Acme (approver)", "Globex (viewer)"])

    tenant.select_option("globex")
    expect(page).to_have_url(re.compile(r"/runs/$"))  # nothing happens until she asks
    page.get_by_role("button", name="Switch").click()

    expect(page.get_by_text("Globex's run")).to_be_visible()
    expect(page.get_by_text("Acme's run")).to_have_count(0)
    expect(page.get_by_label("Tenant")).to_have_value("globex")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name=re.compile("^Inbox"))).to_have_count(0)  # a viewer there
    assert both.tenant.slug == "globex"


def make_run(owner: Person, goal: str) -> Run:
    program = [{"action": "goto", "url": "https://shop.example/"}]
    return Run.objects.create(
        tenant=owner.tenant, created_by=owner.user, goal=goal, program=program, step_total=1
    )
