"""The approval inbox: pending pauses, the most urgent first, a page at a time, decided inline."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_POST

from runs.models import Step
from runs.services import RunConflict
from tenants.models import Membership, Role
from tenants.web import dashboard_view, web_access

from . import selectors
from .links import LinkExpired, LinkInvalid, approval_for_link
from .models import Approval, ApprovalStatus, Channel, Trigger
from .services import (
    AlreadyApproved,
    AnswerInvalid,
    Client,
    Decision,
    DecisionForbidden,
    PauseLocked,
    approval_decide,
    took_over,
)

AGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24)}
PAGE = selectors.PAGE


def _pending(request: HttpRequest) -> tuple[Any, dict[str, str]]:
    """The tenant's pending pauses under the request's filters, and the filters (and order) as used."""
    access = request.access  # type: ignore[attr-defined]
    pending = selectors.pending_for_tenant(access.tenant)
    filters = {
        "trigger": request.GET.get("trigger", ""),
        "age": request.GET.get("age", ""),
        "order": request.GET.get("order", ""),
    }
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
    if filters["order"] not in selectors.ORDERS or filters["order"] == selectors.DEFAULT_ORDER:
        filters["order"] = ""  # the default stays out of the address
    return pending, filters


NOUNS = {
    Trigger.APPROVAL: "approval pauses",
    Trigger.MFA: "one-time-code pauses",
    Trigger.AMBIGUITY: "ambiguity pauses",
    Trigger.BLOCKED: "blocked pauses",
}
AGE_PHRASES = {"1h": " from the last hour", "24h": " from the last day", "older": " older than a day"}


def _range_text(page: selectors.InboxPage) -> str:
    """ "51-100 of 10,000 pending" (with an en dash; the whole list: "3 pending")."""
    if not page.items:
        return ""
    if page.start == 1 and page.end == page.total:
        return f"{page.total:,} pending"
    return f"{page.start:,}\u2013{page.end:,} of {page.total:,} pending"


def _empty_text(filters: dict[str, str]) -> str:
    """What an empty filtered list says ("No one-time-code pauses are waiting."); "" unfiltered."""
    if not filters["trigger"] and not filters["age"]:
        return ""
    noun = NOUNS.get(filters["trigger"], "pauses")  # type: ignore[call-overload]
    return f"No {noun}{AGE_PHRASES.get(filters['age'], '')} are waiting."


def _query(filters: dict[str, str], **more: str) -> str:
    return urlencode({name: value for name, value in {**filters, **more}.items() if value})


def _with_planned_steps(items: list[Approval]) -> None:
    """Each item of a run the agent plans gets ``planned_step`` (what the model planned at the step
    it waits at; None otherwise): one query for the page, not one a card."""
    planned = [item for item in items if item.run.planner == "model"]
    for item in items:
        item.planned_step = None  # type: ignore[attr-defined]
    if not planned:
        return
    where = Q()
    for item in planned:
        where |= Q(run_id=item.run_id, index=item.step_index)
    found = {
        (run_id, index): record
        for run_id, index, record in Step.objects.filter(where).values_list("run_id", "index", "planned")
    }
    for item in planned:
        item.planned_step = found.get((item.run_id, item.step_index))  # type: ignore[attr-defined]


@dashboard_view
def inbox(request: HttpRequest) -> HttpResponse:
    access = request.access  # type: ignore[attr-defined]
    pending, filters = _pending(request)
    order = selectors.ORDERS[filters["order"] or selectors.DEFAULT_ORDER]
    cursor = selectors.parse_cursor(request.GET.get("cursor", ""), order)
    # A live refresh says when the person's view began (the page stamped it); anything else starts now.
    seen = parse_datetime(request.GET.get("seen", "")[:40]) if request.htmx else None  # type: ignore[attr-defined]
    if seen is not None and timezone.is_naive(seen):
        seen = None
    page = selectors.inbox_page(pending, order, cursor, seen=seen, page=PAGE)
    _with_planned_steps(page.items)
    context: dict[str, Any] = {
        "page": page,
        "items": page.items,
        "filters": filters,
        "order": order,
        "orders": selectors.ORDERS.values(),
        "triggers": Trigger.choices,
        "trigger_label": dict(Trigger.choices).get(filters["trigger"], ""),
        "total": page.total,
        "seen": (seen or timezone.now()).isoformat(),
        "cursor": request.GET.get("cursor", "") if page.start > 1 else "",
        "first_page": "?" + _query(filters),
        "next_page": "?" + _query(filters, cursor=page.next_cursor) if page.next_cursor else "",
        "prev_page": "?" + _query(filters, cursor=page.prev_cursor) if page.prev_cursor else "",
        # Arrivals further down than the first page: newest first shows them at the top.
        "newest_page": "?" + _query({**filters, "order": "newest"}),
        "range_text": _range_text(page),
        "empty_text": _empty_text(filters),
        "today": timezone.now().strftime("%Y%m%d"),
    }
    if page.start <= 1:  # the first page carries the notices of pauses that expired meanwhile
        expired = Approval.objects.filter(tenant=access.tenant)
        if filters["trigger"]:
            expired = expired.filter(trigger=filters["trigger"])
        context["expired"], context["expired_total"] = selectors.recently_expired(expired)
    if not filters["trigger"] and not filters["age"]:
        context["pending_count"] = page.total  # the navigation bar's count: no second COUNT
    if not request.htmx:  # type: ignore[attr-defined]
        return render(request, "approvals/inbox.html", context)
    response = render(request, "approvals/inbox.html#list", context)
    # The address shows the filters and page the list was rendered with, whichever request won.
    query = _query(filters, cursor=context["cursor"])
    response["HX-Replace-Url"] = reverse("inbox") + (f"?{query}" if query else "")
    return response


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
    conflict = False
    try:
        # Deciding after taking the page over is deciding through the take-over.
        channel = Channel.TAKEOVER if took_over(approval, request.user) else Channel.DASHBOARD
        approval_decide(
            run=approval.run,
            decision=decision,
            actor=request.user,
            channel=channel,
            client=Client.of(request),
        )
    except AnswerInvalid as exc:
        return _item(request, approval, error=exc.detail)
    except (DecisionForbidden, PauseLocked) as exc:
        return _item(request, approval, error=str(exc))
    except AlreadyApproved as exc:
        return _item(request, approval, error=exc.detail)
    except RunConflict as exc:
        # Someone else decided first: show who, not an error page.
        approval.refresh_from_db()
        if approval.status == ApprovalStatus.PENDING:
            return _item(request, approval, error=exc.detail)
        conflict = True
    approval.refresh_from_db()
    return _item(request, approval, decided=True, conflict=conflict)


def _item(
    request: HttpRequest,
    approval: Approval,
    *,
    error: str = "",
    decided: bool = False,
    conflict: bool = False,
) -> HttpResponse:
    """The item again (with the error, or decided), and a notice of the outcome that outlives it."""
    context = {"item": approval, "error": error, "conflict": conflict}
    if not request.htmx:  # type: ignore[attr-defined]
        # A form posted without JavaScript: back to the page it came from, the outcome as a message.
        if error:
            messages.error(request, error)
        elif decided:
            messages.info(request, render_to_string("approvals/_notice.html#text", context, request=request))
        target = request.headers.get("referer", "")
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
            target = reverse("inbox")
        return HttpResponseRedirect(target)
    # The form swaps its answer into #notices; the item is replaced out of band when still shown.
    # An error goes to #notices too: a live refresh of the list may redraw the item without it.
    notice = render_to_string("approvals/_notice.html", context, request=request) if decided or error else ""
    item = render_to_string("approvals/_card.html", {**context, "oob": True}, request=request)
    return HttpResponse(notice + item)


# -- decision links (from an email or a chat message) ----------------------------------------------
@login_required
def decision_link(request: HttpRequest, token: str) -> HttpResponse:
    """Show the pause to an approver of its tenant; a POST decides it (channel ``link``)."""
    try:
        approval = approval_for_link(token)
    except LinkInvalid:
        return render(request, "approvals/link.html", {"problem": "invalid"}, status=404)
    except LinkExpired:
        return render(request, "approvals/link.html", {"problem": "expired"}, status=410)
    membership = Membership.objects.filter(user_id=request.user.pk or 0, tenant=approval.tenant).first()
    if membership is None or not membership.allows(Role.APPROVER):
        raise PermissionDenied("only approvers of this run's tenant can use its decision link")
    request.session["tenant_id"] = approval.tenant_id  # the pages around it show that tenant
    request.access = web_access(request)  # type: ignore[attr-defined]
    action = request.POST.get("action") if request.method == "POST" else request.GET.get("action", "")
    context: dict[str, Any] = {"item": approval, "action": action, "token": token}
    if request.method == "POST" and approval.status == ApprovalStatus.PENDING:
        if action not in {"approve", "reject"}:
            context["error"] = "choose approve or reject"
        else:
            decision = Decision(
                approve=action == "approve",
                input=request.POST.get("input"),
                choice=request.POST.get("choice"),
                note=request.POST.get("note", "").strip(),
            )
            try:
                approval_decide(
                    run=approval.run,
                    decision=decision,
                    actor=request.user,
                    channel=Channel.LINK,
                    client=Client.of(request),
                )
            except (AnswerInvalid, DecisionForbidden, PauseLocked) as exc:
                context["error"] = getattr(exc, "detail", None) or str(exc)
            except AlreadyApproved as exc:
                context["error"] = exc.detail
            except RunConflict:
                pass  # decided meanwhile: the page says by whom
            approval.refresh_from_db()
            context["just_decided"] = approval.decided_by_id == request.user.pk
            # A pause that needs several approvals still waits after this one: say how many more.
            still_pending = approval.status == ApprovalStatus.PENDING
            context["just_voted"] = still_pending and request.user.get_username() in approval.voter_names
    return render(request, "approvals/link.html", context, status=400 if context.get("error") else 200)
