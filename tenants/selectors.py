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
