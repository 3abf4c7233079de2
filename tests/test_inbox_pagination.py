"""Every pending pause is reachable from the inbox, in each order, a page at a time, counts right."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals import selectors
from approvals.models import Approval, ApprovalStatus, Trigger
from runs.models import Run
from tenants.models import Role
from tenants.services import tenant_create

CARD = re.compile(r'<article id="approval-([0-9a-f-]{36})"')
NEXT = re.compile(r'<a rel="next" href="([^"]+)"')
PREV = re.compile(r'<a rel="prev" href="([^"]+)"')


@pytest.fixture
def acme(db: Any) -> tuple[Any, Any]:
    tenant, user, _ = tenant_create(slug="acme", owner_username="alice", role=Role.APPROVER)
    return tenant, user


@pytest.fixture
def browser(acme: tuple[Any, Any]) -> Client:
    client = Client()
    client.force_login(acme[1])
    return client


def pause(
    tenant: Any,
    *,
    created: datetime,
    expires: datetime,
    trigger: str = Trigger.APPROVAL,
    status: str = ApprovalStatus.PENDING,
    decided: datetime | None = None,
    goal: str = "",
) -> Approval:
    run = Run.objects.create(
        tenant=tenant,
        goal=goal or f"pay invoice {created:%H%M%S%f}",
        program=[{"action": "click", "selector": "#pay"}],
        status="awaiting_approval" if status == ApprovalStatus.PENDING else "expired",
    )
    approval = Approval.objects.create(
        tenant=tenant,
        run=run,
        step_index=1,
        step_count=1,
        action="click",
        trigger=trigger,
        kind="input" if trigger == Trigger.MFA else "approval",
        prompt="Pay?",
        expires_at=expires,
        status=status,
        decided_at=decided,
    )
    Approval.objects.filter(pk=approval.pk).update(created_at=created)  # auto_now_add set it to now
    approval.created_at = created
    return approval


def many(tenant: Any, count: int, *, now: datetime) -> list[Approval]:
    """``count`` pauses created a minute apart (the oldest first), expiring in a shuffled order."""
    return [
        pause(
            tenant,
            created=now - timedelta(minutes=count - i),
            expires=now + timedelta(hours=1, minutes=(i * 37) % count),
            trigger=Trigger.MFA if i % 5 == 0 else Trigger.APPROVAL,
        )
        for i in range(count)
    ]


def en(text: str) -> str:
    """ "1-50 of 120 pending" as the page writes it, with an en dash."""
    return text.replace("-", "\u2013")


def get(client: Client, path: str, **headers: Any) -> str:
    response = client.get(path, **headers)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def walk(client: Client, path: str) -> tuple[list[str], list[str], list[str]]:
    """Follow "Next page" from ``path`` to the end: the ids in order, each page's range, the pages."""
    ids: list[str] = []
    ranges: list[str] = []
    pages: list[str] = []
    while path:
        body = get(client, path)
        pages.append(path)
        ids += CARD.findall(body)
        ranges.append(re.search(r'<p class="inbox-range muted" id="inbox-range">([^<]+)</p>', body)[1])  # type: ignore[index]
        found = NEXT.search(body)
        path = html.unescape(found[1]) if found else ""
        if path:
            pass
    return ids, ranges, pages


def expected(approvals: list[Approval], order: str) -> list[str]:
    if order == "urgent":
        key: Any = lambda a: (a.expires_at, a.trigger != Trigger.MFA, a.created_at, str(a.pk))  # noqa: E731
        return [str(a.pk) for a in sorted(approvals, key=key)]
    ascending = sorted(approvals, key=lambda a: (a.created_at, str(a.pk)))
    return [str(a.pk) for a in (ascending if order == "oldest" else ascending[::-1])]


