"""Deciding pauses: approve (with the answer), reject, expire. One winner per pause."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from engine.executor import approval_scope
from runs.events import lock_run, record_event
from runs.hosts import queue_for_host
from runs.models import Run, RunStatus, StepStatus
from runs.program import PatternInvalid, pattern_matches
from runs.services import RunConflict, release_page_later
from runs.states import run_transition, step_transition
from twin_site import limits
from vault.crypto import seal_text

from .models import (
    Approval,
    ApprovalStatus,
    ApprovalVote,
    Cause,
    Channel,
    DecisionWord,
    GateKind,
    decision_word,
)
from .rules import describe_group, may_decide


class DecisionForbidden(PermissionError):
    """The actor may not decide this pause: four eyes, or not one of the pause's approvers."""

    def __init__(self, detail: str, code: str = "four_eyes") -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


class AlreadyApproved(RunConflict):
    """This person already gave one of the approvals the pause needs (409 ``already_approved``)."""

    code = "already_approved"


class PauseLocked(PermissionError):
    """Too many wrong inputs: the pause takes no input until ``until``."""

    def __init__(self, until: Any) -> None:
        self.until = until
        self.retry_after = max(int((until - timezone.now()).total_seconds()) + 1, 1)
        super().__init__(
            f"too many wrong inputs: this pause takes no input until {until:%H:%M:%S} UTC "
            f"({self.retry_after} s); it can still be rejected"
        )


