"""Webhooks in the dashboard: endpoints, their secrets (shown once), deliveries and attempts.

Everyone in the tenant reads; operators create, enable, disable, rotate, delete and redeliver,
through the services. A secret is never stored anywhere on its way to the page: it is in the
answer to the POST that made it (not cached), and nowhere else.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from tenants.models import Role
from tenants.web import dashboard_view

from .forms import EndpointForm
from .models import EVENT_TYPES, Delivery, DeliveryStatus, Endpoint
from .services import (
    EndpointInvalid,
    delivery_redeliver,
    endpoint_create,
    endpoint_delete,
    endpoint_rotate_secret,
    endpoint_update,
)

RECENT = 50


def _endpoint(request: HttpRequest, pk: Any) -> Endpoint:
    """The tenant's endpoint or 404 (another tenant's is not found, not forbidden)."""
    endpoint = Endpoint.objects.filter(tenant=request.access.tenant, pk=pk).first()  # type: ignore[attr-defined]
    if endpoint is None:
        raise Http404("no such webhook endpoint")
    return endpoint


def _require_operator(request: HttpRequest, what: str) -> None:
    if not request.access.membership.allows(Role.OPERATOR):  # type: ignore[attr-defined]
        raise PermissionDenied(f"only operators can {what}")


def _with_secret(response: HttpResponse) -> HttpResponse:
    """A page showing a secret is kept by no cache (and the browser does not store it)."""
    add_never_cache_headers(response)
    return response


def _endpoints(request: HttpRequest) -> list[Endpoint]:
    return list(
        Endpoint.objects.filter(tenant=request.access.tenant)  # type: ignore[attr-defined]
        .annotate(
            owed=Count(
                "deliveries",
                filter=Q(deliveries__status__in=[DeliveryStatus.PENDING, DeliveryStatus.SENDING]),
            )
        )
        .order_by("created_at")
    )


def _list_page(
    request: HttpRequest,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, list[str]] | None = None,
    created: Endpoint | None = None,
    secret: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "endpoints": _endpoints(request),
        "event_types": EVENT_TYPES,
        "form": form or {"url": "", "events": [], "description": ""},
        "errors": errors or {},
        "created": created,
        "secret": secret,
    }
    response = render(request, "webhooks/list.html", context, status=status)
    return _with_secret(response) if secret else response


@dashboard_view
@require_http_methods(["GET", "POST"])
def endpoint_list(request: HttpRequest) -> HttpResponse:
    """The tenant's endpoints; operators add one here (its secret is shown in the answer, once)."""
    if request.method != "POST":
        return _list_page(request)
    _require_operator(request, "add webhook endpoints")
    access = request.access  # type: ignore[attr-defined]
    form = {
        "url": request.POST.get("url", "").strip(),
        "events": [e for e in request.POST.getlist("events") if e in EVENT_TYPES],
        "description": request.POST.get("description", "").strip(),
    }
    bound = EndpointForm(request.POST)
    errors: dict[str, list[str]] = {}
    if not bound.is_valid():
        errors = {field: [str(e) for e in errs] for field, errs in bound.errors.items()}
    else:
        try:
            endpoint, secret = endpoint_create(
                tenant=access.tenant,
                actor=request.user,
                url=bound.cleaned_data["url"],
                events=bound.cleaned_data["events"],
                description=bound.cleaned_data["description"],
            )
        except EndpointInvalid as exc:
            errors = {exc.field: [exc.detail]}
        else:
            return _list_page(request, created=endpoint, secret=secret)
    return _list_page(request, form=form, errors=errors, status=400)


def _deliveries(endpoint: Endpoint, status: str) -> list[Delivery]:
    deliveries = (
        Delivery.objects.filter(endpoint=endpoint)
        .prefetch_related("attempt_log")
        .order_by("-created_at", "-event_id")
    )
    if status:
        deliveries = deliveries.filter(status=status)
    return list(deliveries[:RECENT])


