"""Runs in the dashboard: the list, a run's detail, starting and cancelling one."""

from __future__ import annotations

import contextlib
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.http import urlencode
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ParseError

from approvals.models import ApprovalStatus
from skills.selectors import save_label, skills_for_tenant
from tenants.models import Role
from tenants.web import dashboard_view
from twin_site.limits import PayloadTooLarge, load_json

from .cost import amount_label, run_cost, seconds_label
from .media import chapters_response, poster_response, video_response
from .models import RunStatus
from .selectors import (
    MAX_QUERY,
    PAUSE_TRIGGERS,
    WAITING,
    RunFilters,
    clean_query,
    filter_runs,
    get_run_for_tenant,
    ready_recording,
    run_list_for_tenant,
    runs_for_tenant_exist,
    trigger_label,
)
from .services import ProgramInvalid, RunConflict, run_cancel, run_create
from .timeline import context_for, timeline

PAGE = 50
EVENTS = 200  # the run page's timeline shows the latest this many events


@dashboard_view
def home(request: HttpRequest) -> HttpResponse:
    access = request.access  # type: ignore[attr-defined]
    return HttpResponseRedirect(reverse("inbox" if access.membership.allows(Role.APPROVER) else "runs"))


def _list_filters(request: HttpRequest, skills: dict[str, str]) -> RunFilters:
    """The runs list's filters from the address; anything that is not a valid value is ignored."""
    status = request.GET.get("status", "")
    skill = request.GET.get("skill", "")
    trigger = request.GET.get("trigger", "")
    return RunFilters(
        q=clean_query(request.GET.get("q", "")),
        status=status if status in RunStatus.values else "",
        skill=skill if skill in skills else "",
        trigger=trigger if trigger_label(trigger) else "",
    )


def _filters_said(filters: RunFilters, skills: dict[str, str]) -> str:
    """An empty list's sentence: No runs match “invoice” with status failed, of skill Pay invoices."""
    parts = []
    if filters.status:
        parts.append(f"with status {RunStatus(filters.status).label.lower()}")
    if filters.skill:
        parts.append(f"of skill {skills[filters.skill]}")
    if filters.trigger:
        parts.append(trigger_label(filters.trigger))
    said = ", ".join(parts)
    if filters.q:
        return f"No runs match “{filters.q}”" + (f" {said}" if said else "")
    return f"No runs {said}"


@dashboard_view
def run_list(request: HttpRequest) -> HttpResponse:
    access = request.access  # type: ignore[attr-defined]
    tenant_skills = skills_for_tenant(access.tenant, archived=True).only("slug", "name")
    skills = {skill.slug: skill.name for skill in tenant_skills}
    filters = _list_filters(request, skills)
    runs = filter_runs(run_list_for_tenant(access.tenant), filters)
    before = parse_datetime(request.GET.get("before", "") or "")
    before_id = request.GET.get("before_id", "")
    if before is not None and before_id:
        runs = runs.filter(created_at__lte=before).exclude(created_at=before, id__gte=before_id)
    page = list(runs[: PAGE + 1])
    for run in page[:PAGE]:
        cost = run_cost(run)
        run.cost_label = amount_label(cost["amount"], cost["currency"])  # type: ignore[attr-defined]
    query = filters.query()
    # An empty page says why: no run at all yet, or none that matches these filters.
    any_runs = bool(page) or (filters.active and runs_for_tenant_exist(access.tenant))
    context = {
        "runs": page[:PAGE],
        "next_cursor": page[PAGE - 1] if len(page) > PAGE else None,
        "filters": filters,
        "status": filters.status,
        "statuses": RunStatus.choices,
        "skills": sorted(skills.items(), key=lambda pair: pair[1].lower()),
        "triggers": [(key, label) for key, label in PAUSE_TRIGGERS.items()],
        "waiting_prefix": WAITING,
        "filters_said": _filters_said(filters, skills) if filters.active else "",
        "any_runs": any_runs,
        "filter_query": urlencode(query),
        "max_query": MAX_QUERY,
        "paged": before is not None,
    }
    if not request.htmx:  # type: ignore[attr-defined]
        return render(request, "runs/list.html", context)
    response = render(request, "runs/list.html#list", context)
    # The address shows the filters the list was rendered with, whichever request won the race
    # (a filter change, or a live refresh that replaced it in flight).
    response["HX-Replace-Url"] = reverse("runs") + (f"?{urlencode(query)}" if query else "")
    return response


def _detail_context(request: HttpRequest, pk: str) -> dict[str, Any]:
    access = request.access  # type: ignore[attr-defined]
    run = get_run_for_tenant(access.tenant, pk)
    approvals = list(run.approvals.select_related("decided_by").order_by("created_at"))
    recording = ready_recording(run)
    cost = run_cost(run)
    steps = list(run.steps.all())
    pending = next((a for a in approvals if a.status == ApprovalStatus.PENDING), None)
    if pending is not None:  # its card says what the agent planned there (runs.templatetags.twin)
        at = next((step for step in steps if step.index == pending.step_index), None)
        pending.planned_step = at.planned if at is not None else None  # type: ignore[attr-defined]
    return {
        "run": run,
        "cost": cost,
        "cost_labels": {
            "wall": seconds_label(cost["wall_s"]),
            "browser": seconds_label(cost["browser_s"]),
            "human_wait": seconds_label(cost["human_wait_s"]),
            "amount": amount_label(cost["amount"], cost["currency"]),
        },
        "recording": recording,
        "video_url": reverse("run-video", args=[run.pk]) if recording else "",
        "chapters_url": reverse("run-video-chapters", args=[run.pk]) if recording else "",
        "poster_url": reverse("run-video-poster", args=[run.pk]) if recording else "",
        "steps": steps,
        "approvals": approvals,
        "pending": pending,
        "summary": (run.plan or {}).get("summary", "") if run.planner == "model" else "",
        "events_shown": EVENTS,
        # Newest first, in words (runs.timeline); take-over inputs grouped.
        "timeline": timeline(
            list(run.events.select_related("actor").order_by("-id")[:EVENTS]),
            context_for(run, steps, approvals),
        ),
        "outputs": sorted(run.outputs.items()),
        # "Save as skill", or "Save the fix" for a replay a person repaired; "" when not completed.
        "save_label": save_label(run) if access.membership.allows(Role.OPERATOR) else "",
    }


