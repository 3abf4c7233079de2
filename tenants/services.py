from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from .models import ApiToken, Membership, Role, Tenant


@transaction.atomic
def tenant_create(
    *, slug: str, owner_username: str, password: str | None = None, role: str = Role.APPROVER
) -> tuple[Tenant, Any, str]:
    """Create (or reuse) the tenant and its member; return a fresh API token for them."""
    tenant, _ = Tenant.objects.get_or_create(slug=slug, defaults={"name": slug.replace("-", " ").title()})
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=owner_username)
    if password:
        user.set_password(password)
        user.save()
    elif created:
        user.set_unusable_password()
        user.save()
    Membership.objects.update_or_create(tenant=tenant, user=user, defaults={"role": role})
    _, raw = ApiToken.issue(tenant=tenant, user=user, name=f"{owner_username}@{slug}")
    return tenant, user, raw
