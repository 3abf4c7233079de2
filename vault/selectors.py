from __future__ import annotations

from tenants.models import Tenant

from .models import SecretVersion


def secret_list(*, tenant: Tenant) -> list[SecretVersion]:
    """The newest version of each of the tenant's secrets (values stay encrypted)."""
    latest: dict[str, SecretVersion] = {}
    for version in SecretVersion.objects.filter(tenant=tenant).order_by("name", "-version"):
        latest.setdefault(version.name, version)
    return list(latest.values())


def secret_names(*, tenant_id: int) -> set[str]:
    return set(SecretVersion.objects.filter(tenant_id=tenant_id).values_list("name", flat=True).distinct())
