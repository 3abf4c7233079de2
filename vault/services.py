from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.db.models import Max

from tenants.models import Tenant

from .crypto import open_text, seal_text
from .models import SecretKind, SecretVersion
from .totp import decode_seed, totp

TOTP_PERIOD = 30  # seconds, as vault.totp computes codes
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


class SecretError(ValueError):
    """A secret request that cannot be honoured, with a sentence for the user."""


def _scope(tenant_id: int) -> str:
    return f"tenant:{tenant_id}:secrets"


def normalize_origin(origin: str) -> str:
    parts = urlsplit(origin.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SecretError(f"{origin!r} is not an origin like https://shop.example")
    default_port = {"http": 80, "https": 443}[parts.scheme]
    port = f":{parts.port}" if parts.port and parts.port != default_port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def secret_put(
    *,
    tenant: Tenant,
    name: str,
    value: str,
    kind: str = SecretKind.PASSWORD,
    origins: list[str] | None = None,
    created_by: Any = None,
) -> SecretVersion:
    """Store ``value`` as the next version of ``name``."""
    if not NAME_RE.match(name or ""):
        raise SecretError("name must start with a letter or underscore and hold only letters, digits and _")
    if kind not in SecretKind.values:
        raise SecretError(f"kind must be one of {', '.join(SecretKind.values)}")
    if not isinstance(value, str) or value == "":
        raise SecretError("value must be a non-empty string")
    if kind == SecretKind.TOTP:
        try:
            decode_seed(value)
        except ValueError as exc:
            raise SecretError(str(exc)) from None
    clean_origins = sorted({normalize_origin(o) for o in (origins or [])})
    for _ in range(3):
        try:
            with transaction.atomic():
                latest = SecretVersion.objects.filter(tenant=tenant, name=name).aggregate(v=Max("version"))[
                    "v"
                ]
                return SecretVersion.objects.create(
                    tenant=tenant,
                    name=name,
                    version=(latest or 0) + 1,
                    kind=kind,
                    ciphertext=seal_text(value, scope=_scope(tenant.pk)),
                    origins=clean_origins,
                    created_by=created_by,
                )
        except IntegrityError:
            continue  # a concurrent put took that version number; take the next one
    raise SecretError("the secret is being changed concurrently; try again")


def secret_delete(*, tenant: Tenant, name: str) -> int:
    deleted, _ = SecretVersion.objects.filter(tenant=tenant, name=name).delete()
    return deleted


@dataclass(frozen=True)
class ResolvedSecret:
    value: str
    origins: list[str]


def secret_resolve(*, tenant_id: int, name: str, at: float | None = None) -> ResolvedSecret | None:
    """The value to type now (a TOTP secret yields its current code). Only the executor calls this."""
    latest = SecretVersion.objects.filter(tenant_id=tenant_id, name=name).order_by("-version").first()
    if latest is None:
        return None
    value = open_text(latest.ciphertext, scope=_scope(tenant_id))
    if latest.kind == SecretKind.TOTP:
        value = totp(value, at=at)
    return ResolvedSecret(value=value, origins=list(latest.origins))


def secret_scrub_values(*, tenant_id: int, name: str, at: float | None = None) -> list[str]:
    """What the secret may show up as in a run's pages: its value, or for a TOTP secret its seed
    and the codes of the periods around ``at`` (the one before, now, the one after).
    Only the executor calls this, to keep them out of what it records (engine.scrub)."""
    latest = SecretVersion.objects.filter(tenant_id=tenant_id, name=name).order_by("-version").first()
    if latest is None:
        return []
    value = open_text(latest.ciphertext, scope=_scope(tenant_id))
    if latest.kind != SecretKind.TOTP:
        return [value]
    now = time.time() if at is None else at
    return [value, *(totp(value, at=now + step * TOTP_PERIOD) for step in (-1, 0, 1))]