@pytest.mark.parametrize("order", ["urgent", "oldest", "newest"])
def test_every_pending_pause_is_reached_once_by_next_page_links_in_each_order(
    acme: tuple[Any, Any], browser: Client, order: str
) -> None:
    now = timezone.now()
    approvals = many(acme[0], 120, now=now)
    ids, ranges, pages = walk(browser, f"/inbox/?order={order}")
    assert ids == expected(approvals, order)
    assert ranges == [en("1-50 of 120 pending"), en("51-100 of 120 pending"), en("101-120 of 120 pending")]

    # Back from the last page by "Previous page": the same pages, the same ranges.
    body = get(browser, pages[-1])
    back = html.unescape(PREV.search(body)[1])  # type: ignore[index]
    body = get(browser, back)
    assert CARD.findall(body) == ids[50:100]
    assert en("51-100 of 120 pending") in body
    back = html.unescape(PREV.search(body)[1])  # type: ignore[index]
    body = get(browser, back)
    assert CARD.findall(body) == ids[:50]
    assert en("1-50 of 120 pending") in body
    assert not PREV.search(body)


def test_the_default_order_is_soonest_expiry_first_with_one_time_codes_first_among_equal_expiries(
    acme: tuple[Any, Any], browser: Client
) -> None:
    now = timezone.now()
    same = now + timedelta(minutes=30)
    late = pause(acme[0], created=now - timedelta(hours=3), expires=now + timedelta(hours=5), goal="late")
    approval = pause(acme[0], created=now - timedelta(hours=2), expires=same, goal="approval")
    code = pause(acme[0], created=now - timedelta(hours=1), expires=same, trigger=Trigger.MFA, goal="code")
    soon = pause(acme[0], created=now, expires=now + timedelta(minutes=5), goal="soon")
    body = get(browser, "/inbox/")
    assert CARD.findall(body) == [str(a.pk) for a in (soon, code, approval, late)]
    assert '<option value="urgent" selected>Most urgent first</option>' in body
    assert "4 pending" in body
    assert not NEXT.search(body) and not PREV.search(body)  # one page: no pager


def test_a_bad_tampered_or_other_order_cursor_shows_the_first_page(
    acme: tuple[Any, Any], browser: Client
) -> None:
    approvals = many(acme[0], 60, now=timezone.now())
    first = CARD.findall(get(browser, "/inbox/"))
    body = get(browser, "/inbox/")
    cursor = re.search(r"cursor=([^&\"]+)", html.unescape(NEXT.search(body)[1]))[1]  # type: ignore[index]
    for bad in ("garbage", cursor[:-3] + "abc", "x" * 5000, "%00", ""):
        assert CARD.findall(get(browser, f"/inbox/?cursor={bad}")) == first
    # A cursor made for the urgent order means nothing in the oldest order.
    assert (
        CARD.findall(get(browser, f"/inbox/?order=oldest&cursor={cursor}"))
        == expected(approvals, "oldest")[:50]
    )
    # A cursor past the end (everything after it decided) is the first page too, not an empty one.
    Approval.objects.filter(pk__in=first[-1:] + expected(approvals, "urgent")[50:]).update(
        status=ApprovalStatus.APPROVED
    )
    assert CARD.findall(get(browser, f"/inbox/?cursor={cursor}")) == first[:49]


def test_a_later_page_announces_new_arrivals_instead_of_inserting_them(
    acme: tuple[Any, Any], browser: Client
) -> None:
    now = timezone.now()
    many(acme[0], 70, now=now)
    body = get(browser, "/inbox/?order=newest")
    page2 = html.unescape(NEXT.search(body)[1])  # type: ignore[index]
    body = get(browser, page2)
    shown = CARD.findall(body)
    seen = re.search(r'name="seen" value="([^"]+)"', body)[1]  # type: ignore[index]
    cursor = re.search(r'name="cursor" value="([^"]+)"', body)[1]  # type: ignore[index]
    assert en("51-70 of 70 pending") in body and "new pause" not in body

    # Two pauses arrive, one of them a code expiring in minutes; one on the page is decided.
    later = timezone.now() + timedelta(seconds=1)
    code = pause(acme[0], created=later, expires=later + timedelta(minutes=3), trigger=Trigger.MFA)
    pause(acme[0], created=later, expires=later + timedelta(hours=2))
    Approval.objects.filter(pk=shown[0]).update(status=ApprovalStatus.APPROVED)

    # The live refresh of page 2 (htmx, with the page's cursor and when the view began).
    refresh = get(
        browser,
        f"/inbox/?order=newest&cursor={cursor}&seen={seen.replace('+', '%2B')}",
        HTTP_HX_REQUEST="true",
    )
    assert CARD.findall(refresh) == shown[1:]  # the decided one went, nothing new came in
    assert "2 new pauses — " in refresh
    show = re.search(r'2 new pauses — <a href="([^"]+)">show</a>', refresh)[1]  # type: ignore[index]
    assert html.unescape(show) == "/inbox/?order=newest"

    # The first page in the urgent order has the code at the top, at once, and counts it.
    urgent = get(browser, "/inbox/", HTTP_HX_REQUEST="true")
    assert CARD.findall(urgent)[0] == str(code.pk)
    assert en("1-50 of 71 pending") in urgent


