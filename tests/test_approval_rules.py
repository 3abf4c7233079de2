"""Approval rules (issue 12, point 3): a gate may need N approvals from a group of approvers; the run
resumes on the N-th, any rejection ends it, each approval is its own record, the same person cannot
give two of the N, and a pause that waits too long is escalated to a second group (email + webhook).
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.utils import timezone

from approvals.models import Approval, ApprovalStatus, ApprovalVote
from approvals.rules import rule_for
from approvals.services import escalate_overdue
from approvals.tasks import expire_pauses_task
from runs.models import Run, RunEvent
from tenants.models import Role, Tenant
from tests.conftest import Persona, start_run, wait_run
from tests.test_decision_links import link_of
from tests.test_state_machine import paused_run
from webhooks.models import Delivery

pytestmark = pytest.mark.usefixtures("private_urls")


def two_person_program(site: Any, **rule: Any) -> list[dict[str, Any]]:
    gate = {"kind": "approval", "prompt": "Pay $42?", "required": 2, **rule}
    return [
        {"action": "goto", "url": site.url("/pay")},
        {"action": "click", "selector": "#pay", "gate": gate},
        {"action": "assert_text", "text": "Payment complete"},
    ]


def ruled_pause(persona: Persona, **rule: Any) -> tuple[Run, Approval]:
    """A run paused at its approval gate (no browser, no worker), with the rule given."""
    run, approval = paused_run(persona.tenant, persona.user)
    Approval.objects.filter(pk=approval.pk).update(**rule)
    approval.refresh_from_db()
    return run, approval


@pytest.fixture
def dave(alice: Persona) -> Persona:
    return Persona("dave", "acme", Role.APPROVER)


@pytest.fixture
def erin(alice: Persona) -> Persona:
    return Persona("erin", "acme", Role.APPROVER)


# -- two of a group, end to end ----------------------------------------------------------------------
def test_a_gate_that_needs_two_approvals_resumes_on_the_second_and_pays_once(alice, dave, erin, site, worker):
    run = start_run(alice, two_person_program(site, approvers=["dave", "erin"]))
    assert run["status"] == "awaiting_approval", run
    assert run["pending_step"]["approvals"] == {"required": 2, "given": 0, "by": []}
    assert run["pending_step"]["approvers"] == ["dave", "erin"]

    first = dave.post(f"/api/runs/{run['id']}/approve", {"note": "looks right"})
    assert first.status_code == 202, first.content
    assert first.json()["status"] == "awaiting_approval"
    assert first["X-Twin-Status"] == "awaiting_approval"
    assert first.json()["pending_step"]["approvals"] == {"required": 2, "given": 1, "by": ["dave"]}

    again = dave.post(f"/api/runs/{run['id']}/approve")
    assert again.status_code == 409, again.content
    assert again.json()["error"] == "already_approved"
    assert "same person cannot give two" in again.json()["detail"]

    second = erin.post(f"/api/runs/{run['id']}/approve")
    assert second.status_code == 202, second.content
    assert wait_run(alice, run["id"])["status"] == "completed"
    assert site.count("payment") == 1

    approval = Approval.objects.get(run_id=run["id"])
    assert approval.status == ApprovalStatus.APPROVED and approval.decided_by == erin.user
    votes = list(ApprovalVote.objects.filter(approval=approval).values_list("user__username", "note"))
    assert votes == [("dave", "looks right"), ("erin", "")]
    given = RunEvent.objects.filter(run_id=run["id"], type="approval.given").order_by("pk")
    assert [(e.actor.username if e.actor else None, e.data["given"], e.data["required"]) for e in given] == [
        ("dave", 1, 2),
        ("erin", 2, 2),
    ]
    assert RunEvent.objects.filter(run_id=run["id"], type="run.resumed").count() == 1
    listed = alice.get("/api/approvals").json()[0]
    assert listed["approvals"] == {"required": 2, "given": 2, "by": ["dave", "erin"]}
    assert listed["decision"] == "approved"


def test_someone_outside_the_approvers_gets_403_with_a_sentence(alice, dave, erin):
    frank = Persona("frank", "acme", Role.APPROVER)
    run, _ = ruled_pause(alice, approvers=["dave", "erin"], required=2)

    for verb in ("approve", "reject"):
        refused = frank.post(f"/api/runs/{run.pk}/{verb}")
        assert refused.status_code == 403, refused.content
        assert refused.json()["error"] == "not_an_approver"
        assert refused.json()["detail"] == "only dave, erin may decide this pause; frank is not one of them"
    assert not ApprovalVote.objects.exists()
    browser = Client()
    browser.force_login(frank.user)
    inbox = browser.get("/inbox/").content.decode()
    assert "Only dave, erin may decide this pause." in inbox
    assert 'value="approve"' not in inbox  # no button that could only be refused


def test_one_rejection_ends_the_run_whatever_was_approved_before(alice, dave, erin):
    run, approval = ruled_pause(alice, required=2)
    assert dave.post(f"/api/runs/{run.pk}/approve").status_code == 202

    rejected = erin.post(f"/api/runs/{run.pk}/reject", {"reason": "wrong amount"})

    assert rejected.status_code == 200, rejected.content
    assert rejected.json()["status"] == "rejected"
    approval.refresh_from_db()
    assert (approval.status, approval.decision, approval.decided_by) == ("rejected", "rejected", erin.user)
    assert approval.approvals_given == 1


def test_the_starter_still_cannot_give_one_of_the_approvals_under_four_eyes(alice, dave, erin):
    run, _ = ruled_pause(alice, required=2)

    refused = alice.post(f"/api/runs/{run.pk}/approve")

    assert refused.status_code == 403 and refused.json()["error"] == "four_eyes"


def test_with_the_default_of_one_the_contract_answers_are_unchanged(alice):
    run, _ = paused_run(alice.tenant, alice.user)
    shown = alice.get(f"/api/runs/{run.pk}").json()["pending_step"]
    assert shown["approvals"] == {"required": 1, "given": 0, "by": []}

    approved = alice.post(f"/api/runs/{run.pk}/approve")
    assert approved.status_code == 202 and approved.json()["status"] == "running"
    assert approved.json()["pending_step"] is None
    second = alice.post(f"/api/runs/{run.pk}/approve")
    assert second.status_code == 409 and second.json()["error"] == "conflict"
    assert not RunEvent.objects.filter(run_id=run.pk, type="approval.given").exists()
    assert ApprovalVote.objects.filter(approval__run=run).count() == 1  # its own record all the same


def test_a_decision_link_counts_an_approval_and_says_how_many_more(alice, dave, erin):
    run, approval = ruled_pause(alice, required=2, approvers=["dave", "erin"])
    link = link_of(alice, run)
    as_dave = Client()
    as_dave.force_login(dave.user)

    shown = as_dave.get(link + "?action=approve").content.decode()
    assert "0 of 2</strong> approvals given; waiting for 2 more." in shown
    first = as_dave.post(link, {"action": "approve"}).content.decode()
    assert "You approved: 1 of 2 approvals given; it waits for 1 more." in first
    again = as_dave.post(link, {"action": "approve"})
    assert again.status_code == 400
    assert "the same person cannot give two of them" in again.content.decode()

    as_erin = Client()
    as_erin.force_login(erin.user)
    last = as_erin.post(link, {"action": "approve"}).content.decode()
    assert "You decided: Approved" in last and "2 of 2</strong> approvals given (dave, erin)." in last
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED and approval.channel == "link"


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_last_approvals_resume_the_run_once(private_urls, monkeypatch):
    # Committed for real here (threads): no task may reach a worker another test file started.
    monkeypatch.setattr("runs.services._enqueue_start", lambda run_id: None)
    monkeypatch.setattr("approvals.services._enqueue_resume", lambda run: None)
    alice = Persona("alice", "acme", Role.APPROVER)
    dave, erin, frank = (Persona(name, "acme", Role.APPROVER) for name in ("dave", "erin", "frank"))
    run, _ = ruled_pause(alice, required=2)
    assert dave.post(f"/api/runs/{run.pk}/approve").status_code == 202
    answers: dict[str, Any] = {}
    start = threading.Barrier(2)

    def approve(persona: Persona) -> None:
        start.wait()
        try:
            answers[persona.user.username] = persona.post(f"/api/runs/{run.pk}/approve")
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(p,)) for p in (erin, frank)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    codes = sorted(a.status_code for a in answers.values())
    assert codes == [202, 409], {k: a.content for k, a in answers.items()}
    assert RunEvent.objects.filter(run_id=run.pk, type="run.resumed").count() == 1
    assert RunEvent.objects.filter(run_id=run.pk, type="approval.decided").count() == 1
    assert ApprovalVote.objects.filter(approval__run=run).count() == 2


# -- escalation ------------------------------------------------------------------------------------------
def test_a_pause_waiting_past_escalate_after_notifies_the_second_group_once(alice, dave, erin):
    erin.user.email = "erin@acme.test"
    erin.user.save(update_fields=["email"])
    endpoint = alice.post(
        "/api/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["approval.escalated"]}
    )
    assert endpoint.status_code == 201, endpoint.content
    run, approval = ruled_pause(
        alice, escalate_at=timezone.now() - timedelta(seconds=1), escalate_to=["erin"]
    )

    assert escalate_overdue() == 1
    assert escalate_overdue() == 0  # once

    approval.refresh_from_db()
    assert approval.escalated_at is not None and approval.status == ApprovalStatus.PENDING
    (event,) = RunEvent.objects.filter(run_id=run.pk, type="approval.escalated")
    assert event.data["escalate_to"] == ["erin"] and event.data["approval_id"] == str(approval.pk)
    (delivery,) = Delivery.objects.filter(run_id=run.pk)
    assert delivery.event_type == "approval.escalated"
    assert '"escalate_to":["erin"]' in delivery.body

    from approvals.notify import escalation_email_send

    assert escalation_email_send(str(approval.pk)) == 1
    (message,) = mail.outbox
    assert message.to == ["erin@acme.test"]
    assert message.subject.startswith("[Twin] Still waiting: step 2 of 3")
    assert "you are asked as its escalation group" in message.body


def test_the_periodic_sweep_escalates_but_not_a_pause_decided_first(alice, dave):
    run, approval = ruled_pause(alice, escalate_at=timezone.now() - timedelta(seconds=5))
    paused_run(alice.tenant, alice.user)  # another pause, not due
    assert dave.post(f"/api/runs/{run.pk}/approve").status_code == 202

    expire_pauses_task()

    assert not RunEvent.objects.filter(type="approval.escalated").exists()
    assert Approval.objects.get(pk=approval.pk).escalated_at is None


# -- where the rule comes from ------------------------------------------------------------------------
class FakePause:
    def __init__(self, kind: str = "approval", cause: str = "gate", expires_in: int = 3600) -> None:
        self.kind, self.cause, self.expires_in = kind, cause, expires_in


def test_a_gate_that_says_nothing_takes_the_tenants_defaults(alice, dave, erin):
    tenant = Tenant.objects.get(pk=alice.tenant.pk)
    tenant.default_approvers = ["dave", "erin"]
    tenant.default_required = 2
    tenant.default_escalate_after = 600
    tenant.full_clean()
    tenant.save()
    run = Run(tenant=tenant)

    rule = rule_for(run, {"action": "click", "gate": {"kind": "approval"}}, FakePause())
    assert (rule["approvers"], rule["required"], rule["escalate_to"]) == (["dave", "erin"], 2, None)
    assert rule["escalate_at"] > timezone.now() + timedelta(seconds=590)

    own = rule_for(
        run, {"gate": {"kind": "approval", "approvers": "role:approver", "required": 1}}, FakePause()
    )
    assert (own["approvers"], own["required"]) == (None, 1)
    # An input or a choice is one person's answer, whatever the default says.
    assert rule_for(run, {"gate": {"kind": "input"}}, FakePause(kind="input"))["required"] == 1
    # A blocked step (a choice) is not its gate's pause: the tenant's approvers, one answer.
    blocked = rule_for(
        run, {"gate": {"kind": "approval", "approvers": ["dave"]}}, FakePause(kind="choice", cause="blocked")
    )
    assert (blocked["approvers"], blocked["required"]) == (["dave", "erin"], 1)


def test_a_tenants_default_rule_is_checked_where_it_is_edited(alice, dave):
    tenant = Tenant.objects.get(pk=alice.tenant.pk)
    tenant.default_approvers = ["dave", "zed"]
    tenant.default_required = 3
    tenant.default_escalate_to = "role:owner"

    with pytest.raises(ValidationError) as refused:
        tenant.full_clean()

    errors = refused.value.message_dict
    assert errors["default_approvers"] == ["not approvers of this tenant: zed"]
    assert errors["default_required"] == ["3 approvals but only 2 approvers are named"]
    assert "role:approver" in errors["default_escalate_to"][0]


# -- the gate's fields are checked up front (400) ---------------------------------------------------------
@pytest.mark.parametrize(
    ("gate", "field", "words"),
    [
        ({"kind": "approval", "required": "2"}, "gate.required", "whole number from 1 to 20"),
        (
            {"kind": "approval", "required": 3, "approvers": ["dave"]},
            "gate.required",
            "needs 3 approvals but only 1 approver named can give one",
        ),
        (
            {"kind": "approval", "required": 2, "approvers": ["alice", "dave"]},
            "gate.required",
            "only 1 approver named can give one (four eyes: alice starts the run)",
        ),
        (
            {"kind": "approval", "required": 2},
            "gate.required",
            "only 1 approver in the tenant can give one (four eyes: alice starts the run)",
        ),
        ({"kind": "input", "required": 2}, "gate.required", "only an approval gate"),
        ({"kind": "approval", "approvers": ["zed"]}, "gate.approvers", "not approvers of this tenant: 'zed'"),
        ({"kind": "approval", "approvers": "admins"}, "gate.approvers", "list of usernames"),
        ({"kind": "approval", "approvers": ["dave", "dave"]}, "gate.approvers", "names someone twice"),
        ({"kind": "approval", "escalate_to": ["dave"]}, "gate.escalate_to", "needs escalate_after"),
        (
            {"kind": "approval", "escalate_after": 600, "expires_in": 300},
            "gate.escalate_after",
            "expire first",
        ),
        ({"kind": "approval", "quorum": 2}, "gate.quorum", "a gate does not take 'quorum'"),
    ],
)
def test_a_gate_rule_that_cannot_work_is_a_400_naming_the_field(alice, dave, gate, field, words):
    steps = [
        {"action": "goto", "url": "https://shop.example/"},
        {"action": "click", "selector": "#pay", "gate": gate},
    ]

    response = alice.post("/api/runs", {"goal": "pay", "steps": steps})

    assert response.status_code == 400, response.content
    problems = [p for p in response.json()["problems"] if p["field"] == field]
    assert problems and words in problems[0]["message"], response.json()