class AnswerInvalid(ValueError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


@dataclass(frozen=True)
class Client:
    """Where a decision came from, for the record."""

    ip: str | None = None
    user_agent: str = ""

    @classmethod
    def of(cls, request: Any) -> Client:
        from twin_site.clients import client_ip

        meta = getattr(request, "META", {})
        return cls(ip=client_ip(request), user_agent=meta.get("HTTP_USER_AGENT", "")[:500])


@dataclass(frozen=True)
class Decision:
    approve: bool
    input: str | None = None
    choice: str | None = None
    note: str = ""


def pending_approval(run: Run) -> Approval | None:
    return Approval.objects.filter(run=run, status=ApprovalStatus.PENDING).first()


def _check_answer(approval: Approval, decision: Decision) -> None:
    """The same checks for every channel (API, dashboard, decision link, take-over)."""
    if approval.kind == GateKind.INPUT:
        if not isinstance(decision.input, str) or decision.input == "":
            raise AnswerInvalid("input_required", 'this step needs an input: send {"input": "…"}')
        if len(decision.input) > limits.MAX_INPUT or "\x00" in decision.input:
            raise AnswerInvalid(
                "input_invalid", f"the input must be at most {limits.MAX_INPUT:,} characters, without NUL"
            )
        if approval.pattern:
            # RE2: linear in the input whatever the pattern, so no input can hold a web thread.
            try:
                matched = pattern_matches(approval.pattern, decision.input)
            except PatternInvalid:
                # Only a pause created before patterns were checked with RE2 can get here.
                raise AnswerInvalid(
                    "pattern_unsupported",
                    "this step's pattern cannot be checked (it needs syntax RE2 does not run); "
                    "reject the pause and start the run again with an RE2 pattern",
                ) from None
            if not matched:
                detail = f"the input does not match the pattern {approval.pattern}"
                raise AnswerInvalid("input_invalid", detail)
    elif approval.kind == GateKind.CHOICE:
        options = approval.options or []
        if decision.choice not in options:
            raise AnswerInvalid(
                "choice_invalid", f"choice must be one of: {', '.join(repr(o) for o in options)}"
            )


def seen(approval: Approval) -> dict[str, Any]:
    """What the person deciding was shown: kept in the decision's event, so its hash covers it."""
    return {
        "step": f"{approval.step_index} of {approval.step_count}",
        "prompt": approval.prompt,
        "options": approval.options,
        "page_url": approval.page_url,
        "page_title": approval.page_title,
        "page_text_sha256": hashlib.sha256(approval.page_text.encode()).hexdigest(),
        "screenshot_sha256": approval.screenshot_sha256,
    }


def took_over(approval: Approval, user: Any) -> bool:
    """Whether ``user`` took the run's page over while this pause waited."""
    from runs.models import RunEvent

    return RunEvent.objects.filter(
        run_id=approval.run_id,
        type="takeover.started",
        actor_id=getattr(user, "pk", None),
        created_at__gte=approval.created_at,
    ).exists()


def approval_decide(
    *,
    run: Run,
    decision: Decision,
    actor: Any,
    channel: str = Channel.API,
    token_name: str = "",
    client: Client | None = None,
) -> Run:
    """Approve (resuming the run at the paused step) or reject (the step never happens).

    The record keeps who, when, through which channel, from where, with which note, and what
    they saw; a supplied input is kept only as "supplied, N characters, matched the pattern",
    its value sealed until the step has used it, then erased.
    """
    approval = pending_approval(run)
    if run.status != RunStatus.AWAITING_APPROVAL or approval is None:
        run.refresh_from_db()  # a concurrent decision may have moved it: say what it is now
        raise RunConflict(run, f"the run is {run.status}, not awaiting approval")
    check_may_decide(approval, run, actor)
    # Every channel's note (the API's serializer, the dashboard's and a link's plain form field).
    if reason := limits.bounded_text(decision.note or "", limits.MAX_NOTE, multiline=True):
        raise AnswerInvalid("note_invalid", f"the note {reason}")
    if decision.approve:
        if (
            approval.kind == GateKind.INPUT
            and approval.locked_until
            and approval.locked_until > timezone.now()
        ):
            raise PauseLocked(approval.locked_until)
        try:
            _check_answer(approval, decision)
        except AnswerInvalid as exc:
            if approval.kind == GateKind.INPUT and decision.input:
                _count_wrong_input(run, approval, exc)
            raise
    now = timezone.now()
    client = client or Client()
    supplied = approval.kind == GateKind.INPUT and decision.approve
    word = decision_word(
        trigger=approval.trigger, kind=approval.kind, approve=decision.approve, choice=decision.choice or ""
    )
    changes: dict[str, Any] = {
        "status": ApprovalStatus.APPROVED if decision.approve else ApprovalStatus.REJECTED,
        "decision": word,
        "decided_by": actor if getattr(actor, "pk", None) else None,
        "decided_at": now,
        "channel": channel,
        "token_name": token_name,
        "note": decision.note or "",
        "choice": (decision.choice or "") if decision.approve and approval.kind == GateKind.CHOICE else "",
        "input_supplied": supplied,
        "input_length": len(decision.input or "") if supplied else None,
        # _check_answer refused an input that does not match, so a supplied one matched.
        "input_matched_pattern": (True if approval.pattern else None) if supplied else None,
        "decided_ip": client.ip,
        "decided_user_agent": client.user_agent,
        "sealed_input": seal_text(decision.input or "", scope=approval_scope(run.tenant_id))
        if supplied
        else "",
    }
    with transaction.atomic():
        lock_run(run.pk)  # the run before its pause, as every writer of a run does
        given = 0
        if decision.approve:
            given = _give_approval(run, approval, decision, actor, channel, token_name, client)
            if given < approval.required:
                return run  # still awaiting the other approvals
        if not Approval.objects.filter(pk=approval.pk, status=ApprovalStatus.PENDING).update(**changes):
            run.refresh_from_db()
            raise RunConflict(run, "this pause was already decided")
        data: dict[str, Any] = {
            "approval_id": str(approval.pk),
            "decision": word,
            "channel": channel,
            "trigger": approval.trigger,
        }
        if approval.required > 1:
            data["approvals"] = {"required": approval.required, "given": given}
        if approval.choice or changes["choice"]:
            data["choice"] = changes["choice"]
        # For the trail only (events.PRIVATE_KEYS are not sent to live pages or webhooks).
        record = {
            **data,
            "decided_by": getattr(actor, "username", "") or "",
            "token_name": token_name,
            "note": changes["note"],
            "ip": client.ip,
            "user_agent": client.user_agent,
            "seen": seen(approval),
        }
        if supplied:
            record["input"] = {
                "supplied": True,
                "length": changes["input_length"],
                "matched_pattern": changes["input_matched_pattern"],
            }
        if decision.approve:
            won = run_transition(
                run,
                to=RunStatus.RUNNING,
                expect=[RunStatus.AWAITING_APPROVAL],
                actor=actor,
                resumed_from=approval.step_index,
                event_data=data,
            )
        else:
            context = (run.host, run.browser_context_id)
            won = run_transition(
                run,
                to=RunStatus.REJECTED,
                expect=[RunStatus.AWAITING_APPROVAL],
                actor=actor,
                error=f"rejected at step {approval.step_index}"
                + (f": {decision.note}" if decision.note else ""),
                browser_context_id="",
                target_id="",
                event_data=data,
            )
        if not won:
            transaction.set_rollback(True)
            run.refresh_from_db()
            raise RunConflict(run, f"the run is {run.status}, not awaiting approval")
        record_event(run, "approval.decided", step_index=approval.step_index, actor=actor, data=record)
        if decision.approve:
            step_transition(
                run, approval.step_index, to=StepStatus.QUEUED, expect=[StepStatus.AWAITING_APPROVAL]
            )
            _enqueue_resume(run)
        else:
            step_transition(
                run,
                approval.step_index,
                to=StepStatus.SKIPPED,
                expect=[StepStatus.AWAITING_APPROVAL],
                error="rejected",
                event_data={"rejected": True},
            )
            run.host, run.browser_context_id = context
            release_page_later(run)
            run.browser_context_id = ""
    return run


def check_may_decide(approval: Approval, run: Run, actor: Any) -> None:
    """Four eyes (the run's starter, when it applies) and the pause's approvers, for every channel."""
    started_by_actor = run.created_by_id is not None and run.created_by_id == getattr(actor, "pk", None)
    if started_by_actor and run.tenant.four_eyes_applies():
        raise DecisionForbidden("four eyes: someone other than the person who started this run must decide")
    if not may_decide(approval, actor):
        raise DecisionForbidden(
            f"only {describe_group(approval.approvers)} may decide this pause; "
            f"{getattr(actor, 'get_username', lambda: 'you')()} is not one of them",
            code="not_an_approver",
        )


def approvals_of(approval: Approval) -> dict[str, Any]:
    """``{"required", "given", "by"}``: how many approvals the pause needs, has, and from whom."""
    if approval.approvals_given == 0:
        return {"required": approval.required, "given": 0, "by": []}
    if "votes" in getattr(approval, "_prefetched_objects_cache", {}):
        by = [vote.user.get_username() for vote in approval.votes.all()]
        return {"required": approval.required, "given": approval.approvals_given, "by": by}
    by = list(
        ApprovalVote.objects.filter(approval=approval)
        .order_by("at", "pk")
        .values_list("user__username", flat=True)
    )
    return {"required": approval.required, "given": approval.approvals_given, "by": by}


def _give_approval(
    run: Run,
    approval: Approval,
    decision: Decision,
    actor: Any,
    channel: str,
    token_name: str,
    client: Client,
) -> int:
    """Record one person's approval (in the caller's transaction, the run locked); how many the
    pause has now. The same person twice is AlreadyApproved; a pause decided meanwhile, RunConflict."""
    given = (
        Approval.objects.filter(pk=approval.pk, status=ApprovalStatus.PENDING)
        .values_list("approvals_given", flat=True)
        .first()
    )
    if given is None:
        run.refresh_from_db()
        raise RunConflict(run, "this pause was already decided")
    if getattr(actor, "pk", None) is None:
        return given + 1  # no person to record (a system decision): it counts once
    if ApprovalVote.objects.filter(approval=approval, user=actor).exists():
        raise AlreadyApproved(
            run,
            f"{actor.get_username()} already approved this pause ({given} of {approval.required} "
            "approvals given): the same person cannot give two of them",
        )
    ApprovalVote.objects.create(
        approval=approval,
        user=actor,
        channel=channel,
        token_name=token_name,
        note=decision.note or "",
        ip=client.ip,
        user_agent=client.user_agent,
    )
    # The run is locked, so this read-and-increment has no rival; the condition is a second guard.
    Approval.objects.filter(pk=approval.pk, approvals_given=given).update(approvals_given=given + 1)
    given += 1
    approval.approvals_given = given
    if approval.required > 1:
        record_event(
            run,
            "approval.given",
            step_index=approval.step_index,
            actor=actor,
            data={
                "approval_id": str(approval.pk),
                "given": given,
                "required": approval.required,
                "by": actor.get_username(),
                "channel": channel,
                "token_name": token_name,
                "note": decision.note or "",
                "ip": client.ip,
                "user_agent": client.user_agent,
                "seen": seen(approval),
            },
        )
    return given


def _count_wrong_input(run: Run, approval: Approval, exc: AnswerInvalid) -> None:
    """A wrong one-time code is recorded; too many in a row lock the pause for a while."""
    with transaction.atomic():
        lock_run(run.pk)
        if not Approval.objects.filter(pk=approval.pk, status=ApprovalStatus.PENDING).update(
            bad_inputs=F("bad_inputs") + 1
        ):
            return
        count = Approval.objects.values_list("bad_inputs", flat=True).get(pk=approval.pk)
        record_event(run, "approval.input_refused", step_index=approval.step_index, data={"attempt": count})
        if count >= settings.TWIN_INPUT_ATTEMPTS:
            until = timezone.now() + timedelta(seconds=settings.TWIN_INPUT_LOCK_SECONDS)
            Approval.objects.filter(pk=approval.pk).update(bad_inputs=0, locked_until=until)
            record_event(
                run,
                "approval.locked",
                step_index=approval.step_index,
                data={
                    "wrong_inputs": count,
                    "until": until.isoformat(),
                    "seconds": settings.TWIN_INPUT_LOCK_SECONDS,
                },
            )
            exc.detail += (
                f"; after {count} wrong inputs this pause takes none for {settings.TWIN_INPUT_LOCK_SECONDS} s"
            )


def _enqueue_resume(run: Run) -> None:
    run_id, host = str(run.pk), run.host

    def send() -> None:
        from runs.tasks import resume_run_task

        # The host holding the page resumes it in place; a host that is gone cannot: any host
        # restores the run from its checkpoint (runs/hosts.py).
        resume_run_task.apply_async(args=(run_id,), queue=queue_for_host(host))

    transaction.on_commit(send)


def approval_expire(*, approval: Approval) -> bool:
    """Expire an overdue pause; False when it was decided (or expired) first."""
    run = approval.run
    with transaction.atomic():
        lock_run(run.pk)
        if not Approval.objects.filter(pk=approval.pk, status=ApprovalStatus.PENDING).update(
            status=ApprovalStatus.EXPIRED,
            decision=DecisionWord.EXPIRED,
            decided_at=timezone.now(),
            channel=Channel.SYSTEM,
        ):
            return False
        context = (run.host, run.browser_context_id)
        won = run_transition(
            run,
            to=RunStatus.EXPIRED,
            expect=[RunStatus.AWAITING_APPROVAL],
            error=(
                f"nobody decided step {approval.step_index} "
                f"before {approval.expires_at:%Y-%m-%d %H:%M:%S} UTC"
            ),
            browser_context_id="",
            target_id="",
            event_data={"approval_id": str(approval.pk)},
        )
        if not won:
            transaction.set_rollback(True)
            return False
        step_transition(
            run,
            approval.step_index,
            to=StepStatus.SKIPPED,
            expect=[StepStatus.AWAITING_APPROVAL],
            error="expired",
        )
        run.host, run.browser_context_id = context
        release_page_later(run)
    return True


def expire_overdue(*, now: Any = None, limit: int = 500) -> int:
    overdue = Approval.objects.filter(status=ApprovalStatus.PENDING, expires_at__lte=now or timezone.now())
    count = 0
    for approval in overdue.select_related("run").order_by("expires_at")[:limit]:
        count += approval_expire(approval=approval)
    return count


def approval_escalate(*, approval: Approval) -> bool:
    """Tell the pause's escalation group that it still waits (once); False when decided first or
    already escalated."""
    run = approval.run
    now = timezone.now()
    with transaction.atomic():
        lock_run(run.pk)
        if not Approval.objects.filter(
            pk=approval.pk, status=ApprovalStatus.PENDING, escalated_at__isnull=True
        ).update(escalated_at=now):
            return False
        run.refresh_from_db(fields=["status"])
        record_event(
            run,
            "approval.escalated",
            step_index=approval.step_index,
            data={
                "approval_id": str(approval.pk),
                "escalate_to": approval.escalate_to if approval.escalate_to is not None else "role:approver",
                "waited_s": int((now - approval.created_at).total_seconds()),
                "approvals": {"required": approval.required, "given": approval.approvals_given},
            },
        )
        approval_id = str(approval.pk)

        def send() -> None:
            from .tasks import escalation_email_task

            try:
                escalation_email_task.apply_async(args=(approval_id,), queue="webhooks")
            except Exception:  # Redis is transport: the event and its webhook are recorded anyway
                return

        transaction.on_commit(send)
    return True


def escalate_overdue(*, now: Any = None, limit: int = 500) -> int:
    due = Approval.objects.filter(
        status=ApprovalStatus.PENDING, escalated_at__isnull=True, escalate_at__lte=now or timezone.now()
    )
    count = 0
    for approval in due.select_related("run").order_by("escalate_at")[:limit]:
        count += approval_escalate(approval=approval)
    return count


__all__ = [
    "AlreadyApproved",
    "AnswerInvalid",
    "Cause",
    "Client",
    "Decision",
    "PauseLocked",
    "approval_decide",
    "approval_escalate",
    "approval_expire",
    "approvals_of",
    "check_may_decide",
    "escalate_overdue",
    "expire_overdue",
    "record_event",
]
