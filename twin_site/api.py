"""JSON errors everywhere under /api/: {"error": "<code>", "detail": "..."}."""

from __future__ import annotations

from typing import Any

from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .limits import PayloadTooLarge


class ApiError(exceptions.APIException):
    def __init__(self, code: str, detail: str, *, http_status: int = 400, **extra: Any) -> None:
        super().__init__(detail)
        self.status_code = http_status
        self.code = code
        self.extra = extra


def json_object(request: Any) -> dict[str, Any]:
    """The body as a JSON object; an empty body is {}, anything else but an object is a 400."""
    data = request.data
    if not data:
        return {}
    if not isinstance(data, dict):
        raise ApiError("invalid", "the body must be a JSON object")
    return dict(data)


_CODES = {
    PayloadTooLarge: "payload_too_large",
    exceptions.NotAuthenticated: "unauthorized",
    exceptions.AuthenticationFailed: "unauthorized",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.ParseError: "bad_request",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.ValidationError: "invalid",
}


def _flatten(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_flatten(v)}" for k, v in detail.items())
    if isinstance(detail, list):
        return "; ".join(_flatten(v) for v in detail)
    return str(detail)


def _problems(detail: Any, field: str = "") -> list[dict[str, Any]]:
    """Field errors in the same shape as a program's problems: [{"step", "field", "message"}]."""
    if isinstance(detail, dict):
        return [
            problem
            for key, value in detail.items()
            for problem in _problems(value, f"{field}.{key}" if field else key)
        ]
    if isinstance(detail, list):
        return [p for value in detail for p in _problems(value, field)]
    return [{"step": None, "field": field or "body", "message": str(detail)}]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("not found")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ApiError):
        body = {"error": exc.code, "detail": str(exc.detail), **exc.extra}
    else:
        code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), "error")
        detail = getattr(exc, "detail", str(exc))
        body = {"error": code, "detail": _flatten(detail)}
        if isinstance(exc, exceptions.ValidationError):
            body["problems"] = _problems(detail)
    response.data = body
    if isinstance(exc, ApiError) and "status" in exc.extra:
        response["X-Twin-Status"] = exc.extra["status"]
    if response.status_code == status.HTTP_401_UNAUTHORIZED:
        response["WWW-Authenticate"] = "Bearer"
    return response


def json_404(request: Any, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"error": "not_found", "detail": f"no such resource: {request.path}"}, status=404)


def json_500(request: Any) -> JsonResponse:
    return JsonResponse(
        {"error": "server_error", "detail": "an unexpected error happened; it was logged"}, status=500
    )
