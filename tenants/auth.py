from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from twin_site import ratelimit
from twin_site.clients import client_ip

from .models import ApiToken, hash_token


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <token>``; ``request.auth`` is the ApiToken (and so the tenant)."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be 'Bearer <token>'.")
        # Guessing tokens: after too many failures from one address, it may not try for a while.
        limit_key = f"auth:{client_ip(request) or ''}"
        wait = ratelimit.retry_after(limit_key, settings.TWIN_AUTH_FAILURE_LIMIT)
        if wait is not None:
            raise exceptions.Throttled(wait, "Too many failed token attempts from this address.")
        try:
            raw = header[1].decode()
        except UnicodeError:
            ratelimit.hit(limit_key, settings.TWIN_AUTH_FAILURE_WINDOW)
            raise exceptions.AuthenticationFailed("The token contains invalid characters.") from None
        token = (
            ApiToken.objects.select_related("tenant", "user")
            .filter(digest=hash_token(raw), revoked_at__isnull=True)
            .first()
        )
        if token is None or not token.user.is_active:
            ratelimit.hit(limit_key, settings.TWIN_AUTH_FAILURE_WINDOW)
            raise exceptions.AuthenticationFailed("Unknown or revoked token.")
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
