"""Errors of the Twin API, one class per kind of answer."""

from __future__ import annotations

from typing import Any


class TwinError(Exception):
    """The API answered with an error: ``status`` (HTTP), ``code`` (e.g. ``conflict``), ``detail``."""

    def __init__(self, status: int, code: str, detail: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail
        self.body = body or {}


class InvalidRequest(TwinError):
    """400 or 422: the request does not fit; ``problems`` lists each one when the server does."""

    @property
    def problems(self) -> list[dict[str, Any]]:
        return list(self.body.get("problems") or [])


class Unauthorized(TwinError):
    """401: no token, or an unknown or revoked one."""


class Forbidden(TwinError):
    """403: your role does not allow this (or four eyes)."""


class NotFound(TwinError):
    """404: no such object in your tenant."""


class Conflict(TwinError):
    """409: the run is not in a state that allows this; ``run_status`` says which it is."""

    def __init__(
        self, status: int, code: str, detail: str, body: dict[str, Any] | None = None, run_status: str = ""
    ) -> None:
        super().__init__(status, code, detail, body)
        self.run_status = run_status or str((body or {}).get("status", ""))


ConflictError = Conflict  # the same class, by the name other clients use


class AlreadyApproved(Conflict):
    """409 ``already_approved``: you already gave one of the approvals this pause needs; the
    same person cannot give two of them (the run still waits for someone else)."""


class RateLimited(TwinError):
    """429: too many tries; ``retry_after`` seconds to wait."""

    def __init__(
        self, status: int, code: str, detail: str, body: dict[str, Any] | None = None, retry_after: float = 0
    ) -> None:
        super().__init__(status, code, detail, body)
        self.retry_after = retry_after


def error_for(status: int, body: Any, headers: Any) -> TwinError:
    data = body if isinstance(body, dict) else {}
    code = str(data.get("error", "error"))
    detail = str(data.get("detail", body if isinstance(body, str) else ""))
    if status in (400, 422):
        return InvalidRequest(status, code, detail, data)
    if status == 401:
        return Unauthorized(status, code, detail, data)
    if status == 403:
        return Forbidden(status, code, detail, data)
    if status == 404:
        return NotFound(status, code, detail, data)
    if status == 409 and code == "already_approved":
        return AlreadyApproved(status, code, detail, data, run_status=headers.get("X-Twin-Status", ""))
    if status == 409:
        return Conflict(status, code, detail, data, run_status=headers.get("X-Twin-Status", ""))
    if status == 429:
        try:
            retry = float(headers.get("Retry-After", "0"))
        except ValueError:
            retry = 0.0
        return RateLimited(status, code, detail, data, retry_after=retry)
    return TwinError(status, code, detail, data)
