"""The runs list: filter by status, page back through older runs."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import Page, expect

from runs.models import Run, RunStatus
from tests.dashboard.conftest import Person, sign_in

PROGRAM = [{"action": "goto", "url": "https://shop.example/"}, {"action": "assert_text", "text": "Shop"}]


def make_runs(owner: Person, count: int, *, failed_every: int) -> list[Run]:
    """Finished runs (no worker involved), numbered oldest first: every ``failed_every``-th failed."""
    now = timezone.now()
    runs = []
    for number in range(1, count + 1):
        failed = number % failed_every == 0
        runs.append(
            Run(
                tenant=owner.tenant,
                created_by=owner.user,
                goal=f"Run {number:03d}",
                url="https://shop.example/",
                program=PROGRAM,
                step_total=len(PROGRAM),
                current_step=1 if failed else 2,
                status=RunStatus.FAILED if failed else RunStatus.COMPLETED,
                error="no such text" if failed else "",
                started_at=now - timedelta(minutes=count - number, seconds=30),
                finished_at=now - timedelta(minutes=count - number, seconds=28),
            )
        )
    created = Run.objects.bulk_create(runs)
    # created_at is set on insert; spread it out so "newest first" is the numbering reversed.
    for number, run in enumerate(created, start=1):
        Run.objects.filter(pk=run.pk).update(created_at=now - timedelta(minutes=count - number))
    return created


def goals(page: Page) -> list[str]:
    return page.locator("table.runs tbody tr td:nth-child(2)").all_inner_texts()


def test_the_runs_list_filters_by_status_and_pages_back_through_older_runs(page: Page, alice: Person) -> None:
    make_runs(alice, 57, failed_every=10)  # runs 010, 020, ... 050 failed

    sign_in(page, alice)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs").click()
    expect(page.locator("table.runs tbody tr")).to_have_count(50)
    shown = goals(page)
    assert shown[0] == "Run 057" and shown[-1] == "Run 008"
    first = page.locator("#runs-list tbody tr").first
    expect(first).to_contain_text("completed")
    expect(first).to_contain_text("step 2 of 2")
    expect(first).to_contain_text("2.0 s")
    expect(first).to_contain_text("alice")

    page.get_by_role("link", name="Older runs").click()
    expect(page).to_have_url(re.compile(r"before="))
    expect(page.locator("table.runs tbody tr")).to_have_count(7)
    assert goals(page) == [f"Run {n:03d}" for n in range(7, 0, -1)]
    expect(page.get_by_role("link", name="Older runs")).to_have_count(0)
    page.get_by_role("link", name="Newest").click()
    expect(page.locator("table.runs tbody tr")).to_have_count(50)

    page.get_by_label("Status").select_option("failed")
    expect(page).to_have_url(re.compile(r"/runs/\?status=failed$"))
    expect(page.locator("table.runs tbody tr")).to_have_count(5)
    assert goals(page) == ["Run 050", "Run 040", "Run 030", "Run 020", "Run 010"]
    for row in page.locator("table.runs tbody tr").all():
        expect(row.locator(".badge")).to_have_text("failed")
    expect(page.get_by_role("link", name="Older runs")).to_have_count(0)

    page.reload()  # the filter is in the URL: a reload (or a shared link) keeps it
    expect(page.get_by_label("Status")).to_have_value("failed")
    expect(page.locator("table.runs tbody tr")).to_have_count(5)

    page.get_by_label("Status").select_option("completed")
    expect(page.locator("table.runs tbody tr")).to_have_count(50)
    page.get_by_role("link", name="Older runs").click()
    expect(page).to_have_url(re.compile(r"status=completed&before="))
    assert goals(page) == ["Run 002", "Run 001"]