def _detail_context(request: HttpRequest, endpoint: Endpoint) -> dict[str, Any]:
    status = request.GET.get("status", "")
    if status not in DeliveryStatus.values:
        status = ""
    deliveries = _deliveries(endpoint, status)
    return {
        "endpoint": endpoint,
        "deliveries": deliveries,
        "status": status,
        "statuses": DeliveryStatus.choices,
        "recent": RECENT,
        # Refresh while something is on its way (a pause's message arrives a moment after the pause).
        "in_flight": any(
            d.status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING) and endpoint.enabled
            for d in deliveries
        ),
        "log": list(endpoint.log.select_related("actor").order_by("-created_at")[:20]),
    }


@dashboard_view
def endpoint_detail(request: HttpRequest, pk: Any) -> HttpResponse:
    """One endpoint: its state, its recent messages with every attempt, what happened to it."""
    endpoint = _endpoint(request, pk)
    context = _detail_context(request, endpoint)
    if request.htmx:  # type: ignore[attr-defined]
        # The endpoint's facts (state, failures, last success) come along, swapped out of band.
        return render(request, "webhooks/detail.html#deliveries", {**context, "oob": True})
    return render(request, "webhooks/detail.html", context)


@dashboard_view
@require_POST
def endpoint_enabled(request: HttpRequest, pk: Any) -> HttpResponse:
    endpoint = _endpoint(request, pk)
    _require_operator(request, "enable or disable webhook endpoints")
    enable = request.POST.get("enabled") == "1"
    endpoint_update(endpoint=endpoint, actor=request.user, enabled=enable)
    messages.success(
        request,
        f"{endpoint.url} is enabled: messages that waited go out now."
        if enable
        else f"{endpoint.url} is disabled: messages wait until it is enabled again.",
    )
    back = (
        reverse("webhooks") if request.POST.get("next") == "list" else reverse("webhook", args=[endpoint.pk])
    )
    return HttpResponseRedirect(back)


@dashboard_view
@require_POST
def endpoint_rotate(request: HttpRequest, pk: Any) -> HttpResponse:
    """A new signing secret, shown in this answer only; the old one stops signing at once."""
    endpoint = _endpoint(request, pk)
    _require_operator(request, "rotate webhook secrets")
    secret = endpoint_rotate_secret(endpoint=endpoint, actor=request.user)
    context = {**_detail_context(request, endpoint), "secret": secret}
    return _with_secret(render(request, "webhooks/detail.html", context))


@dashboard_view
@require_http_methods(["GET", "POST"])
def endpoint_delete_view(request: HttpRequest, pk: Any) -> HttpResponse:
    """Asks first (GET), deletes on the confirming POST."""
    endpoint = _endpoint(request, pk)
    _require_operator(request, "delete webhook endpoints")
    if request.method == "POST":
        url = endpoint.url
        endpoint_delete(endpoint=endpoint, actor=request.user)
        messages.success(request, f"Deleted the endpoint {url}.")
        return HttpResponseRedirect(reverse("webhooks"))
    counts = Delivery.objects.filter(endpoint=endpoint).aggregate(
        total=Count("pk"),
        owed=Count("pk", filter=Q(status__in=[DeliveryStatus.PENDING, DeliveryStatus.SENDING])),
    )
    return render(request, "webhooks/delete.html", {"endpoint": endpoint, **counts})


@dashboard_view
@require_POST
def delivery_redeliver_view(request: HttpRequest, pk: Any, delivery_id: Any) -> HttpResponse:
    endpoint = _endpoint(request, pk)
    _require_operator(request, "redeliver webhook messages")
    delivery = Delivery.objects.filter(endpoint=endpoint, pk=delivery_id).first()
    if delivery is None:
        raise Http404("no such delivery")
    delivery = delivery_redeliver(delivery=delivery, actor=request.user)
    note = "" if endpoint.enabled else " It goes out when the endpoint is enabled again."
    messages.success(request, f"{delivery.event_type} ({delivery.message_id}) is queued again.{note}")
    return HttpResponseRedirect(reverse("webhook", args=[endpoint.pk]) + f"#delivery-{delivery.pk}")