def test_the_first_page_announces_arrivals_that_land_further_down(
    acme: tuple[Any, Any], browser: Client
) -> None:
    many(acme[0], 55, now=timezone.now())
    body = get(browser, "/inbox/?order=oldest")
    seen = re.search(r'name="seen" value="([^"]+)"', body)[1]  # type: ignore[index]
    later = timezone.now() + timedelta(seconds=1)
    pause(acme[0], created=later, expires=later + timedelta(hours=2))
    refresh = get(browser, f"/inbox/?order=oldest&seen={seen.replace('+', '%2B')}", HTTP_HX_REQUEST="true")
    assert CARD.findall(refresh) == CARD.findall(body)
    show = re.search(r'1 new pause further down — <a href="([^"]+)">show newest first</a>', refresh)[1]  # type: ignore[index]
    assert html.unescape(show) == "/inbox/?order=newest"
    assert en("1-50 of 56 pending") in refresh


def test_the_first_page_lists_recent_expiries_as_notices_linked_to_their_runs(
    acme: tuple[Any, Any], browser: Client
) -> None:
    now = timezone.now()
    pause(acme[0], created=now, expires=now + timedelta(hours=1), goal="still waiting")
    at = now.replace(hour=14, minute=2, second=0, microsecond=0)
    if at > now:
        at -= timedelta(days=1)
    expired = pause(
        acme[0], created=at - timedelta(hours=1), expires=at, status=ApprovalStatus.EXPIRED, decided=at,
        goal="Renew the <b>domain</b>",
    )  # fmt: skip
    pause(
        acme[0], created=now - timedelta(days=3), expires=now - timedelta(days=2),
        status=ApprovalStatus.EXPIRED, decided=now - timedelta(days=2), goal="long gone",
    )  # fmt: skip
    body = get(browser, "/inbox/")
    assert len(CARD.findall(body)) == 1
    notices = re.search(r'<ul class="inbox-expired".*?</ul>', body, re.S)[0]  # type: ignore[index]
    assert "Expired at" in notices and "14:02</time> — run ended" in notices
    assert f'href="/runs/{expired.run_id}/"' in notices
    assert "Renew the &lt;b&gt;domain&lt;/b&gt;" in notices  # a goal is text, never markup
    assert "long gone" not in body
    assert "<form" not in notices and "<button" not in notices

    # Bounded: five shown, the rest counted, with a way to all of them.
    for i in range(7):
        pause(
            acme[0], created=now - timedelta(hours=2), expires=now - timedelta(minutes=i + 1),
            status=ApprovalStatus.EXPIRED, decided=now - timedelta(minutes=i + 1),
        )  # fmt: skip
    body = get(browser, "/inbox/")
    assert body.count('class="notice-expired"') == selectors.EXPIRED_SHOWN
    assert "8 expired in the last 24 hours" in body


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("trigger=mfa", "No one-time-code pauses are waiting."),
        ("trigger=blocked&age=1h", "No blocked pauses from the last hour are waiting."),
        ("age=older", "No pauses older than a day are waiting."),
    ],
)
def test_an_empty_filtered_inbox_names_the_filter(browser: Client, query: str, text: str) -> None:
    body = get(browser, f"/inbox/?{query}")
    assert text in body
    assert "Nothing is waiting for you" not in body


def test_the_query_count_is_the_same_on_every_page(acme: tuple[Any, Any], browser: Client) -> None:
    many(acme[0], 120, now=timezone.now())
    get(browser, "/inbox/")  # the session's first save is not the page's
    counts = []
    path = "/inbox/"
    for _ in range(3):
        with CaptureQueriesContext(connection) as queries:
            body = get(browser, path)
        counts.append(len(queries))
        found = NEXT.search(body)
        path = html.unescape(found[1]) if found else path
    assert counts[1] == counts[2], counts
    assert counts[0] <= counts[1] + 1, counts  # the first page: no position count, the expired notices


