"""Skills in the dashboard: the list, a skill's page, running one from a form, archiving, and
saving a completed run as a skill (or a repaired replay as the skill's next version).

Everyone in the tenant reads; operators save, run and archive, through skills.services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from runs.selectors import get_run_for_tenant
from runs.services import ProgramInvalid
from tenants.models import Role
from tenants.web import dashboard_view

from . import selectors
from .display import describe_steps, run_chart, version_history
from .models import Skill
from .services import (
    CompileError,
    Preview,
    SkillParamsInvalid,
    compile_preview,
    skill_archive,
    skill_compile,
    skill_run,
)


def _require_operator(request: HttpRequest, what: str) -> None:
    if not request.access.membership.allows(Role.OPERATOR):  # type: ignore[attr-defined]
        raise PermissionDenied(f"only operators can {what}")


@dashboard_view
def skill_list(request: HttpRequest) -> HttpResponse:
    archived = request.GET.get("archived") == "1"
    rows = selectors.skills_overview(request.access.tenant, archived=archived)  # type: ignore[attr-defined]
    return render(request, "skills/list.html", {"rows": rows, "archived": archived})


@dashboard_view
def skill_detail(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = request.access.tenant  # type: ignore[attr-defined]
    skill = selectors.get_skill(tenant, slug)
    newest = selectors.get_version(skill)
    versions = list(skill.versions.select_related("source_run", "created_by").order_by("version"))
    stats = selectors.skill_stats(skill)
    series = stats["series"]
    runs = list(selectors.skill_runs(skill)[: selectors.RECENT_RUNS])
    return render(
        request,
        "skills/detail.html",
        {
            "skill": skill,
            "version": newest,
            "steps": describe_steps(newest.steps),
            "params": newest.params,
            "history": version_history(versions),
            "stats": stats,
            "runs": runs,
            "duration_chart": run_chart(series, metric="duration_s"),
            "cost_chart": run_chart(series, metric="amount", currency=tenant.currency),
            "currency": tenant.currency,
        },
    )


@dashboard_view
@require_POST
def skill_archive_view(request: HttpRequest, slug: str) -> HttpResponse:
    skill = selectors.get_skill(request.access.tenant, slug, archived=False)  # type: ignore[attr-defined]
    _require_operator(request, "archive skills")
    skill_archive(skill, actor=request.user)
    messages.success(request, f"Archived the skill {skill.name}. Its runs keep their link to it.")
    return HttpResponseRedirect(reverse("skills"))


# -- running a skill from a form ----------------------------------------------------------------------
@dataclass
class ParamField:
    name: str
    type: str
    example: Any
    options: list[str]
    value: Any = ""
    errors: list[str] = field(default_factory=list)

    @property
    def input_name(self) -> str:
        return f"p-{self.name}"

    @property
    def input_id(self) -> str:
        return f"param-{self.name}"


def _param_fields(params: list[dict[str, Any]]) -> list[ParamField]:
    return [
        ParamField(
            name=str(p.get("name", "")),
            type=str(p.get("type") or "string"),
            example=p.get("example", ""),
            options=[str(o) for o in p.get("options") or []],
        )
        for p in params
        if isinstance(p, dict) and p.get("name")
    ]


def _number(text: str) -> Any:
    """The number a person typed; the text itself when it is none (the service says why)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _read_params(fields: list[ParamField], data: Any) -> dict[str, Any]:
    """The params of a submitted form: an empty field is a missing param, a box unticked is false."""
    params: dict[str, Any] = {}
    for f in fields:
        if f.type == "boolean":
            f.value = data.get(f.input_name) == "on"
            params[f.name] = f.value
            continue
        f.value = data.get(f.input_name, "").strip()
        if f.value == "":
            continue
        params[f.name] = _number(f.value) if f.type == "number" else f.value
    return params


@dashboard_view
def skill_run_view(request: HttpRequest, slug: str) -> HttpResponse:
    access = request.access  # type: ignore[attr-defined]
    skill = selectors.get_skill(access.tenant, slug, archived=False)
    _require_operator(request, "run skills")
    version = selectors.get_version(skill)
    fields = _param_fields(version.params)
    errors: list[str] = []
    if request.method == "POST":
        params = _read_params(fields, request.POST)
        by_name = {f.name: f for f in fields}
        try:
            run = skill_run(tenant=access.tenant, skill=skill, actor=request.user, params=params)
        except SkillParamsInvalid as exc:
            for problem in exc.problems:
                name = problem.field.removeprefix("params.") if problem.field.startswith("params.") else ""
                if name in by_name:
                    by_name[name].errors.append(problem.message)
                else:
                    errors.append(problem.message)
        except ProgramInvalid as exc:
            errors.extend(
                f"Step {p.step}: {p.message}" if p.step is not None else p.message for p in exc.problems
            )
        else:
            return HttpResponseRedirect(reverse("run", args=[run.pk]))
    else:
        for f in fields:
            f.value = False if f.type == "boolean" else ""
    invalid = bool(errors) or any(f.errors for f in fields)
    return render(
        request,
        "skills/run.html",
        {"skill": skill, "version": version, "fields": fields, "errors": errors},
        status=400 if invalid else 200,
    )


