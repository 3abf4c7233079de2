"""Endpoints (create, enable, rotate) and deliveries (queue, attempt, retry, redeliver).

A delivery row is written in the same transaction as the run event it announces (an outbox):
losing Redis loses no message, the beat sweeper sends what is due. Delivery is at least once,
under a ``webhook-id`` that never changes, and one run's messages reach an endpoint in event
order: a message waits while an earlier one of its run is still owed to that endpoint.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from engine.netguard import UrlRefused, check_url
from tenants.models import Tenant
from vault.crypto import open_text, seal_text

from . import signing, transport
from .models import DETAILED_EVENTS, EVENT_TYPES, Attempt, Delivery, DeliveryStatus, Endpoint, EndpointEvent

# Seconds to wait before attempt 2, 3, …: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
# 10 h (the Standard Webhooks reference schedule): 8 attempts over about 27 hours.
SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)
# Retries due within this many seconds are queued with a countdown; later ones by the sweeper.
COUNTDOWN_LIMIT = 60


class EndpointInvalid(ValueError):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field, self.detail = field, detail


def secret_scope(tenant_id: int) -> str:
    return f"webhooks:{tenant_id}"


def _check_events(events: Any) -> list[str]:
    if events is None:
        return []
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise EndpointInvalid("events", "events must be a list of event types")
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise EndpointInvalid(
            "events", f"unknown event types: {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}"
        )
    return sorted(set(events), key=EVENT_TYPES.index)


def _check_url(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise EndpointInvalid("url", "url is required")
    url = url.strip()
    try:
        check_url(url)
    except UrlRefused as exc:
        raise EndpointInvalid("url", str(exc)) from None
    return url


def endpoint_create(
    *, tenant: Tenant, url: Any, events: Any = None, description: str = "", actor: Any = None
) -> tuple[Endpoint, str]:
    """A new endpoint and its signing secret (returned once; stored encrypted)."""
    url = _check_url(url)
    events = _check_events(events)
    secret = signing.new_secret()
    endpoint = Endpoint.objects.create(
        tenant=tenant,
        url=url,
        events=events,
        description=description[:200],
        sealed_secret=seal_text(secret, scope=secret_scope(tenant.pk)),
        created_by=_user(actor),
    )
    return endpoint, secret


def endpoint_secret(endpoint: Endpoint) -> str:
    return open_text(endpoint.sealed_secret, scope=secret_scope(endpoint.tenant_id))


def endpoint_update(
    *, endpoint: Endpoint, actor: Any = None, url: Any = None, events: Any = None, enabled: bool | None = None
) -> Endpoint:
    fields = []
    if url is not None:
        endpoint.url = _check_url(url)
        fields.append("url")
    if events is not None:
        endpoint.events = _check_events(events)
        fields.append("events")
    with transaction.atomic():
        if fields:
            endpoint.save(update_fields=fields)
        if enabled is True and not endpoint.enabled:
            endpoint_enable(endpoint=endpoint, actor=actor)
        elif enabled is False and endpoint.enabled:
            Endpoint.objects.filter(pk=endpoint.pk).update(
                enabled=False, disabled_reason="disabled by a person"
            )
            endpoint.enabled, endpoint.disabled_reason = False, "disabled by a person"
            EndpointEvent.objects.create(endpoint=endpoint, type="endpoint.disabled", actor=_user(actor))
    return endpoint


def endpoint_enable(*, endpoint: Endpoint, actor: Any = None) -> None:
    """Enable again; messages that waited while it was off go out now, in order."""
    with transaction.atomic():
        Endpoint.objects.filter(pk=endpoint.pk).update(enabled=True, disabled_reason="", failure_streak=0)
        endpoint.enabled, endpoint.disabled_reason, endpoint.failure_streak = True, "", 0
        EndpointEvent.objects.create(endpoint=endpoint, type="endpoint.enabled", actor=_user(actor))
        Delivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).update(
            next_attempt_at=timezone.now()
        )
    transaction.on_commit(dispatch_due)


def endpoint_rotate_secret(*, endpoint: Endpoint, actor: Any = None) -> str:
    secret = signing.new_secret()
    with transaction.atomic():
        Endpoint.objects.filter(pk=endpoint.pk).update(
            sealed_secret=seal_text(secret, scope=secret_scope(endpoint.tenant_id))
        )
        EndpointEvent.objects.create(endpoint=endpoint, type="endpoint.secret_rotated", actor=_user(actor))
    endpoint.refresh_from_db()
    return secret


def endpoint_delete(*, endpoint: Endpoint, actor: Any = None) -> None:
    """Delete the endpoint with its messages and their attempts (nothing more is sent to it)."""
    endpoint.delete()


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "pk", None) else None


# -- queueing ---------------------------------------------------------------------------------------
class _AbsoluteUrls:
    """What the run serializer needs of a request, to write absolute URLs into a message."""

    def build_absolute_uri(self, path: str) -> str:
        return settings.TWIN_PUBLIC_URL.rstrip("/") + path


def on_run_event(run: Any, event: Any, data: dict[str, Any]) -> None:
    """Subscribed to every run event (runs.events.subscribe, in WebhooksConfig.ready)."""
    deliveries_for_event(
        run, event_type=event.type, event_id=event.pk, created_at=event.created_at, event_data=data
    )


def message_data(event_type: str, run_data: Any, event_data: dict[str, Any] | None) -> dict[str, Any]:
    """A message's ``data``: the run; for DETAILED_EVENTS also the event's own data (without the
    keys kept for the audit trail only) and, for ``skill.compiled``, the skill version it made."""
    from runs.events import public_data

    data: dict[str, Any] = {"run": run_data}
    if event_type in DETAILED_EVENTS:
        detail = public_data(event_data)
        data["event"] = detail
        if event_type == "skill.compiled":
            data["skill"] = {
                "id": detail.get("skill_id"),
                "slug": detail.get("skill"),
                "version": detail.get("version"),
            }
    return data


def deliveries_for_event(
    run: Any,
    *,
    event_type: str,
    event_id: int,
    created_at: Any,
    event_data: dict[str, Any] | None = None,
) -> list[Delivery]:
    """Queue the message for every endpoint that wants it (call inside the event's transaction)."""
    if event_type not in EVENT_TYPES:
        return []
    endpoints = [
        e for e in Endpoint.objects.filter(tenant_id=run.tenant_id, enabled=True) if e.wants(event_type)
    ]
    if not endpoints:
        return []
    from runs.selectors import runs_for_tenant
    from runs.serializers import RunSerializer

    current = runs_for_tenant(run.tenant).get(pk=run.pk)
    payload = {
        "type": event_type,
        "timestamp": created_at.isoformat().replace("+00:00", "Z"),
        "data": message_data(
            event_type, RunSerializer(current, context={"request": _AbsoluteUrls()}).data, event_data
        ),
    }
    body = json.dumps(payload, separators=(",", ":"), default=str)
    now = timezone.now()
    deliveries = Delivery.objects.bulk_create(
        [
            Delivery(
                tenant_id=run.tenant_id,
                endpoint=endpoint,
                run_id=run.pk,
                event_id=event_id,
                event_type=event_type,
                body=body,
                next_attempt_at=now,
            )
            for endpoint in endpoints
        ]
    )
    ids = [str(d.pk) for d in deliveries]
    transaction.on_commit(lambda: _enqueue(ids))
    return deliveries


def _enqueue(ids: list[str], countdown: float = 0) -> None:
    from .tasks import deliver_webhook_task

    for delivery_id in ids:
        try:
            deliver_webhook_task.apply_async(args=(delivery_id,), countdown=countdown, queue="webhooks")
        except Exception:  # Redis is transport: the sweeper sends what is due
            return


def _owed_before(endpoint_id: Any, run_id: Any, event_id: Any) -> Any:
    """Messages of the same run to the same endpoint, earlier in line and not settled yet (values
    or ``OuterRef``s: one message's check, or the sweeper's subquery)."""
    return Delivery.objects.filter(
        endpoint_id=endpoint_id,
        run_id=run_id,
        event_id__lt=event_id,
        status__in=[DeliveryStatus.PENDING, DeliveryStatus.SENDING],
    )


def _earlier_owed(delivery: Delivery) -> bool:
    if delivery.run_id is None:
        return False
    return bool(_owed_before(delivery.endpoint_id, delivery.run_id, delivery.event_id).exists())


def _next_in_line(delivery: Delivery) -> None:
    """After a message of a run is settled, the next one of that run to that endpoint may go."""
    if delivery.run_id is None:
        return
    following = (
        Delivery.objects.filter(
            endpoint_id=delivery.endpoint_id,
            run_id=delivery.run_id,
            event_id__gt=delivery.event_id,
            status=DeliveryStatus.PENDING,
        )
        .order_by("event_id")
        .values_list("pk", "next_attempt_at")
        .first()
    )
    if following is not None and (following[1] is None or following[1] <= timezone.now()):
        _enqueue([str(following[0])])


# -- sending ------------------------------------------------------------------------------------------
def delivery_attempt(delivery_id: Any) -> str:
    """Make one attempt if the message is due and first in line; say what happened."""
    now = timezone.now()
    delivery = Delivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None:
        return "gone"
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        return "endpoint disabled"
    if delivery.status != DeliveryStatus.PENDING and not (
        delivery.status == DeliveryStatus.SENDING and delivery.lease_until and delivery.lease_until < now
    ):
        return f"already {delivery.status}"
    if delivery.next_attempt_at and delivery.next_attempt_at > now + timedelta(seconds=1):
        return "not due"
    if _earlier_owed(delivery):
        return "waiting for an earlier message of its run"
    lease = now + timedelta(seconds=settings.TWIN_WEBHOOK_TIMEOUT + 30)
    claimed = (
        Delivery.objects.filter(pk=delivery.pk)
        .filter(
            Q(status=DeliveryStatus.PENDING) | Q(status=DeliveryStatus.SENDING, lease_until__lt=now),
        )
        .update(status=DeliveryStatus.SENDING, lease_until=lease, attempts=delivery.attempts + 1)
    )
    if not claimed:
        return "another worker has it"
    number = delivery.attempts + 1
    started = timezone.now()
    timestamp = int(started.timestamp())
    body = delivery.body.encode()
    outcome = transport.post(
        endpoint.url, body, signing.headers(endpoint_secret(endpoint), delivery.message_id, timestamp, body)
    )
    with transaction.atomic():
        Attempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=started,
            duration_ms=outcome.duration_ms,
            status_code=outcome.status_code,
            response_excerpt=outcome.excerpt,
            error=outcome.error,
            ok=outcome.ok,
        )
        if outcome.ok:
            Delivery.objects.filter(pk=delivery.pk).update(
                status=DeliveryStatus.DELIVERED,
                delivered_at=timezone.now(),
                lease_until=None,
                next_attempt_at=None,
            )
            Endpoint.objects.filter(pk=endpoint.pk).update(failure_streak=0, last_success_at=timezone.now())
            result = "delivered"
        else:
            result = _failed(delivery, endpoint, number, outcome)
    if result in {"delivered", "gave up"}:
        transaction.on_commit(lambda: _next_in_line(delivery))
    return result


