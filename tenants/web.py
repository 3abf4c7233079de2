"""The dashboard's side of access: the same rules as the API, answered with pages."""

from __future__ import annotations

from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from rest_framework.exceptions import PermissionDenied as ApiPermissionDenied

from .access import Access, access_for


def web_access(request: HttpRequest, role: str | None = None) -> Access:
    try:
        access = access_for(request)
        if role is not None:
            access.require(role)
    except ApiPermissionDenied as exc:
        raise PermissionDenied(str(exc.detail)) from None
    return access


def dashboard_view(view: Any) -> Any:
    """Login required; ``request.access`` is the user's access to their current tenant."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        request.access = web_access(request)  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return wrapper