def test_another_tenant_sees_none_of_it_even_with_a_cursor_of_theirs(
    acme: tuple[Any, Any], browser: Client
) -> None:
    many(acme[0], 60, now=timezone.now())
    page2 = html.unescape(NEXT.search(get(browser, "/inbox/"))[1])  # type: ignore[index]
    _, carol, _ = tenant_create(slug="globex", owner_username="carol", role=Role.APPROVER)
    client = Client()
    client.force_login(carol)
    for path in ("/inbox/", page2):
        body = get(client, path)
        assert CARD.findall(body) == []
        assert "Nothing is waiting for you" in body


# -- the API ---------------------------------------------------------------------------------------------
def test_the_api_keeps_newest_first_and_takes_an_order(acme: tuple[Any, Any]) -> None:
    from rest_framework.test import APIClient

    _, _, token = tenant_create(slug="acme", owner_username="alice2", role=Role.APPROVER)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    approvals = many(acme[0], 12, now=timezone.now())
    listed = [item["id"] for item in api.get("/api/approvals?status=pending").json()]
    assert listed == expected(approvals, "newest")
    for order in ("urgent", "oldest", "newest"):
        listed = [item["id"] for item in api.get(f"/api/approvals?order={order}").json()]
        assert listed == expected(approvals, order)
    response = api.get("/api/approvals?order=sideways")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_order"
    assert "urgent, oldest, newest" in response.json()["detail"]
    schema = api.get("/api/schema?format=json").json()
    parameters = {p["name"]: p for p in schema["paths"]["/api/approvals"]["get"]["parameters"]}
    assert sorted(parameters["order"]["schema"]["enum"]) == ["newest", "oldest", "urgent"]


# -- the query plans (SQLite here; PostgreSQL in bench/dashboard_pages.py and docs/performance.md) --------
def test_each_order_reads_its_own_index_without_sorting(acme: tuple[Any, Any]) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's plan; PostgreSQL's is in docs/performance.md")
    approvals = many(acme[0], 60, now=timezone.now())
    pending = selectors.pending_for_tenant(acme[0])
    for name, index in (("urgent", "approval_inbox_urgent"), ("oldest", "approval_inbox_age"),
                        ("newest", "approval_inbox_age")):  # fmt: skip
        order = selectors.ORDERS[name]
        key = order.values(approvals[30])
        for queryset in (
            selectors.ordered(pending, order)[:51],
            selectors.ordered(pending, order).filter(selectors.beyond(order, key))[:51],
        ):
            plan = queryset.explain()
            assert index in plan, (name, plan)
            assert "TEMP B-TREE" not in plan, (name, plan)


@pytest.mark.parametrize("order", ["urgent", "oldest", "newest"])
def test_the_api_reaches_every_pending_pause_once_through_its_link_header(db: Any, order: str) -> None:
    tenant, _user, token = tenant_create(slug="api-acme", owner_username="ann", role=Role.APPROVER)
    approvals = many(tenant, 45, now=timezone.now())
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    url: str | None = f"/api/approvals?status=pending&order={order}&limit=20"
    seen: list[str] = []
    pages = 0
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        seen += [item["id"] for item in response.json()]
        pages += 1
        link = re.fullmatch(r'<([^>]+)>; rel="next"', response.headers.get("Link", ""))
        url = link.group(1) if link else None

    assert seen == expected(approvals, order)
    assert pages == 3

    first = api.get(f"/api/approvals?status=pending&order={order}&limit=20")
    link = re.fullmatch(r'<([^>]+)>; rel="next"', first.headers["Link"])
    assert link
    cursor = link.group(1).split("cursor=")[1]
    other = "oldest" if order != "oldest" else "newest"
    for bad in ("not-a-cursor", cursor[:-3] + "abc"):
        refused = api.get(f"/api/approvals?status=pending&order={order}&cursor={bad}")
        assert (refused.status_code, refused.json()["error"]) == (400, "invalid_cursor")
    refused = api.get(f"/api/approvals?status=pending&order={other}&cursor={cursor}")
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_cursor")
