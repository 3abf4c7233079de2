from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, HttpResponseServerError

from .api import json_404, json_500


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_404(request, exception)
    return HttpResponseNotFound("<h1>Not found</h1>")


def server_error(request: HttpRequest, *args: Any) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_500(request)
    return HttpResponseServerError("<h1>Server error</h1>")
