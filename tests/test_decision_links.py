"""One-click decision links: signed, expiring, for approvers only, recorded with channel ``link``;
and the email that carries them when a tenant configures approver addresses."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.utils import timezone

from approvals.models import Approval, ApprovalStatus
from approvals.notify import pause_email_send
from runs.models import RunEvent
from tests.conftest import start_run, wait_run, wait_until
from tests.test_state_machine import paused_run

pytestmark = pytest.mark.usefixtures("private_urls")


def browser_for(persona=None) -> Client:
    client = Client(HTTP_USER_AGENT="Mail client preview")
    if persona is not None:
        client.force_login(persona.user)
    return client


def link_of(persona, run) -> str:
    url = persona.get(f"/api/runs/{run.pk}").json()["pending_step"]["decision_url"]
    assert url.startswith("http://testserver/decide/")
    return url.removeprefix("http://testserver")


def test_opening_a_link_shows_the_pause_and_decides_nothing_until_confirmed(alice):
    run, approval = paused_run(alice.tenant, alice.user)
    link = link_of(alice, run)
    me = browser_for(alice)

    page = me.get(link + "?action=approve")

    assert page.status_code == 200
    assert "Pay $42?" in page.content.decode()
    assert "step 2 of 3" in page.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING

    decided = me.post(link, {"action": "approve", "note": "from my phone"}, REMOTE_ADDR="192.0.2.44")

    assert decided.status_code == 200
    assert "You decided" in decided.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    assert approval.channel == "link"
    assert approval.decided_by == alice.user
    assert approval.decided_ip == "192.0.2.44"
    assert approval.note == "from my phone"

    again = me.post(link, {"action": "reject"})
    assert "decides nothing any more" in again.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    assert RunEvent.objects.filter(run=run, type="approval.decided").count() == 1
    assert alice.get("/api/approvals?status=approved").json()[0]["decision_url"] is None


def test_a_link_asks_for_sign_in_and_admits_only_approvers_of_its_tenant(alice, bob, carol):
    run, approval = paused_run(alice.tenant, alice.user)
    link = link_of(alice, run)

    anonymous = browser_for().get(link)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/login/?next=/decide/")
    assert browser_for(bob).get(link).status_code == 403  # a viewer of acme
    assert browser_for(carol).post(link, {"action": "approve"}).status_code == 403  # globex
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def test_a_link_takes_the_input_the_step_needs(alice):
    run, approval = paused_run(alice.tenant, alice.user, kind="input")
    link = link_of(alice, run)
    me = browser_for(alice)

    wrong = me.post(link, {"action": "approve", "input": "12ab"})
    right = me.post(link, {"action": "approve", "input": "424242"})

    assert wrong.status_code == 400
    assert "does not match the pattern" in wrong.content.decode()
    assert right.status_code == 200
    approval.refresh_from_db()
    assert (approval.status, approval.input_length, approval.channel) == ("approved", 6, "link")


def test_a_changed_or_expired_link_does_not_work(alice):
    run, approval = paused_run(alice.tenant, alice.user)
    link = link_of(alice, run)
    me = browser_for(alice)

    tampered = me.get(link[:-3] + ("aaa" if not link.endswith("aaa") else "bbb"))
    assert tampered.status_code == 404
    assert "does not work" in tampered.content.decode()

    Approval.objects.filter(pk=approval.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = me.post(link, {"action": "approve"})
    assert expired.status_code == 410
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def test_a_pause_emails_its_links_to_the_tenant_approver_addresses(alice, django_capture_on_commit_callbacks):
    alice.tenant.approval_emails = "ops@acme.example\nfinance@acme.example"
    alice.tenant.save(update_fields=["approval_emails"])
    with (
        mock.patch("approvals.tasks.pause_email_task.apply_async") as queued,
        django_capture_on_commit_callbacks(execute=True),
    ):
        run, approval = paused_run(alice.tenant, alice.user)
    queued.assert_called_once_with(args=(str(approval.pk),), queue="webhooks")

    assert pause_email_send(str(approval.pk)) == 2

    (email,) = mail.outbox
    assert email.to == ["ops@acme.example", "finance@acme.example"]
    assert "Step 2 of 3 needs a decision" in email.subject
    links = re.findall(r"http://127\.0\.0\.1:\d+(/decide/\S+)", str(email.body))
    assert [link.split("?")[1] for link in links] == ["action=approve", "action=reject"]
    assert browser_for(alice).get(links[0]).status_code == 200
    notified = RunEvent.objects.get(run=run, type="approval.notified")
    assert notified.data == {"approval_id": str(approval.pk), "channel": "email", "recipients": 2}
    assert "acme.example" not in str(notified.data)  # addresses are not copied into the trail


def test_no_addresses_no_email(alice, django_capture_on_commit_callbacks):
    with (
        mock.patch("approvals.tasks.pause_email_task.apply_async") as queued,
        django_capture_on_commit_callbacks(execute=True),
    ):
        paused_run(alice.tenant, alice.user)
    queued.assert_not_called()


def test_an_emailed_link_approves_a_real_paused_run(alice, site, webhook_worker):
    alice.tenant.approval_emails = "ops@acme.example"
    alice.tenant.save(update_fields=["approval_emails"])
    outbox = Path(settings.VAR_DIR) / "mail"
    before = set(outbox.glob("*")) if outbox.exists() else set()
    steps = [
        {"action": "goto", "url": site.url("/pay")},
        {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay $42?"}},
        {"action": "assert_text", "text": "Payment complete"},
    ]

    run = start_run(alice, steps)
    assert run["status"] == "awaiting_approval"
    wait_until(lambda: outbox.exists() and set(outbox.glob("*")) - before, what="the pause email", timeout=15)
    time.sleep(0.2)  # the file is written in one go, but give it a moment
    (written,) = set(outbox.glob("*")) - before
    found = re.search(r"Approve: http://[^/]+(/decide/\S+)", written.read_text())
    assert found is not None
    approve = found.group(1)

    assert browser_for(alice).post(approve, {"action": "approve"}).status_code == 200

    done = wait_run(alice, run["id"])
    assert done["status"] == "completed"
    assert site.count("payment") == 1
    assert Approval.objects.get(run_id=run["id"]).channel == "link"
