"""Who is asking, for which tenant, with which role: one helper, always used."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework.exceptions import PermissionDenied

from .models import ApiToken, Membership, Tenant
from .selectors import current_membership


@dataclass(frozen=True)
class Access:
    user: Any
    tenant: Tenant
    membership: Membership
    token: ApiToken | None

    @property
    def channel(self) -> str:
        return "api" if self.token is not None else "dashboard"

    def require(self, role: str) -> None:
        if not self.membership.allows(role):
            raise PermissionDenied(f"this needs the {role} role in {self.tenant.slug}")


def access_for(request: Any) -> Access:
    """The tenant of the token (API) or of the session (dashboard); 403 when not a member."""
    user = request.user
    auth = getattr(request, "auth", None)
    token = auth if isinstance(auth, ApiToken) else None
    if token is not None:
        membership = (
            Membership.objects.select_related("tenant").filter(user=user, tenant_id=token.tenant_id).first()
        )
    else:
        session_tenant = getattr(request, "session", {}).get("tenant_id")
        membership = current_membership(user=user, session_tenant_id=session_tenant)
    if membership is None:
        raise PermissionDenied("you are not a member of this tenant")
    return Access(user=user, tenant=membership.tenant, membership=membership, token=token)
