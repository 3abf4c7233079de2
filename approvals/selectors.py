"""Reads of approvals: the inbox's pages in each order, by keyset (never OFFSET), and its counts.

An order is a list of sort keys, the last one always the primary key so that every item has one
place. A cursor names the key values of an item and a direction: the page after it (``next``) or
the page before it (``prev``). It is signed, so a page only ever receives cursors it made; a bad,
tampered or other-order cursor is no cursor (the first page), never an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core import signing
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from tenants.models import Tenant

from .models import Approval, ApprovalStatus, mfa_last_expression

PAGE = 50
CURSOR_SALT = "twin.approvals.inbox-cursor"
# Expired pauses leave a notice this long, at most this many shown (the rest are counted).
EXPIRED_WINDOW = timedelta(hours=24)
EXPIRED_SHOWN = 5


mfa_last = mfa_last_expression  # the indexed expression itself (approval_inbox_urgent)


@dataclass(frozen=True)
class Order:
    name: str
    label: str
    keys: tuple[tuple[str, bool], ...]  # (field or annotation, descending)

    def order_by(self) -> list[Any]:
        return [F(key).desc() if desc else F(key).asc() for key, desc in self.keys]

    def values(self, item: Approval) -> list[Any]:
        return [_key(item, key) for key, _ in self.keys]


def _key(item: Approval, key: str) -> Any:
    if key == "mfa_last":
        return 0 if item.trigger == "mfa" else 1  # as mfa_last_expression()
    return getattr(item, key)


ORDERS = {
    "urgent": Order("urgent", "Most urgent first", (("expires_at", False), ("mfa_last", False),
                                                    ("created_at", False), ("id", False))),
    "oldest": Order("oldest", "Oldest first", (("created_at", False), ("id", False))),
    "newest": Order("newest", "Newest first", (("created_at", True), ("id", True))),
}  # fmt: skip
DEFAULT_ORDER = "urgent"


def ordered(approvals: QuerySet[Approval], order: Order) -> QuerySet[Approval]:
    if any(key == "mfa_last" for key, _ in order.keys):
        # alias(), not annotate(): a selected annotation is ordered by its column number, which no
        # index matches; an alias is ordered by the expression itself, the indexed one.
        approvals = approvals.alias(mfa_last=mfa_last())
    return approvals.order_by(*order.order_by())


def beyond(order: Order, values: list[Any], *, before: bool = False) -> Q:
    """The items after (or ``before``) the item with these key values, in ``order``.

    (k1 > v1) OR (k1 = v1 AND k2 > v2) OR …, and k1 >= v1 in front of it all: a range on the
    first key, which an index on the order's keys can seek to (the ORs alone it would filter).
    """
    either = Q()
    for i, (key, desc) in enumerate(order.keys):
        later = "lt" if desc != before else "gt"
        term = Q(**{f"{key}__{later}": values[i]})
        for j, (prior, _desc) in enumerate(order.keys[:i]):
            term &= Q(**{prior: values[j]})
        either |= term
    first, desc = order.keys[0]
    return Q(**{f"{first}__{'lte' if desc != before else 'gte'}": values[0]}) & either


# -- cursors -------------------------------------------------------------------------------------------
def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value if isinstance(value, int) else str(value)


def cursor_for(order: Order, item: Approval, direction: str) -> str:
    return signing.dumps({"o": order.name, "d": direction, "k": [_encode(v) for v in order.values(item)]},
                         salt=CURSOR_SALT, compress=True)  # fmt: skip


@dataclass(frozen=True)
class Cursor:
    direction: str  # "next" or "prev"
    values: list[Any]


def parse_cursor(raw: str, order: Order) -> Cursor | None:
    """The cursor, or None when it is missing, tampered with, or made for another order."""
    if not raw or len(raw) > 1000:
        return None
    try:
        data = signing.loads(raw, salt=CURSOR_SALT)
        if data["o"] != order.name or data["d"] not in {"next", "prev"}:
            return None
        values: list[Any] = []
        for (key, _), value in zip(order.keys, data["k"], strict=True):
            if key in {"expires_at", "created_at"}:
                moment = parse_datetime(value)
                if moment is None:
                    return None
                values.append(moment)
            elif key == "mfa_last":
                values.append(int(value))
            else:
                values.append(str(value))
        return Cursor(data["d"], values)
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None


# -- the inbox -----------------------------------------------------------------------------------------
def pending_for_tenant(tenant: Tenant) -> QuerySet[Approval]:
    """The tenant's pending pauses with what a card shows of its run (never its program, outputs or
    sealed checkpoint: kilobytes a run, 51 runs a page)."""
    return (
        Approval.objects.filter(tenant=tenant, status=ApprovalStatus.PENDING)
        .select_related("run", "run__created_by")
        .defer("run__program", "run__params", "run__outputs", "run__checkpoint")
    )


@dataclass
class InboxPage:
    items: list[Approval]
    total: int
    start: int  # the first item's place in the order, from 1 (0 when the page is empty)
    next_cursor: str = ""
    prev_cursor: str = ""
    new: int = 0  # pending pauses that arrived after `seen` and are not shown
    expired: list[Approval] = field(default_factory=list)
    expired_total: int = 0

    @property
    def end(self) -> int:
        return self.start + len(self.items) - 1 if self.items else 0


def inbox_page(
    pending: QuerySet[Approval],
    order: Order,
    cursor: Cursor | None,
    *,
    seen: datetime | None = None,
    page: int = PAGE,
) -> InboxPage:
    """One page of ``pending`` (already filtered) in ``order``.

    ``seen``: when the person's view of the list began. A later page leaves out what arrived after
    it (it would land there unannounced) and counts it in ``new`` instead; the first page shows
    whatever belongs on it now, so an urgent one-time code is there at once, and counts in ``new``
    what arrived but belongs on a later page.
    """
    shown = pending
    if seen is not None and cursor is not None:
        shown = shown.filter(created_at__lte=seen)
    keyed = ordered(shown, order)
    if cursor is None:
        rows = list(keyed[: page + 1])
        items, more_after, before = rows[:page], len(rows) > page, 0
    elif cursor.direction == "next":
        rows = list(keyed.filter(beyond(order, cursor.values))[: page + 1])
        items, more_after = rows[:page], len(rows) > page
        before = -1  # counted below
    else:
        backwards = ordered(shown, Order(order.name, order.label, tuple((k, not d) for k, d in order.keys)))
        rows = list(backwards.filter(beyond(order, cursor.values, before=True))[: page + 1])
        if len(rows) <= page:
            # Back at the top: the first page as it is now (items may have gone since).
            return inbox_page(pending, order, None, seen=seen, page=page)
        items, more_after, before = rows[:page][::-1], True, -1
    if cursor is not None and not items:
        return inbox_page(pending, order, None, seen=seen, page=page)  # past the end: everything went
    total = pending.count()
    if before == -1 and items:
        before = ordered(shown, order).filter(beyond(order, order.values(items[0]), before=True)).count()
    result = InboxPage(items=items, total=total, start=before + 1 if items else 0)
    if items and more_after:
        result.next_cursor = cursor_for(order, items[-1], "next")
    if items and before > 0:
        result.prev_cursor = cursor_for(order, items[0], "prev")
    if seen is not None and cursor is not None:
        result.new = pending.filter(created_at__gt=seen).count()
    elif seen is not None and len(items) == page:
        # The first page, full: what arrived and belongs further down would go unseen.
        result.new = pending.filter(created_at__gt=seen).exclude(pk__in=[item.pk for item in items]).count()
    return result


def recently_expired(
    approvals: QuerySet[Approval], *, now: datetime | None = None
) -> tuple[list[Approval], int]:
    """Pauses that expired in the last EXPIRED_WINDOW, newest first: the first few and how many."""
    since = (now or timezone.now()) - EXPIRED_WINDOW
    expired = approvals.filter(status=ApprovalStatus.EXPIRED, decided_at__gte=since)
    shown = list(
        expired.select_related("run").only(
            "id", "run_id", "run__goal", "run__status", "trigger", "step_index", "step_count", "decided_at",
            "expires_at", "created_at",
        ).order_by("-decided_at", "-id")[: EXPIRED_SHOWN + 1]
    )  # fmt: skip
    total = len(shown) if len(shown) <= EXPIRED_SHOWN else expired.count()
    return shown[:EXPIRED_SHOWN], total
