"""The approval inbox: pending pauses, oldest first, decided inline."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from runs.services import RunConflict
from tenants.models import Role
from tenants.web import dashboard_view

from .models import Approval, ApprovalStatus, Channel, Trigger
from .services import AnswerInvalid, Decision, DecisionForbidden, approval_decide

AGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24)}
PAGE = 50


def _pending(request: HttpRequest) -> tuple[Any, dict[str, str]]:
    access = request.access  # type: ignore[attr-defined]
    pending = (
        Approval.objects.filter(tenant=access.tenant, status=ApprovalStatus.PENDING)
        .select_related("run", "run__created_by")
        .order_by("created_at", "id")
    )
    filters = {"trigger": request.GET.get("trigger", ""), "age": request.GET.get("age", "")}
    if filters["trigger"] in Trigger.values:
        pending = pending.filter(trigger=filters["trigger"])
    else:
        filters["trigger"] = ""
    now = timezone.now()
    if filters["age"] in AGES:
        pending = pending.filter(created_at__gte=now - AGES[filters["age"]])
    elif filters["age"] == "older":
        pending = pending.filter(created_at__lt=now - AGES["24h"])
    else:
        filters["age"] = ""
    return pending, filters


@dashboard_view
def inbox(request: HttpRequest) -> HttpResponse:
    pending, filters = _pending(request)
    items = list(pending[: PAGE + 1])
    context = {
        "items": items[:PAGE],
        "more": len(items) > PAGE,
        "filters": filters,
        "triggers": Trigger.choices,
        "total": pending.count() if len(items) > PAGE else len(items),
    }
    template = "approvals/inbox.html#list" if request.htmx else "approvals/inbox.html"  # type: ignore[attr-defined]
    return render(request, template, context)


@dashboard_view
def pending_count(request: HttpRequest) -> HttpResponse:
    return render(request, "base.html#pending-count", {})


@dashboard_view
@require_POST
def decide(request: HttpRequest, approval_id: str) -> HttpResponse:
    access = request.access  # type: ignore[attr-defined]
    approval = get_object_or_404(Approval.objects.select_related("run"), pk=approval_id, tenant=access.tenant)
    if not access.membership.allows(Role.APPROVER):
        raise PermissionDenied("only approvers can decide pauses")
    action = request.POST.get("action")
    if action not in {"approve", "reject"}:
        return _item(request, approval, error="choose approve or reject")
    decision = Decision(
        approve=action == "approve",
        input=request.POST.get("input"),
        choice=request.POST.get("choice"),
        note=request.POST.get("note", "").strip(),
    )
    try:
        approval_decide(run=approval.run, decision=decision, actor=request.user, channel=Channel.DASHBOARD)
    except AnswerInvalid as exc:
        return _item(request, approval, error=exc.detail)
    except DecisionForbidden as exc:
        return _item(request, approval, error=str(exc))
    except RunConflict:
        pass  # someone else decided first: show who, not an error page
    approval.refresh_from_db()
    return _item(request, approval)


def _item(request: HttpRequest, approval: Approval, *, error: str = "") -> HttpResponse:
    return render(request, "approvals/inbox.html#item", {"item": approval, "error": error})