def _failed(delivery: Delivery, endpoint: Endpoint, number: int, outcome: transport.Outcome) -> str:
    now = timezone.now()
    streak = endpoint.failure_streak + 1
    Endpoint.objects.filter(pk=endpoint.pk).update(failure_streak=streak, last_failure_at=now)
    if number >= settings.TWIN_WEBHOOK_MAX_ATTEMPTS:
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.FAILED, lease_until=None, next_attempt_at=None
        )
        result = "gave up"
    else:
        delay = SCHEDULE[min(number - 1, len(SCHEDULE) - 1)] * settings.TWIN_WEBHOOK_BACKOFF_SCALE
        delay *= random.uniform(0.8, 1.2)  # jitter: receivers that come back are not hit all at once
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.PENDING, lease_until=None, next_attempt_at=now + timedelta(seconds=delay)
        )
        if delay <= COUNTDOWN_LIMIT:
            delivery_id = str(delivery.pk)
            transaction.on_commit(lambda: _enqueue([delivery_id], countdown=delay))
        result = "will retry"
    if endpoint.enabled and streak >= settings.TWIN_WEBHOOK_DISABLE_AFTER:
        reason = (
            f"disabled after {streak} failed attempts in a row (last: {outcome.error or outcome.status_code})"
        )
        if Endpoint.objects.filter(pk=endpoint.pk, enabled=True).update(
            enabled=False, disabled_reason=reason[:300]
        ):
            EndpointEvent.objects.create(
                endpoint=endpoint,
                type="endpoint.disabled",
                data={
                    "failure_streak": streak,
                    "last_error": outcome.error,
                    "last_status": outcome.status_code,
                },
            )
    return result


