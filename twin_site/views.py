from __future__ import annotations

import contextlib
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, HttpResponseServerError
from django.template.loader import render_to_string

from tenants.access import access_for

from .api import json_404, json_500


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_404(request, exception)
    if getattr(request, "user", None) is not None and request.user.is_authenticated:
        # Keep the navigation: a person who followed a stale link should find their way back.
        with contextlib.suppress(Exception):
            request.access = access_for(request)  # type: ignore[attr-defined]
    return HttpResponseNotFound(render_to_string("404.html", request=request))


def server_error(request: HttpRequest, *args: Any) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_500(request)
    return HttpResponseServerError("<h1>Server error</h1>")
