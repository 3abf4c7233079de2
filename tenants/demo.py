"""The demo tenant that ``make run`` sets up, and the login it prints (``make token`` again).

One user, ``demo``: an approver of the tenant ``demo`` (so the README's first run can be
approved), and staff with the audit trail's view permissions (the ``Auditors`` group), so
``/admin/`` opens on the trail. Its password and API token are generated once and kept in
``var/`` (readable by their owner only): a restart, or ``make token``, prints the same ones, so a
``TOKEN`` set in a shell keeps working. ``make token NEW=1`` revokes the token and issues another.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from twin_site.env import env_int

from .models import ApiToken, Membership, Role, Tenant, hash_token
from .services import demo_password_get

DEMO_USER = "demo"
DEMO_TENANT = "demo"
AUDITORS_GROUP = "Auditors"
TOKEN_FILE = "demo-token"

TRAIL_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("runs", "view_run"),
    ("runs", "view_step"),
    ("runs", "view_runevent"),
    ("approvals", "view_approval"),
    ("skills", "view_skill"),
    ("skills", "view_skillversion"),
)
"""What the ``Auditors`` group may see in Django admin: the audit trail (``docs/audit.md``), nothing
else. Staff with ``runs.view_run`` read every tenant's trail (``twin_site/admin_site.py``)."""


def demo_port(web_port: int) -> int:
    """Where ``make run`` serves the demo site: ``TWIN_DEMO_PORT``, else the web port + 1; 0 (off)
    when it is ``0`` or ``off``."""
    raw = os.environ.get("TWIN_DEMO_PORT", "").strip().lower()
    if raw in {"0", "off", "no", "false"}:
        return 0
    return env_int("TWIN_DEMO_PORT", web_port + 1, minimum=1)


def demo_url(port: int) -> str | None:
    return f"http://127.0.0.1:{port}/" if port else None


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    token: str
    tenant: str = DEMO_TENANT


def auditors_group() -> Group:
    group, _ = Group.objects.get_or_create(name=AUDITORS_GROUP)
    wanted = Q()
    for app_label, codename in TRAIL_PERMISSIONS:
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    group.permissions.add(*Permission.objects.filter(wanted))
    return group


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")


def _demo_token(*, var_dir: Path, tenant: Tenant, user: Any, new: bool) -> str:
    """The token kept in ``var/demo-token`` while it is still a live token of the demo user;
    otherwise (or with ``new``: the kept one is revoked first) a fresh one, kept there."""
    path = Path(var_dir) / TOKEN_FILE
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        kept = ""
    live = ApiToken.objects.filter(tenant=tenant, user=user, revoked_at__isnull=True)
    if kept and new:
        live.filter(digest=hash_token(kept)).update(revoked_at=timezone.now())
    elif kept and live.filter(digest=hash_token(kept)).exists():
        return kept
    _, raw = ApiToken.issue(tenant=tenant, user=user, name=f"{DEMO_USER}@{DEMO_TENANT}")
    _write_private(path, raw)
    return raw


@transaction.atomic
def demo_setup(*, var_dir: Path, new_token: bool = False) -> DemoLogin:
    """Make sure the demo tenant and its user exist as described above; return their login."""
    password = demo_password_get(var_dir=Path(var_dir))
    tenant, _ = Tenant.objects.get_or_create(slug=DEMO_TENANT, defaults={"name": "Demo"})
    user, _ = get_user_model().objects.get_or_create(username=DEMO_USER)
    if not user.check_password(password):
        user.set_password(password)
    user.is_staff = True
    user.is_active = True
    user.save()
    user.groups.add(auditors_group())
    Membership.objects.update_or_create(tenant=tenant, user=user, defaults={"role": Role.APPROVER})
    token = _demo_token(var_dir=Path(var_dir), tenant=tenant, user=user, new=new_token)
    return DemoLogin(username=DEMO_USER, password=password, token=token)


def login_box(login: DemoLogin, *, title: str, port: int, demo_url: str | None, note: str = "") -> str:
    """The framed block ``make run`` prints once it is ready, and ``make token`` prints again."""
    lines = [
        title,
        "",
        f"  dashboard login:  {login.username} / {login.password}   (tenant: {login.tenant})",
        f"  API token:        {login.token}",
        f"  admin (audit):    http://127.0.0.1:{port}/admin/",
        f"  demo site:        {demo_url or 'off'}",
        "",
        "  Again: make token.  The README's 'A first run' drives the demo site.",
    ]
    if note:
        lines.append(f"  {note}")
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    return "\n".join([rule, *(f"| {line.ljust(width)} |" for line in lines), rule])