def dispatch_due(limit: int = 500) -> int:
    """Queue every message that is due (retries, messages that waited, ones Redis lost)."""
    now = timezone.now()
    owed_before = _owed_before(OuterRef("endpoint_id"), OuterRef("run_id"), OuterRef("event_id"))
    due = (
        Delivery.objects.filter(endpoint__enabled=True)
        .filter(
            Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            | Q(status=DeliveryStatus.SENDING, lease_until__lt=now)
        )
        .exclude(Exists(owed_before))
        .order_by("event_id")
        .values_list("pk", flat=True)[:limit]
    )
    ids = [str(pk) for pk in due]
    _enqueue(ids)
    return len(ids)


def delivery_redeliver(*, delivery: Delivery, actor: Any = None) -> Delivery:
    """Send a message again, under the same ``webhook-id`` (receivers that have it ignore it)."""
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).exclude(status=DeliveryStatus.SENDING).update(
            status=DeliveryStatus.PENDING, next_attempt_at=timezone.now(), lease_until=None
        )
        EndpointEvent.objects.create(
            endpoint_id=delivery.endpoint_id,
            type="delivery.redelivered",
            actor=_user(actor),
            data={"delivery_id": str(delivery.pk), "event_type": delivery.event_type},
        )
    delivery_id = str(delivery.pk)
    transaction.on_commit(lambda: _enqueue([delivery_id]))
    delivery.refresh_from_db()
    return delivery
