from __future__ import annotations

from typing import Any

from .models import Membership, Tenant


def membership_for(*, user: Any, tenant: Tenant) -> Membership | None:
    if user is None or not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, tenant=tenant).first()