# -- saving a run as a skill ---------------------------------------------------------------------------
@dataclass
class Suggestion:
    index: int
    name: str
    literal: str
    reason: str
    steps: list[int]
    chosen: bool = False
    errors: list[str] = field(default_factory=list)


def _suggestions(preview: Preview) -> list[Suggestion]:
    return [
        Suggestion(
            index=i,
            name=str(s.get("name", "")),
            literal=str(s.get("literal", "")),
            reason=str(s.get("reason", "")),
            steps=[int(n) for n in s.get("steps") or []],
        )
        for i, s in enumerate(preview.suggested)
    ]


@dashboard_view
def run_save_skill(request: HttpRequest, pk: str) -> HttpResponse:
    access = request.access  # type: ignore[attr-defined]
    run = get_run_for_tenant(access.tenant, pk)
    _require_operator(request, "save runs as skills")
    fixing: Skill | None = None
    if selectors.repaired_replay(run) and run.skill_version is not None:
        fixing = run.skill_version.skill
    form = {
        "slug": fixing.slug if fixing else "",
        "name": fixing.name if fixing else "",
        "extra_name": "",
        "extra_literal": "",
    }
    errors: dict[str, list[str]] = {}
    general: list[str] = []
    status = 200
    try:
        preview: Preview | None = compile_preview(run, slug=form["slug"] or None, name=form["name"] or None)
    except CompileError as exc:
        preview, status = None, exc.http_status
        general.append(exc.detail)
    suggestions = _suggestions(preview) if preview else []
    if preview is not None and not form["slug"]:
        form["slug"], form["name"] = preview.slug, preview.name

    if request.method == "POST" and preview is not None:
        form = {key: request.POST.get(key, "").strip() for key in form}
        params: dict[str, Any] = {}
        for s in suggestions:
            s.chosen = request.POST.get(f"suggest-{s.index}") == "on"
            s.name = request.POST.get(f"suggest-{s.index}-name", s.name).strip()
            if s.chosen:
                if not s.name:
                    s.errors.append("give the parameter a name")
                else:
                    params[s.name] = s.literal
        if form["extra_name"] or form["extra_literal"]:
            if not (form["extra_name"] and form["extra_literal"]):
                errors.setdefault("extra", []).append(
                    "give both the parameter's name and the value it replaces"
                )
            else:
                params[form["extra_name"]] = form["extra_literal"]
        if not errors and not any(s.errors for s in suggestions):
            try:
                version = skill_compile(
                    run,
                    actor=request.user,
                    slug=form["slug"] or None,
                    name=form["name"] or None,
                    params=params,
                )
            except CompileError as exc:
                status = exc.http_status
                for problem in exc.problems:
                    _place(problem.field, problem.message, errors, suggestions, form, general)
                if not exc.problems:
                    _place(_field_of(exc), exc.detail, errors, suggestions, form, general)
            else:
                skill = version.skill
                what = "the fix" if fixing else "the run"
                messages.success(request, f"Saved {what} as {skill.name} version {version.version}.")
                return HttpResponseRedirect(reverse("skill", args=[skill.slug]))
        else:
            status = 400
    return render(
        request,
        "skills/save.html",
        {
            "run": run,
            "preview": preview,
            "steps": describe_steps(preview.steps) if preview else [],
            "suggestions": suggestions,
            "form": form,
            "errors": errors,
            "general": general,
            "fixing": fixing,
        },
        status=status,
    )


def _field_of(exc: CompileError) -> str:
    """Which form field a refusal without problems is about, from its code."""
    for key in ("slug", "name"):
        if key in exc.code:
            return key
    return ""


def _place(
    where: str,
    message: str,
    errors: dict[str, list[str]],
    suggestions: list[Suggestion],
    form: dict[str, str],
    general: list[str],
) -> None:
    """Show a refusal at the field it is about: slug, name, a parameter, or the page."""
    if where in {"slug", "name"}:
        errors.setdefault(where, []).append(message)
        return
    if where.startswith("params."):
        name = where.removeprefix("params.")
        for s in suggestions:
            if s.chosen and s.name == name:
                s.errors.append(message)
                return
        if name and name == form.get("extra_name"):
            errors.setdefault("extra", []).append(message)
            return
    general.append(message)
