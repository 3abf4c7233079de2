"""Session rules of the dashboard: how long a sign-in lasts, and that a second factor owed is paid.

Both run on every request (after Django's and django-otp's middleware): views, the admin,
decision links and the API by session cookie all meet them; an API call with a bearer token
does not (tokens are their own credential).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import BACKEND_SESSION_KEY
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from .signin import hold_for_second_factor, owes_second_factor

LOGIN_AT = "twin_login_at"
SEEN_AT = "twin_seen_at"
# The last-seen time is written at most this often: not a session save per request.
SEEN_RESOLUTION = 60


def _is_static(request: HttpRequest) -> bool:
    return request.path.startswith("/" + settings.STATIC_URL.lstrip("/"))


class SessionLimitsMiddleware:
    """Ends a session idle for TWIN_SESSION_IDLE_SECONDS or older than TWIN_SESSION_MAX_SECONDS."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated and not _is_static(request):
            session = request.session
            now = time.time()
            login_at = session.get(LOGIN_AT)
            seen_at = session.get(SEEN_AT)
            if login_at is None:
                session[LOGIN_AT] = login_at = now
            too_old = now - float(login_at) > settings.TWIN_SESSION_MAX_SECONDS
            idle = seen_at is not None and now - float(seen_at) > settings.TWIN_SESSION_IDLE_SECONDS
            if too_old or idle:
                # Signed out here; the view then answers as for anyone signed out (the login
                # page with ?next=, or 401/403 from the API).
                auth.logout(request)
            elif seen_at is None or now - float(seen_at) >= SEEN_RESOLUTION:
                session[SEEN_AT] = now
        return self.get_response(request)


class TwoFactorMiddleware:
    """A session signed in by password alone, for someone who owes a one-time code (they
    enrolled one, or a tenant of theirs requires it), is turned back into a sign-in waiting for
    that code: the admin's login, or a session from before the tenant required it, end up here."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            not user.is_authenticated
            or _is_static(request)
            or (request.path.startswith("/api/") and "HTTP_AUTHORIZATION" in request.META)
            or request.path == reverse("logout")
            or user.is_verified()  # type: ignore[attr-defined]
        ):
            return self.get_response(request)
        # Two indexed lookups, asked on every request of a session not verified by a code: a
        # tenant that starts requiring two-factor applies at its members' next click.
        if not owes_second_factor(user):
            return self.get_response(request)
        backend = str(request.session.get(BACKEND_SESSION_KEY) or settings.AUTHENTICATION_BACKENDS[-1])
        is_api = request.path.startswith("/api/")
        next_url = request.get_full_path() if request.method == "GET" and not is_api else ""
        auth.logout(request)
        held = hold_for_second_factor(request, user, backend, next_url)
        if is_api:
            return JsonResponse(
                {
                    "error": "two_factor_required",
                    "detail": "This session owes a one-time code: sign in again in the dashboard.",
                },
                status=401,
            )
        if request.headers.get("HX-Request"):
            # A fragment must not be swapped for the code page: htmx loads it as a page.
            return HttpResponse(status=204, headers={"HX-Redirect": held["Location"]})
        return held
