"""Signed decision links: one per pause, for an email or a chat message.

A link names the pause and is signed with the site's secret key; it works until the pause is
decided or expires (and never longer than ``TWIN_LINK_MAX_AGE``). Opening it never decides
anything (mail scanners open links): it shows the pause to a signed-in approver of its
tenant, who decides with a POST. A decision made through a link is recorded with channel
``link``, and then no link of that pause decides anything again.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from .models import Approval

SALT = "twin.decision-link.v1"


class LinkInvalid(Exception):
    pass


class LinkExpired(Exception):
    pass


def link_token(approval: Approval) -> str:
    return signing.dumps({"a": str(approval.pk)}, salt=SALT)


def link_path(approval: Approval, action: str = "") -> str:
    path = reverse("decision-link", args=[link_token(approval)])
    return f"{path}?action={action}" if action else path


def link_url(approval: Approval, action: str = "") -> str:
    return settings.TWIN_PUBLIC_URL.rstrip("/") + link_path(approval, action)


def approval_for_link(token: str) -> Approval:
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.TWIN_LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise LinkExpired() from None
    except signing.BadSignature:
        raise LinkInvalid() from None
    approval_id = data.get("a") if isinstance(data, dict) else None
    approval = (
        Approval.objects.select_related("run", "tenant", "decided_by").filter(pk=str(approval_id)).first()
        if approval_id
        else None
    )
    if approval is None:
        raise LinkInvalid()
    if approval.status == "pending" and approval.expires_at <= timezone.now():
        raise LinkExpired()
    return approval
