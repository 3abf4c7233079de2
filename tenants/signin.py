"""Dashboard sign-in: the password, then (when the person has one, or a tenant requires it) a
one-time code from an authenticator app.

A right password for someone who owes a second factor does not sign them in: the session only
remembers, for a few minutes, whose code (or enrollment) it waits for. Nothing else of Twin
(pages, API by session, websockets) sees a signed-in user until the code is right.
"""

from __future__ import annotations

import contextlib
import time
from base64 import b32encode
from typing import Any

import segno
from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from rest_framework.exceptions import PermissionDenied as ApiPermissionDenied

from .access import access_for
from .selectors import two_factor_device, two_factor_required
from .services import totp_device_begin, totp_device_confirm

PENDING_USER = "twin_2fa_user"
PENDING_BACKEND = "twin_2fa_backend"
PENDING_SINCE = "twin_2fa_since"
PENDING_NEXT = "twin_2fa_next"
PENDING_KEYS = (PENDING_USER, PENDING_BACKEND, PENDING_SINCE, PENDING_NEXT)
WRONG_CODE = "That code is not right. Enter the code your app shows now."


def owes_second_factor(user: Any) -> bool:
    return two_factor_device(user=user) is not None or two_factor_required(user=user)


def hold_for_second_factor(request: HttpRequest, user: Any, backend: str, next_url: str) -> HttpResponse:
    """Remember whose code this session waits for and send it to the code (or enrollment) page."""
    request.session.cycle_key()  # a new session id for the half-way state
    request.session[PENDING_USER] = user.pk
    request.session[PENDING_BACKEND] = backend
    request.session[PENDING_SINCE] = time.time()
    request.session[PENDING_NEXT] = next_url
    if two_factor_device(user=user) is not None:
        return HttpResponseRedirect(reverse("login-code"))
    return HttpResponseRedirect(reverse("two-factor-setup"))


def pending_user(request: HttpRequest) -> tuple[Any, str] | None:
    """The user whose right password waits for a code in this session, with their backend."""
    session = request.session
    user_id, since = session.get(PENDING_USER), session.get(PENDING_SINCE)
    if user_id is None or since is None:
        return None
    if time.time() - float(since) > settings.TWIN_TWO_FACTOR_PENDING_SECONDS:
        _forget_pending(request)
        return None
    user = auth.get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        _forget_pending(request)
        return None
    return user, str(session.get(PENDING_BACKEND) or settings.AUTHENTICATION_BACKENDS[-1])


def _forget_pending(request: HttpRequest) -> None:
    for key in PENDING_KEYS:
        request.session.pop(key, None)


def _safe_next(request: HttpRequest, target: str) -> str:
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return str(settings.LOGIN_REDIRECT_URL)


def _finish(request: HttpRequest, user: Any, device: Any) -> HttpResponse:
    """The code was right: sign the pending user in (or mark this session verified)."""
    pending = pending_user(request)
    next_url = str(request.session.get(PENDING_NEXT) or "")
    if pending is not None and pending[0].pk == user.pk:
        user.otp_device = device  # django-otp's user_logged_in receiver keeps it in the session
        auth.login(request, user, backend=pending[1])
    else:
        from django_otp import login as otp_login

        otp_login(request, device)
        request.session.cycle_key()
    _forget_pending(request)
    return HttpResponseRedirect(_safe_next(request, next_url))


class SignInView(LoginView):
    """Django's LoginView, stopping half-way for people who owe a one-time code."""

    redirect_authenticated_user = True

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        user = form.get_user()
        if owes_second_factor(user):
            backend = getattr(user, "backend", None) or settings.AUTHENTICATION_BACKENDS[-1]
            return hold_for_second_factor(self.request, user, backend, self.get_redirect_url())
        return super().form_valid(form)


