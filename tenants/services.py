from __future__ import annotations

import os
import secrets
from pathlib import Path
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


def totp_device_begin(*, user: Any) -> Any:
    """An unconfirmed TOTP device for ``user`` to enroll (the one already begun, if any).

    It proves nothing until ``totp_device_confirm`` sees a first code from it.
    """
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="authenticator app", confirmed=False)
    return device


@transaction.atomic
def totp_device_confirm(*, device: Any, token: str) -> bool:
    """Confirm an enrollment with its first code; the user's other devices are replaced.

    Wrong codes count against the device's throttle (django-otp), as at sign-in.
    """
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if not device.verify_token(token.strip()):
        return False
    TOTPDevice.objects.filter(user_id=device.user_id).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    return True


def demo_password_get(*, var_dir: Path) -> str:
    """The demo login's password: generated once (``demo`` would fail the validators) and kept
    in ``var/demo-password`` (readable by its owner only), so it survives restarts."""
    path = Path(var_dir) / "demo-password"
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    password = "-".join(secrets.token_urlsafe(6) for _ in range(3))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password
