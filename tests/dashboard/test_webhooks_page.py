"""Webhooks in a real browser: an operator adds an endpoint, copies its secret (shown once), a run
pauses, and the endpoint's page shows the signed message arriving, attempt by attempt."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import BrowserContext, Page, expect
from standardwebhooks import Webhook

from tests.dashboard.conftest import LIVE_TIMEOUT_MS, Person, shoot, sign_in
from tests.dashboard.flows import pay_with_approval
from tests.site.server import FixtureSite
from tests.webhook_receiver import Receiver
from webhooks.models import Endpoint
from webhooks.services import endpoint_create


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(mode="flaky", fail_first=1).start()  # each message: refused once, then accepted
    yield r
    r.stop()


def an_endpoint_that_kept_failing(person: Person) -> None:
    """Another endpoint of the tenant, switched off after failing again and again."""
    endpoint, _ = endpoint_create(
        tenant=person.tenant, url="https://crm.example.com/hooks/twin", events=["run.completed"]
    )
    now = timezone.now()
    Endpoint.objects.filter(pk=endpoint.pk).update(
        description="CRM sync",
        enabled=False,
        disabled_reason="disabled after 20 failed attempts in a row (last: 502)",
        failure_streak=20,
        last_success_at=now - timedelta(days=2),
        last_failure_at=now - timedelta(minutes=7),
    )


def test_an_operator_adds_an_endpoint_copies_the_secret_and_watches_a_pause_delivered(
    new_context: object,
    olga: Person,
    alice: Person,
    site: FixtureSite,
    webhook_worker: object,
    receiver: Receiver,
) -> None:
    an_endpoint_that_kept_failing(olga)
    context: BrowserContext = new_context(permissions=["clipboard-read", "clipboard-write"])  # type: ignore[operator]
    page: Page = context.new_page()
    sign_in(page, olga)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Webhooks")
    expect(page.locator("table.endpoints")).to_contain_text("disabled after 20 failed attempts")
    page.get_by_label("URL").fill(receiver.url)
    for event in ("run.awaiting_approval", "run.resumed", "run.completed"):
        page.get_by_role("checkbox", name=event).check()
    page.get_by_label("Description").fill("Ops chat bot")
    page.get_by_role("button", name="Add endpoint").click()

    shown = page.locator("#webhook-secret")
    expect(shown).to_have_text(re.compile(r"^whsec_[A-Za-z0-9+/=]{32}$"))
    expect(page.get_by_role("alert")).to_contain_text("you won't see it again")
    page.get_by_role("button", name="Copy").click()
    expect(page.locator(".secret-row .copied")).to_have_text("Copied.")
    secret = page.evaluate("navigator.clipboard.readText()")
    assert secret == shown.inner_text()
    row = page.locator("table.endpoints tr", has_text=receiver.url)
    expect(row).to_contain_text("enabled")
    expect(row).to_contain_text("Ops chat bot")
    shoot(page, "webhooks")

    page.goto("/webhooks/")
    expect(page.locator("#webhook-secret")).to_have_count(0)
    assert secret not in page.content()

    run = olga.start_run(pay_with_approval(site), goal="Pay invoice 12", wait=30)
    assert run["status"] == "awaiting_approval", run
    page.get_by_role("link", name=receiver.url).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(receiver.url)
    paused = page.locator("tbody.delivery", has_text="run.awaiting_approval")
    expect(paused.locator(".badge")).to_have_text("delivered", timeout=LIVE_TIMEOUT_MS)
    expect(paused.locator("tr.attempt")).to_have_count(2)
    expect(paused.locator("tr.attempt").nth(0)).to_contain_text("503")
    expect(paused.locator("tr.attempt").nth(1)).to_contain_text("204")
    expect(page.locator("#endpoint-facts")).to_contain_text("just now")  # refreshed with the list

    accepted = receiver.wait_for(1)[0]
    payload = Webhook(secret).verify(accepted.body, accepted.headers)  # the copied secret verifies it
    assert payload["type"] == "run.awaiting_approval"
    assert payload["data"]["run"]["id"] == run["id"]
    expect(paused.locator("code.msg-id")).to_have_text(accepted.id)
    expect(paused.get_by_role("link", name=re.compile(run["id"][:8]))).to_have_attribute(
        "href", f"/runs/{run['id']}/"
    )

    assert alice.api("POST", f"/api/runs/{run['id']}/approve", {}).status_code == 202
    for event in ("run.resumed", "run.completed"):
        expect(page.locator("tbody.delivery", has_text=event).locator(".badge")).to_have_text(
            "delivered", timeout=LIVE_TIMEOUT_MS
        )
    shoot(page, "webhook-deliveries")
