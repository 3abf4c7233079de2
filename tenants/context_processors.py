from __future__ import annotations

from functools import cache
from typing import Any

from django.http import HttpRequest

from approvals.models import Approval, ApprovalStatus

from .models import Membership, Role


def dashboard(request: HttpRequest) -> dict[str, Any]:
    """The navigation bar's facts: tenants to switch to, the role, the pending count."""
    access = getattr(request, "access", None)
    if access is None:
        return {}
    return {
        "access": access,
        "memberships": Membership.objects.filter(user=access.user)
        .select_related("tenant")
        .order_by("tenant__slug"),
        "is_approver": access.membership.allows(Role.APPROVER),
        "is_operator": access.membership.allows(Role.OPERATOR),
        "is_auditor": access.membership.role == Role.AUDITOR or access.user.is_staff,
        # Counted when a template shows it (the navigation bar of full pages), once: not for partials.
        "pending_count": cache(
            Approval.objects.filter(tenant=access.tenant, status=ApprovalStatus.PENDING).count
        ),
    }