@dashboard_view
def run_video(request: HttpRequest, pk: str) -> HttpResponseBase:
    """The run's session video, with byte ranges (the player seeks)."""
    recording = ready_recording(get_run_for_tenant(request.access.tenant, pk))  # type: ignore[attr-defined]
    if recording is None:
        raise Http404("this run has no video")
    return video_response(request, recording)


@dashboard_view
def run_video_poster(request: HttpRequest, pk: str) -> HttpResponseBase:
    """The picture the player shows before the video plays (a JPEG)."""
    recording = ready_recording(get_run_for_tenant(request.access.tenant, pk))  # type: ignore[attr-defined]
    if recording is None:
        raise Http404("this run has no video")
    return poster_response(request, recording)


@dashboard_view
def run_video_chapters(request: HttpRequest, pk: str) -> HttpResponse:
    """The steps as a WebVTT chapters track."""
    recording = ready_recording(get_run_for_tenant(request.access.tenant, pk))  # type: ignore[attr-defined]
    if recording is None:
        raise Http404("this run has no video")
    return chapters_response(recording)


@dashboard_view
def run_detail(request: HttpRequest, pk: str) -> HttpResponse:
    template = "runs/detail.html#body" if request.htmx else "runs/detail.html"  # type: ignore[attr-defined]
    return render(request, template, _detail_context(request, pk))


@dashboard_view
@require_POST
def run_cancel_view(request: HttpRequest, pk: str) -> HttpResponse:
    access = request.access  # type: ignore[attr-defined]
    run = get_run_for_tenant(access.tenant, pk)
    if not access.membership.allows(Role.OPERATOR):
        raise PermissionDenied("only operators can cancel runs")
    with contextlib.suppress(RunConflict):  # it ended meanwhile: the page shows how
        run_cancel(run=run, actor=request.user)
    return HttpResponseRedirect(reverse("run", args=[run.pk]))


@dashboard_view
def run_start(request: HttpRequest) -> HttpResponse:
    access = request.access  # type: ignore[attr-defined]
    if not access.membership.allows(Role.OPERATOR):
        raise PermissionDenied("only operators can start runs")
    errors: dict[str, list[str]] = {}
    step_problems: list[dict[str, Any]] = []
    form = {"goal": "", "url": "", "program": ""}
    if request.method == "POST":
        form = {key: request.POST.get(key, "").strip() for key in form}
        limit = settings.TWIN_MAX_BODY_BYTES
        upload = request.FILES.get("program_file")
        if upload is not None:
            if upload.size and upload.size > limit:
                errors.setdefault("program", []).append(f"the file is larger than {limit:,} bytes")
            else:
                form["program"] = upload.read().decode("utf-8", errors="replace").strip()
        steps: Any = None
        goal: Any = form["goal"]
        url: Any = form["url"]
        if not form["program"]:
            errors.setdefault("program", []).append("paste or upload a step program (a JSON list of steps)")
        else:
            try:
                # The API's bounds (size, depth, no NUL), so the form takes no more than the API.
                parsed = load_json(form["program"])
            except PayloadTooLarge:
                errors.setdefault("program", []).append(f"the program is larger than {limit:,} bytes")
            except ParseError as exc:
                errors.setdefault("program", []).append(f"this is {exc.detail}")
            else:
                # Accept a bare list of steps or a whole API body {"goal", "url", "steps"}.
                if isinstance(parsed, dict):
                    goal = form["goal"] or parsed.get("goal", "")
                    url = form["url"] or parsed.get("url", "")
                    steps = parsed.get("steps")
                else:
                    steps = parsed
        if not errors:
            try:
                run = run_create(
                    tenant=access.tenant,
                    created_by=request.user,
                    goal=goal,
                    url=url,
                    steps=steps,
                )
            except ProgramInvalid as exc:
                for problem in exc.problems:
                    if problem.step is not None:
                        step_problems.append(problem.as_dict())
                    elif problem.field in {"url", "goal"}:
                        errors.setdefault(problem.field, []).append(problem.message)
                    else:
                        errors.setdefault("program", []).append(problem.message)
            else:
                return HttpResponseRedirect(reverse("run", args=[run.pk]))
        # What the form shows again: the fields as typed (a value of the wrong type, as JSON had it).
        form["goal"] = goal if isinstance(goal, str) else str(goal)
        form["url"] = url if isinstance(url, str) else str(url)
    return render(
        request,
        "runs/start.html",
        {"form": form, "errors": errors, "step_problems": step_problems},
        status=400 if errors or step_problems else 200,
    )


@dashboard_view
def run_live(request: HttpRequest, pk: str) -> HttpResponse:
    access = request.access  # type: ignore[attr-defined]
    run = get_run_for_tenant(access.tenant, pk)
    return render(request, "runs/live.html", {"run": run})
