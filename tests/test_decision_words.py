"""Words that match the decision (issue 12, point 2): a blocked pause answered "fail" is stored,
shown and exported as "fail", never as "approved (fail)"; every decision keeps its own word."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from approvals.models import Approval, decision_word
from approvals.services import Decision, approval_decide, approval_expire
from runs.models import RunEvent
from runs.services import run_cancel
from tenants.models import Role
from tenants.services import tenant_create
from tests.conftest import Persona
from tests.test_state_machine import paused_run

pytestmark = pytest.mark.usefixtures("private_urls")
PASSWORD = "correct horse battery staple"


def blocked_pause(persona: Persona) -> tuple[Any, Approval]:
    """A run paused because its step could not proceed: retry, skip or fail."""
    run, approval = paused_run(persona.tenant, persona.user, kind="choice")
    Approval.objects.filter(pk=approval.pk).update(
        trigger="blocked", cause="blocked", options=["retry", "skip", "fail"], prompt="#pay was not found"
    )
    approval.refresh_from_db()
    return run, approval


def htmx_browser(persona: Persona) -> Client:
    browser = Client(HTTP_HX_REQUEST="true")
    browser.force_login(persona.user)
    return browser


def test_failing_a_blocked_pause_says_fail_the_run_everywhere(alice):
    run, approval = blocked_pause(alice)

    answer = htmx_browser(alice).post(f"/inbox/{approval.pk}/decide", {"action": "approve", "choice": "fail"})

    assert answer.status_code == 200
    page = answer.content.decode()
    assert "You decided:\n  fail the run at step 2 of" in page
    assert "approved (fail)" not in page.lower()
    assert "Fail the run" in page  # the card's decided line
    approval.refresh_from_db()
    assert (approval.status, approval.decision, approval.choice) == ("approved", "fail", "fail")
    decided = RunEvent.objects.get(run=run, type="approval.decided")
    assert decided.data["decision"] == "fail"
    listed = alice.get("/api/approvals").json()[0]
    assert listed["decision"] == "fail" and listed["status"] == "approved"
    events = alice.get(f"/api/runs/{run.pk}/events").json()
    assert [e["data"]["decision"] for e in events if e["event"] == "approval.decided"] == ["fail"]


@pytest.mark.parametrize(
    ("kind", "body", "word", "phrase"),
    [
        ("approval", {"action": "approve"}, "approved", "approved step 2 of"),
        ("approval", {"action": "reject"}, "rejected", "rejected step 2 of"),
        (
            "input",
            {"action": "approve", "input": "123456"},
            "answered",
            "approved step 2 of “pay (input gate)” with an input.",
        ),
        ("choice", {"action": "approve", "choice": "Savings"}, "chosen", "chose “Savings” at step 2 of"),
    ],
)
def test_each_kind_of_answer_keeps_its_own_word(alice, kind, body, word, phrase):
    _, approval = paused_run(alice.tenant, alice.user, kind=kind)

    answer = htmx_browser(alice).post(f"/inbox/{approval.pk}/decide", body)

    assert f"You decided:\n  {phrase}" in answer.content.decode().replace("&ldquo;", "“").replace(
        "&rdquo;", "”"
    ), answer.content.decode()[:1500]
    approval.refresh_from_db()
    assert approval.decision == word


def test_expired_and_cancelled_pauses_say_so(alice):
    _, approval = paused_run(alice.tenant, alice.user)
    Approval.objects.filter(pk=approval.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert approval_expire(approval=approval)
    approval.refresh_from_db()
    assert approval.decision == "expired" and approval.decision_label() == "Expired"

    other, _ = paused_run(alice.tenant, alice.user)
    run_cancel(run=other, actor=alice.user)
    assert Approval.objects.get(run=other).decision == "cancelled"


def test_the_admin_lists_and_filters_a_fail_as_fail_and_the_csv_says_fail(alice):
    run, _ = blocked_pause(alice)
    approval_decide(run=run, decision=Decision(approve=True, choice="fail"), actor=alice.user)
    approved_run, _ = paused_run(alice.tenant, alice.user)
    approval_decide(run=approved_run, decision=Decision(approve=True), actor=alice.user)
    tenant_create(slug="acme", owner_username="ada", password=PASSWORD, role=Role.AUDITOR)
    ada = Client()
    assert ada.post("/admin/login/", {"username": "ada", "password": PASSWORD}).status_code == 302

    listing = ada.get("/admin/approvals/approval/?decision=fail").content.decode()
    assert "Fail the run" in listing
    assert listing.count('class="field-decision_shown"') == 1  # only the fail, not the approval
    everything = ada.get("/admin/approvals/approval/").content.decode()
    assert everything.count("Fail the run") >= 1 and ">Approved<" in everything
    assert "By decision" in everything  # the filter
    today = timezone.now().date()
    exported = ada.get(f"/admin/approvals/approval/export/?start={today}&end={today}").content.decode()
    rows = {row["run"]: row["decision"] for row in csv.DictReader(io.StringIO(exported))}
    assert rows == {str(run.pk): "fail", str(approved_run.pk): "approved"}


def test_the_stored_word_follows_the_pause_not_the_status():
    assert decision_word(trigger="blocked", kind="choice", approve=True, choice="retry") == "retry"
    assert decision_word(trigger="blocked", kind="choice", approve=True, choice="skip") == "skip"
    assert decision_word(trigger="blocked", kind="choice", approve=False) == "rejected"
    assert decision_word(trigger="ambiguity", kind="choice", approve=True, choice="fail") == "chosen"
    assert decision_word(trigger="mfa", kind="input", approve=True) == "answered"
    assert decision_word(trigger="approval", kind="approval", approve=True) == "approved"


# -- pauses decided before the word existed ------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_past_decisions_their_words_and_each_approval_its_record() -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    def migrate(targets: list[tuple[str, str]]) -> Any:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(targets)
        return MigrationExecutor(connection).loader.project_state(targets).apps

    old = migrate(
        [
            ("approvals", "0007_approval_boxes"),
            ("tenants", "0009_tenant_agent"),
            ("runs", "0011_run_plan_step_planned"),
        ]
    )
    try:
        user = old.get_model("auth", "User").objects.create(username="olduser")
        tenant = old.get_model("tenants", "Tenant").objects.create(slug="legacy", name="Legacy")
        run = old.get_model("runs", "Run").objects.create(tenant=tenant, program=[])
        OldApproval = old.get_model("approvals", "Approval")
        cases = {
            "fail": ("blocked", "choice", "approved", "fail"),
            "chosen": ("ambiguity", "choice", "approved", "Savings"),
            "answered": ("mfa", "input", "approved", ""),
            "approved": ("approval", "approval", "approved", ""),
            "rejected": ("approval", "approval", "rejected", ""),
            "expired": ("approval", "approval", "expired", ""),
        }
        ids = {}
        for word, (trigger, kind, status, choice) in cases.items():
            ids[word] = OldApproval.objects.create(
                tenant=tenant,
                run=run,
                step_index=1,
                action="click",
                trigger=trigger,
                kind=kind,
                status=status,
                choice=choice,
                decided_by=user if status != "expired" else None,
                decided_at=timezone.now(),
                channel="api",
                expires_at=timezone.now(),
            ).pk

        new = migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

        Approval_ = new.get_model("approvals", "Approval")
        assert {word: Approval_.objects.get(pk=pk).decision for word, pk in ids.items()} == {
            word: word for word in cases
        }
        votes = new.get_model("approvals", "ApprovalVote").objects.values_list("approval_id", flat=True)
        assert sorted(map(str, votes)) == sorted(
            str(ids[w]) for w in ("fail", "chosen", "answered", "approved")
        )
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