def locked_out(request: HttpRequest, original_response: Any = None, credentials: Any = None) -> HttpResponse:
    """django-axes' answer to a locked-out username and address: the login page, saying so."""
    minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    context = {
        "form": form,
        "locked_out": (
            f"Too many failed sign-ins for this username from your address: signing in is "
            f"locked for {minutes} minute{'s' if minutes != 1 else ''}. Try again later."
        ),
        "username": username,
        "next": request.POST.get("next") or request.GET.get("next", ""),
    }
    return render(request, "registration/login.html", context, status=429)


def _subject(request: HttpRequest) -> Any:
    """Whom the two-factor pages are about: the pending user, else the signed-in one."""
    pending = pending_user(request)
    if pending is not None:
        return pending[0]
    if request.user.is_authenticated:
        return request.user
    return None


def _throttle_message(device: Any) -> str | None:
    allowed, info = device.verify_is_allowed()
    if allowed:
        return None
    locked_until = (info or {}).get("locked_until")
    if locked_until is not None:
        from django.utils import timezone

        wait = max(1, int((locked_until - timezone.now()).total_seconds() + 0.999))
        return f"Too many wrong codes: wait {wait} second{'s' if wait != 1 else ''} before the next one."
    return "Codes are not accepted right now: try again later."


@sensitive_post_parameters("code")
@csrf_protect
@never_cache
def sign_in_code(request: HttpRequest) -> HttpResponse:
    """The second step of signing in: the six digits the authenticator app shows."""
    pending = pending_user(request)
    if pending is None:
        return HttpResponseRedirect(reverse("login"))
    user = pending[0]
    device = two_factor_device(user=user)
    if device is None:
        return HttpResponseRedirect(reverse("two-factor-setup"))
    error = None
    if request.method == "POST":
        error = _throttle_message(device)
        if error is None:
            if device.verify_token(request.POST.get("code", "").strip()):
                return _finish(request, user, device)
            error = WRONG_CODE
    return render(
        request,
        "registration/two_factor_code.html",
        {"error": error, "username": user.get_username()},
        status=400 if error else 200,
    )


@sensitive_post_parameters("code")
@csrf_protect
@never_cache
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    """Enroll an authenticator app: its QR code and secret, confirmed with a first code."""
    user = _subject(request)
    if user is None:
        return HttpResponseRedirect(f"{reverse('login')}?next={reverse('two-factor-setup')}")
    signed_in = request.user.is_authenticated and pending_user(request) is None
    if signed_in:
        # The navigation bar, as on every dashboard page (none for a sign-in half-way).
        with contextlib.suppress(ApiPermissionDenied):
            request.access = access_for(request)  # type: ignore[attr-defined]
    enrolled = two_factor_device(user=user) is not None
    # Someone who has a device and has not given its code yet must not replace it: that would
    # let a stolen password enroll the thief's phone.
    if enrolled and not (signed_in and request.user.is_verified()):  # type: ignore[union-attr]
        return HttpResponseRedirect(reverse("login-code"))
    if enrolled and request.method != "POST" and "again" not in request.GET:
        return render(request, "registration/two_factor_setup.html", {"enrolled": True, "username": user})
    device = totp_device_begin(user=user)
    error = None
    if request.method == "POST":
        error = _throttle_message(device)
        if error is None:
            if totp_device_confirm(device=device, token=request.POST.get("code", "")):
                if signed_in:
                    messages.success(request, "Two-factor sign-in is on: you will be asked for a code.")
                return _finish(request, user, device)
            error = WRONG_CODE
    qr_svg = segno.make(device.config_url, error="m").svg_inline(
        scale=5, dark="#1d2330", light="#ffffff", omitsize=False
    )
    context = {
        "error": error,
        "qr_svg": qr_svg,
        "secret": b32encode(device.bin_key).decode(),
        "otpauth_uri": device.config_url,
        "required": two_factor_required(user=user),
        "signed_in": signed_in,
        "username": user.get_username(),
    }
    return render(request, "registration/two_factor_setup.html", context, status=400 if error else 200)
