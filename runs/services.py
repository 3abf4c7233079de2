"""Runs: everything that changes them (reads live in selectors.py)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from approvals.models import Approval, ApprovalStatus, DecisionWord
from engine.netguard import UrlRefused, check_url
from tenants.models import Role, Tenant
from vault.selectors import secret_names

from .events import record_event
from .models import Run, RunStatus, Step, StepStatus
from .program import Problem, describe, validate_program, validate_run_fields
from .routing import DEFAULT_QUEUE, host_queue
from .states import run_transition, step_transition


class ProgramInvalid(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class RunConflict(Exception):
    """The run is not in a status that allows this; carries the status it is in."""

    def __init__(self, run: Run, detail: str) -> None:
        super().__init__(detail)
        self.run = run
        self.detail = detail


def approver_names(tenant: Tenant) -> list[str]:
    """The usernames a gate's ``approvers`` / ``escalate_to`` may name (approvals.rules)."""
    return list(
        tenant.memberships.filter(role=Role.APPROVER, user__is_active=True).values_list(
            "user__username", flat=True
        )
    )


def run_create(
    *,
    tenant: Tenant,
    created_by: Any,
    goal: str,
    url: str,
    steps: Any,
    params: dict[str, Any] | None = None,
    record_video: bool = True,
    skill_version: Any = None,
    planner: str | None = None,
    plan: dict[str, Any] | None = None,
) -> Run:
    """Validate the program up front (every problem at once), store the run, queue it."""
    problems = validate_run_fields(goal=goal, url=url, params=params)
    known_params = params if isinstance(params, dict) else None
    problems += validate_program(
        steps,
        params=known_params,
        secret_names=secret_names(tenant_id=tenant.pk),
        approver_names=approver_names(tenant),
        starter=created_by.get_username() if created_by is not None and tenant.four_eyes_applies() else None,
    )
    if url and not any(p.step is None and p.field == "url" for p in problems):
        try:
            check_url(url)
        except UrlRefused as exc:
            problems.insert(0, Problem(None, "url", str(exc)))
    if problems:
        raise ProgramInvalid(problems)
    with transaction.atomic():
        run = Run.objects.create(
            tenant=tenant,
            created_by=created_by,
            goal=goal,
            step_total=len(steps),
            url=url,
            program=steps,
            params=params or {},
            record_video=record_video,
            skill_version=skill_version,
            planner=planner,
            plan=plan or {},
        )
        Step.objects.bulk_create(
            Step(run=run, index=i, action=step["action"], label=describe(step)[:300])
            for i, step in enumerate(steps, start=1)
        )
        queued: dict[str, Any] = {"steps": len(steps)}
        if skill_version is not None:
            queued["skill"] = {"slug": skill_version.skill.slug, "version": skill_version.version}
        if planner:
            queued["planner"] = planner
        if plan and plan.get("matched"):
            queued["matched_goal"] = True
        record_event(run, "run.queued", actor=created_by, data=queued)
        run_id = run.pk
        transaction.on_commit(lambda: _enqueue_start(run_id))
    return run


class PlannerNotConfigured(Exception):
    pass


def run_plan(
    *,
    tenant: Tenant,
    created_by: Any,
    goal: str,
    url: str,
    params: dict[str, Any] | None = None,
    record_video: bool = True,
) -> Run:
    """A goal-only run the model plans (engine.planning): its program starts by opening ``url``."""
    from engine.planner import model_config

    problems = validate_run_fields(goal=goal, url=url, params=params)
    if not (isinstance(goal, str) and goal.strip()):
        problems.append(Problem(None, "goal", "a planned run needs a goal: what the agent should do"))
    if not (isinstance(url, str) and url.strip()):
        problems.append(Problem(None, "url", "a planned run needs the url it starts at"))
    if problems:
        raise ProgramInvalid(problems)
    if model_config(tenant) is None:
        raise PlannerNotConfigured(
            "no language model is configured to plan this goal, and no skill of this tenant matches it. "
            "Set TWIN_LLM_BASE_URL (an OpenAI-compatible API root, e.g. http://127.0.0.1:11434/v1 for a "
            "local Ollama) and TWIN_LLM_MODEL (optionally TWIN_LLM_API_KEY), or the tenant's own "
            "endpoint in the admin; see docs/agent.md"
        )
    steps = [{"action": "goto", "url": url, "label": f"Open {url}"[:300]}]
    return run_create(
        tenant=tenant,
        created_by=created_by,
        goal=goal,
        url=url,
        steps=steps,
        params=params,
        record_video=record_video,
        planner="model",
        plan={"rounds": 1, "steps": 0, "finished": False, "summary": "", "paused_for": ""},
    )


def _enqueue_start(run_id: Any) -> None:
    from .tasks import start_run_task

    start_run_task.apply_async(args=(str(run_id),), queue=DEFAULT_QUEUE)


def release_page_later(run: Run) -> None:
    """Close the run's parked page on the host that holds it, once the transaction commits."""
    if not (run.host and run.browser_context_id):
        return
    host, context_id = run.host, run.browser_context_id

    def send() -> None:
        from .tasks import release_page_task

        release_page_task.apply_async(args=(context_id,), queue=host_queue(host))

    transaction.on_commit(send)


def run_cancel(*, run: Run, actor: Any) -> Run:
    with transaction.atomic():
        context = (run.host, run.browser_context_id)
        won = run_transition(
            run,
            to=RunStatus.CANCELLED,
            expect=[RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.AWAITING_APPROVAL],
            actor=actor,
            browser_context_id="",
            target_id="",
        )
        if not won:
            run.refresh_from_db()
            raise RunConflict(run, f"the run is {run.status} and can no longer be cancelled")
        Approval.objects.filter(run=run, status=ApprovalStatus.PENDING).update(
            status=ApprovalStatus.CANCELLED, decision=DecisionWord.CANCELLED
        )
        # Like a rejected or expired pause: the step that waited for a human will never happen.
        paused = Step.objects.filter(run=run, status=StepStatus.AWAITING_APPROVAL)
        for index in list(paused.values_list("index", flat=True)):
            step_transition(
                run, index, to=StepStatus.SKIPPED, expect=[StepStatus.AWAITING_APPROVAL], error="cancelled"
            )
        run.host, run.browser_context_id = context
        release_page_later(run)
        record_event(run, "run.cancel_requested", actor=actor)
    run.browser_context_id = ""
    return run
