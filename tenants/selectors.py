from __future__ import annotations

from typing import Any

from .models import Membership


def current_membership(*, user: Any, session_tenant_id: Any = None) -> Membership | None:
    """The membership a signed-in user acts through: the session's tenant, else their first one."""
    if user is None or not user.is_authenticated:
        return None
    memberships = Membership.objects.select_related("tenant").filter(user=user)
    chosen = memberships.filter(tenant_id=session_tenant_id).first() if session_tenant_id else None
    return chosen or memberships.order_by("tenant__slug").first()


def two_factor_device(*, user: Any) -> Any:
    """The user's confirmed TOTP device (the authenticator app they enrolled), or None."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if user is None or not getattr(user, "pk", None):
        return None
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).order_by("id").first()


def two_factor_required(*, user: Any) -> bool:
    """True when any tenant the user belongs to requires two-factor sign-in."""
    if user is None or not getattr(user, "pk", None):
        return False
    return Membership.objects.filter(user_id=user.pk, tenant__require_two_factor=True).exists()
