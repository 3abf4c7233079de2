"""runs.states and approvals.services: one winner per transition, an event for every change.

No browser and no worker: runs are put in the wanted state through the services and the state
machine, inside the test's (rolled back) transaction, so no Celery task is ever queued.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import DatabaseError
from django.utils import timezone

from approvals.models import Approval, ApprovalStatus
from approvals.services import AnswerInvalid, Decision, approval_decide, approval_expire
from runs import states
from runs.models import Run, RunEvent, RunStatus, Step, StepStatus
from runs.program import gate_of
from runs.services import RunConflict, run_create
from runs.states import IllegalTransition, run_transition, step_transition
from tenants.models import Role
from tenants.services import tenant_create

S, P = RunStatus, StepStatus

GATED_STEP: dict[str, dict[str, Any]] = {
    "approval": {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay $42?"}},
    "input": {
        "action": "fill",
        "selector": "#otp",
        "value": "{{input}}",
        "gate": {"kind": "input", "prompt": "One-time code", "pattern": "^[0-9]{6}$"},
    },
    "choice": {
        "action": "click",
        "selector": "text={{choice}}",
        "gate": {"kind": "choice", "prompt": "Which account?", "options": ["Checking", "Savings"]},
    },
}


def paused_run(
    tenant: Any, user: Any, *, kind: str = "approval", screenshot: str = ""
) -> tuple[Run, Approval]:
    """A run paused at its gated step 2, as the executor leaves it (no page, no task)."""
    steps = [
        {"action": "goto", "url": "https://shop.example/pay"},
        GATED_STEP[kind],
        {"action": "assert_text", "text": "Payment complete"},
    ]
    run = run_create(tenant=tenant, created_by=user, goal=f"pay ({kind} gate)", url="", steps=steps)
    assert run_transition(run, to=S.RUNNING, expect=[S.QUEUED])
    assert step_transition(run, 1, to=P.RUNNING, expect=[P.QUEUED])
    assert step_transition(run, 1, to=P.DONE, expect=[P.RUNNING])
    assert step_transition(run, 2, to=P.RUNNING, expect=[P.QUEUED])
    gate = gate_of(steps[1])
    assert gate is not None
    approval = Approval.objects.create(
        tenant=tenant,
        run=run,
        step_index=2,
        step_count=3,
        action=steps[1]["action"],
        trigger=gate["trigger"],
        kind=gate["kind"],
        prompt=gate.get("prompt", ""),
        options=gate.get("options"),
        pattern=gate.get("pattern", ""),
        page_url="https://shop.example/pay",
        page_title="Pay",
        screenshot=screenshot,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    assert step_transition(run, 2, to=P.AWAITING_APPROVAL, expect=[P.RUNNING])
    assert run_transition(run, to=S.AWAITING_APPROVAL, expect=[S.RUNNING], current_step=2)
    return run, approval


pytestmark = pytest.mark.usefixtures("private_urls")


@pytest.fixture
def acme(db: Any) -> tuple[Any, Any]:
    tenant, user, _ = tenant_create(slug="acme", owner_username="alice", role=Role.APPROVER)
    return tenant, user


@pytest.fixture
def queued_run(acme: tuple[Any, Any]) -> Run:
    tenant, user = acme
    return run_create(
        tenant=tenant, created_by=user, goal="g", url="", steps=[{"action": "click", "selector": "#a"}]
    )


def events(run: Run) -> list[str]:
    return list(RunEvent.objects.filter(run=run).order_by("id").values_list("type", flat=True))


def stored(run: Run) -> Run:
    return Run.objects.get(pk=run.pk)


# -- run_transition ------------------------------------------------------------------------------
def test_a_legal_transition_wins_once_and_records_one_event(queued_run):
    before = events(queued_run)

    assert run_transition(queued_run, to=S.RUNNING, expect=[S.QUEUED]) is True

    assert stored(queued_run).status == S.RUNNING
    assert queued_run.status == S.RUNNING
    assert events(queued_run) == [*before, "run.running"]
    event = RunEvent.objects.filter(run=queued_run).latest("id")
    assert event.data == {"from": "queued", "to": "running"}
    assert event.tenant_id == queued_run.tenant_id


def test_a_second_identical_transition_loses_and_records_nothing(queued_run):
    stale = stored(queued_run)
    assert run_transition(queued_run, to=S.RUNNING, expect=[S.QUEUED])
    after_first = events(queued_run)

    assert run_transition(stale, to=S.RUNNING, expect=[S.QUEUED]) is False

    assert events(queued_run) == after_first
    assert stored(queued_run).status == S.RUNNING


def test_a_transition_and_its_event_are_one_transaction(queued_run):
    failing = mock.patch.object(states, "record_event", autospec=True, side_effect=DatabaseError("disk full"))
    with failing, pytest.raises(DatabaseError):
        run_transition(queued_run, to=S.RUNNING, expect=[S.QUEUED])

    assert stored(queued_run).status == S.QUEUED
    assert "run.running" not in events(queued_run)


@pytest.mark.parametrize(
    ("expect", "to"),
    [
        ([S.QUEUED], S.COMPLETED),
        ([S.QUEUED], S.AWAITING_APPROVAL),
        ([S.RUNNING], S.REJECTED),
        ([S.AWAITING_APPROVAL], S.COMPLETED),
        ([S.COMPLETED], S.RUNNING),
        ([S.CANCELLED], S.RUNNING),
        ([S.EXPIRED], S.AWAITING_APPROVAL),
        ([S.QUEUED, S.COMPLETED], S.RUNNING),
    ],
)
def test_an_illegal_transition_raises_and_changes_nothing(queued_run, expect, to):
    before = events(queued_run)

    with pytest.raises(IllegalTransition):
        run_transition(queued_run, to=to, expect=expect)

    assert stored(queued_run).status == S.QUEUED
    assert events(queued_run) == before


def test_an_illegal_step_transition_raises(queued_run):
    with pytest.raises(IllegalTransition):
        step_transition(queued_run, 1, to=P.RUNNING, expect=[P.DONE])
    with pytest.raises(IllegalTransition):
        step_transition(queued_run, 1, to=P.AWAITING_APPROVAL, expect=[P.SKIPPED])


@pytest.mark.parametrize(
    ("path", "terminal"),
    [
        ([S.RUNNING], S.COMPLETED),
        ([S.RUNNING], S.FAILED),
        ([], S.CANCELLED),
        ([S.RUNNING, S.AWAITING_APPROVAL], S.REJECTED),
        ([S.RUNNING, S.AWAITING_APPROVAL], S.EXPIRED),
    ],
)
def test_a_terminal_status_sets_finished_at(queued_run, path, terminal):
    for status in path:
        assert run_transition(queued_run, to=status, expect=[stored(queued_run).status])
    assert stored(queued_run).finished_at is None

    assert run_transition(queued_run, to=terminal, expect=[stored(queued_run).status])

    finished = stored(queued_run)
    assert finished.status == terminal
    assert finished.finished_at is not None
    assert finished.finished_at >= finished.created_at


def test_starting_a_run_sets_started_at_but_not_finished_at(queued_run):
    run_transition(queued_run, to=S.RUNNING, expect=[S.QUEUED])

    running = stored(queued_run)
    assert running.started_at is not None
    assert running.finished_at is None


# -- approval_decide / approval_expire --------------------------------------------------------------
def test_approving_resumes_the_run_at_the_paused_step(acme):
    run, approval = paused_run(*acme)

    approval_decide(run=run, decision=Decision(approve=True, note="ok"), actor=acme[1])

    resumed = stored(run)
    assert resumed.status == S.RUNNING
    assert resumed.resumed_from == 2
    assert Step.objects.get(run=run, index=2).status == P.QUEUED
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    assert approval.decided_by == acme[1]
    assert approval.note == "ok"


def test_a_second_approve_of_the_same_pause_conflicts_and_resumes_only_once(acme):
    run, _ = paused_run(*acme)
    stale = stored(run)
    approval_decide(run=run, decision=Decision(approve=True), actor=acme[1])

    with pytest.raises(RunConflict) as conflict:
        approval_decide(run=stale, decision=Decision(approve=True), actor=acme[1])

    assert conflict.value.run.status == S.RUNNING
    assert events(run).count("run.resumed") == 1
    assert events(run).count("approval.decided") == 1
    assert Approval.objects.filter(run=run, status=ApprovalStatus.APPROVED).count() == 1


def test_approving_after_a_reject_conflicts_and_the_step_stays_skipped(acme):
    run, _ = paused_run(*acme)
    stale = stored(run)
    approval_decide(run=run, decision=Decision(approve=False, note="too expensive"), actor=acme[1])

    with pytest.raises(RunConflict):
        approval_decide(run=stale, decision=Decision(approve=True), actor=acme[1])

    rejected = stored(run)
    assert rejected.status == S.REJECTED
    assert "too expensive" in rejected.error
    assert Step.objects.get(run=run, index=2).status == P.SKIPPED
    assert "run.resumed" not in events(run)


@pytest.mark.parametrize(
    ("kind", "decision", "code"),
    [
        ("input", Decision(approve=True, input="12345"), "input_invalid"),
        ("input", Decision(approve=True, input="123456\n"), "input_invalid"),
        ("input", Decision(approve=True, input="abcdef"), "input_invalid"),
        ("input", Decision(approve=True), "input_required"),
        ("input", Decision(approve=True, input=""), "input_required"),
        ("choice", Decision(approve=True, choice="Brokerage"), "choice_invalid"),
        ("choice", Decision(approve=True), "choice_invalid"),
    ],
)
def test_a_bad_answer_is_refused_and_the_run_stays_paused(acme, kind, decision, code):
    run, approval = paused_run(*acme, kind=kind)
    before = events(run)

    with pytest.raises(AnswerInvalid) as refused:
        approval_decide(run=run, decision=decision, actor=acme[1])

    assert refused.value.code == code
    assert stored(run).status == S.AWAITING_APPROVAL
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert approval.sealed_input == ""
    assert Step.objects.get(run=run, index=2).status == P.AWAITING_APPROVAL
    # A wrong input is counted (too many lock the pause); a missing one or a wrong choice is not.
    assert events(run) == before + (["approval.input_refused"] if code == "input_invalid" else [])


def test_a_good_answer_after_a_bad_one_resumes_the_run(acme):
    run, approval = paused_run(*acme, kind="input")
    with pytest.raises(AnswerInvalid):
        approval_decide(run=run, decision=Decision(approve=True, input="12"), actor=acme[1])

    approval_decide(run=run, decision=Decision(approve=True, input="123456"), actor=acme[1])

    assert stored(run).status == S.RUNNING
    approval.refresh_from_db()
    assert approval.input_supplied is True
    assert approval.input_length == 6
    assert approval.sealed_input and "123456" not in approval.sealed_input


def test_the_chosen_option_is_recorded(acme):
    run, approval = paused_run(*acme, kind="choice")

    approval_decide(run=run, decision=Decision(approve=True, choice="Savings"), actor=acme[1])

    approval.refresh_from_db()
    assert approval.choice == "Savings"
    assert stored(run).status == S.RUNNING


def test_expiring_after_an_approve_loses_and_the_run_keeps_running(acme):
    run, approval = paused_run(*acme)
    approval_decide(run=run, decision=Decision(approve=True), actor=acme[1])

    assert approval_expire(approval=Approval.objects.get(pk=approval.pk)) is False

    assert stored(run).status == S.RUNNING
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    assert "run.expired" not in events(run)


def test_approving_after_an_expiry_conflicts_and_the_step_is_never_performed(acme):
    run, approval = paused_run(*acme)
    stale = stored(run)

    assert approval_expire(approval=Approval.objects.get(pk=approval.pk)) is True
    with pytest.raises(RunConflict):
        approval_decide(run=stale, decision=Decision(approve=True), actor=acme[1])

    expired = stored(run)
    assert expired.status == S.EXPIRED
    assert expired.finished_at is not None
    assert Step.objects.get(run=run, index=2).status == P.SKIPPED
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.EXPIRED
    assert "run.resumed" not in events(run)


def test_an_approval_expires_only_once(acme):
    run, approval = paused_run(*acme)

    assert approval_expire(approval=Approval.objects.get(pk=approval.pk)) is True
    assert approval_expire(approval=Approval.objects.get(pk=approval.pk)) is False

    assert events(run).count("run.expired") == 1


def test_a_pause_whose_run_was_cancelled_cannot_be_approved(acme):
    from runs.services import run_cancel

    run, approval = paused_run(*acme)
    stale = stored(run)
    run_cancel(run=run, actor=acme[1])

    with pytest.raises(RunConflict):
        approval_decide(run=stale, decision=Decision(approve=True), actor=acme[1])

    assert stored(run).status == S.CANCELLED
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.CANCELLED


# -- the event log ----------------------------------------------------------------------------------
def test_run_events_cannot_be_changed_or_deleted_through_the_orm(queued_run):
    event = RunEvent.objects.filter(run=queued_run).first()
    assert event is not None
    original_type = event.type

    event.type = "run.completed"
    with pytest.raises(RuntimeError, match="append-only"):
        event.save()
    with pytest.raises(RuntimeError, match="append-only"):
        event.delete()

    assert RunEvent.objects.get(pk=event.pk).type == original_type


def test_a_run_that_ends_early_skips_its_queued_steps_and_fails_the_one_cut_off(acme):
    tenant, user = acme
    steps = [{"action": "click", "selector": f"#b{i}"} for i in range(3)]
    queued_run = run_create(tenant=tenant, created_by=user, goal="g", url="", steps=steps)
    assert run_transition(queued_run, to=S.RUNNING, expect=[S.QUEUED])
    assert step_transition(queued_run, 1, to=P.RUNNING, expect=[P.QUEUED])

    assert run_transition(queued_run, to=S.CANCELLED, expect=[S.RUNNING])

    statuses = dict(Step.objects.filter(run=queued_run).values_list("index", "status"))
    assert statuses == {1: P.FAILED, 2: P.SKIPPED, 3: P.SKIPPED}
    assert Step.objects.get(run=queued_run, index=1).error == "the run was cancelled during this step"
    assert "steps.skipped" in events(queued_run)


def test_a_completed_run_leaves_its_steps_alone(queued_run):
    assert run_transition(queued_run, to=S.RUNNING, expect=[S.QUEUED])
    assert run_transition(queued_run, to=S.COMPLETED, expect=[S.RUNNING])

    assert set(Step.objects.filter(run=queued_run).values_list("status", flat=True)) == {P.QUEUED}
