"""``Idempotency-Key`` on POSTs that create or decide: a retry gets the first answer, nothing new.

The key is scoped to the tenant. The first request with a key is recorded before it runs;
when it answers (below 500), its answer is stored. A retry with the same key and the same
request gets that answer again, with ``Idempotent-Replayed: true``; the same key with a
different request is a 422; a retry while the first is still running is a 409. A request
that raised (a 4xx error, nothing stored) frees its key. Keys are kept for 24 hours.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.access import access_for
from tenants.models import IdempotentRequest

from .api import ApiError

HEADER = "Idempotency-Key"
KEEP = timedelta(hours=24)
IDEMPOTENCY_PARAM = OpenApiParameter(
    HEADER,
    str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Retries with the same key get the first answer (for 24 h) and create or decide nothing new.",
)


def _fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str) if request.data else ""
    text = f"{request.method} {request.path}\n{body}"
    return hashlib.sha256(text.encode()).hexdigest()


def _replay(record: IdempotentRequest) -> Response:
    response = Response(record.response, status=record.status_code)
    if record.twin_status:
        response["X-Twin-Status"] = record.twin_status
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(view: Callable[..., Response]) -> Callable[..., Response]:
    @wraps(view)
    def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return view(self, request, *args, **kwargs)
        key = key.strip()
        if not key or len(key) > 255 or not key.isprintable():
            raise ApiError("invalid_idempotency_key", f"{HEADER} must be 1 to 255 printable characters")
        access = access_for(request)
        fingerprint = _fingerprint(request)
        IdempotentRequest.objects.filter(
            tenant=access.tenant, key=key, created_at__lt=timezone.now() - KEEP
        ).delete()
        try:
            with transaction.atomic():
                record = IdempotentRequest.objects.create(
                    tenant=access.tenant,
                    key=key,
                    method=request.method or "",
                    path=request.path[:500],
                    fingerprint=fingerprint,
                )
        except IntegrityError:
            first = IdempotentRequest.objects.filter(tenant=access.tenant, key=key).first()
            if first is None:  # freed in between: the caller may simply retry
                raise ApiError(
                    "idempotency_key_in_use", "a request with this key just finished; retry", http_status=409
                ) from None
            if first.fingerprint != fingerprint:
                raise ApiError(
                    "idempotency_key_reused",
                    f"this {HEADER} was used for a different request ({first.method} {first.path}); "
                    "use a new key for a new request",
                    http_status=422,
                ) from None
            if first.completed_at is None:
                raise ApiError(
                    "idempotency_key_in_use",
                    "the first request with this key has not answered yet; retry in a moment",
                    http_status=409,
                ) from None
            return _replay(first)
        try:
            response = view(self, request, *args, **kwargs)
        except BaseException:
            record.delete()
            raise
        if response.status_code >= 500:
            record.delete()
            return response
        IdempotentRequest.objects.filter(pk=record.pk).update(
            status_code=response.status_code,
            response=json.loads(json.dumps(response.data, default=str)),
            twin_status=response.get("X-Twin-Status", ""),
            completed_at=timezone.now(),
        )
        return response

    return wrapper
