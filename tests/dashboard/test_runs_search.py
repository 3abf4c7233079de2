"""The runs list: one search box (goal, URL, run id), filters by skill and by what a run paused
for, all in the address; an empty list says which filters left it empty."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.utils import timezone
from playwright.sync_api import BrowserContext, Dialog, Page, expect

from approvals.models import Approval, ApprovalStatus
from runs.models import Run, RunStatus
from runs.selectors import MAX_QUERY
from skills.models import Skill, SkillVersion
from tests.dashboard.conftest import Person, shoot, sign_in

PROGRAM = [{"action": "goto", "url": "https://shop.example/"}, {"action": "assert_text", "text": "Shop"}]
PHONE = {"width": 390, "height": 844}
SHOP = "https://shop.example/"


def make_run(
    owner: Person, goal: str, *, url: str = "https://shop.example/", minutes_ago: int = 0, **fields: Any
) -> Run:
    fields.setdefault("status", RunStatus.COMPLETED)
    run = Run.objects.create(
        tenant=owner.tenant,
        created_by=owner.user,
        goal=goal,
        url=url,
        program=PROGRAM,
        step_total=len(PROGRAM),
        current_step=2,
        **fields,
    )
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    return run


def pause(run: Run, trigger: str, *, status: str = ApprovalStatus.APPROVED) -> Approval:
    return Approval.objects.create(
        tenant=run.tenant,
        run=run,
        step_index=2,
        step_count=2,
        action="click",
        trigger=trigger,
        kind={"mfa": "input", "approval": "approval"}.get(trigger, "choice"),
        prompt="?",
        status=status,
        expires_at=timezone.now() + timedelta(days=1),
    )


def make_skill(owner: Person, slug: str, name: str) -> SkillVersion:
    skill = Skill.objects.create(tenant=owner.tenant, slug=slug, name=name, latest_version=1)
    return SkillVersion.objects.create(skill=skill, tenant=owner.tenant, version=1, steps=PROGRAM)


def shows(page: Page, goals: list[str]) -> None:
    """The list shows exactly these runs (by goal), in this order, once it has caught up."""
    expect(page.locator("table.runs tbody tr td:nth-child(2) > a:first-child")).to_have_text(goals)


def test_the_search_box_finds_runs_by_goal_url_or_id_and_keeps_the_filters_in_the_address(
    page: Page, alice: Person, carol: Person
) -> None:
    invoice = make_run(alice, "Pay the supplier invoice", url="https://shop.example/pay", minutes_ago=5)
    make_run(alice, "Pay invoice 1002", status=RunStatus.FAILED, minutes_ago=4)
    statement = make_run(
        alice, "Download the statement", url="https://bank.example/statements", minutes_ago=3
    )
    make_run(alice, "Renew the domain", minutes_ago=2)
    theirs = make_run(carol, "Pay the globex invoice", minutes_ago=1)

    sign_in(page, alice)
    page.goto("/runs/")
    expect(page.locator("table.runs tbody tr")).to_have_count(4)
    box = page.get_by_role("searchbox", name="Search")
    expect(box).to_have_attribute("maxlength", str(MAX_QUERY))

    box.fill("INVOICE")  # any case, anywhere in the goal; the list follows as you type
    shows(page, ["Pay invoice 1002", "Pay the supplier invoice"])
    expect(page).to_have_url(re.compile(r"/runs/\?q=INVOICE$"))

    page.get_by_label("Status").select_option("failed")
    expect(page.locator("table.runs tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/runs/\?q=INVOICE&status=failed$"))
    page.reload()  # a reload (or a shared link) keeps the search and the filter
    expect(box).to_have_value("INVOICE")
    expect(page.get_by_label("Status")).to_have_value("failed")
    shows(page, ["Pay invoice 1002"])

    page.get_by_label("Status").select_option("")
    box.fill("bank.example")  # the start URL
    shows(page, ["Download the statement"])

    for prefix in (str(statement.pk)[:8], str(statement.pk)[:13], str(statement.pk).replace("-", "")[:12]):
        box.fill("renew")
        shows(page, ["Renew the domain"])
        box.fill(prefix)  # the start of the run's id, with or without its dashes
        shows(page, ["Download the statement"])
    box.fill(str(invoice.pk).upper())  # the whole id, as copied
    shows(page, ["Pay the supplier invoice"])

    box.fill(str(theirs.pk))  # another tenant's run does not exist here
    expect(page.locator("td.empty")).to_have_text(f"No runs match “{theirs.pk}”. Clear filters")
    box.fill("globex")
    expect(page.locator("td.empty")).to_contain_text("No runs match “globex”")

    box.fill("invoice")
    page.get_by_label("Status").select_option("cancelled")
    empty = page.locator("td.empty")
    expect(empty).to_have_text("No runs match “invoice” with status cancelled. Clear filters")
    expect(empty).not_to_contain_text("No runs yet")
    shoot(page, "runs-search-empty")
    empty.get_by_role("link", name="Clear filters").click()
    expect(page).to_have_url(re.compile(r"/runs/$"))
    expect(box).to_have_value("")
    expect(page.locator("table.runs tbody tr")).to_have_count(4)


def test_the_runs_list_filters_by_skill_and_by_what_a_run_paused_for(
    new_context: Callable[..., BrowserContext], alice: Person, carol: Person
) -> None:
    report = make_skill(alice, "monthly-report", "Monthly report")
    make_skill(carol, "globex-secret-skill", "Globex secret skill")
    make_run(alice, "Send the monthly report", skill_version=report, minutes_ago=6)
    waiting = make_run(alice, "Sign in to the portal", status=RunStatus.AWAITING_APPROVAL, minutes_ago=5)
    pause(waiting, "mfa", status=ApprovalStatus.PENDING)
    earlier = make_run(alice, "Sign in yesterday", minutes_ago=4)
    pause(earlier, "mfa")
    pause(earlier, "approval")
    pause(make_run(alice, "Pick the account", minutes_ago=3), "ambiguity")
    make_run(alice, "Plain run", minutes_ago=2)

    page = new_context(viewport={"width": 1366, "height": 900}).new_page()
    sign_in(page, alice)
    page.goto("/runs/")
    expect(page.locator("table.runs tbody tr")).to_have_count(5)
    skill = page.get_by_label("Skill")
    assert skill.locator("option").all_inner_texts() == ["Any", "Monthly report"]  # only this tenant's

    skill.select_option("monthly-report")
    shows(page, ["Send the monthly report"])
    expect(page).to_have_url(re.compile(r"\?skill=monthly-report$"))
    skill.select_option("")

    paused = page.get_by_label("Paused for")
    paused.select_option("mfa")  # paused for a one-time code at some point
    shows(page, ["Sign in yesterday", "Sign in to the portal"])
    paused.select_option("waiting-mfa")  # waiting on one now
    shows(page, ["Sign in to the portal"])
    paused.select_option("waiting-ambiguity")
    expect(page.locator("td.empty")).to_have_text(
        "No runs waiting now on a choice between elements. Clear filters"
    )
    paused.select_option("ambiguity")  # a run paused for one once: the list shows it
    expect(page.locator("td.empty")).to_have_count(0)
    skill.select_option("monthly-report")
    expect(page.locator("td.empty")).to_have_text(
        "No runs of skill Monthly report, paused for a choice between elements. Clear filters"
    )
    shoot(page, "runs-filters-desktop")

    # Values that are not this tenant's (or not values at all) are ignored, never an error.
    page.goto("/runs/?skill=globex-secret-skill&trigger=bogus&status=nope")
    expect(page.locator("table.runs tbody tr")).to_have_count(5)

    phone = new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    sign_in(phone, alice)
    phone.goto("/runs/?q=sign&trigger=mfa")
    expect(phone.locator("table.runs tbody tr")).to_have_count(2)
    # The filters fit the phone's width (a select's longest option does not widen the page).
    widest = phone.evaluate(
        "Math.max(...[...document.querySelectorAll('#runs-filters *')]"
        ".map(e => e.getBoundingClientRect().right))"
    )
    assert widest <= PHONE["width"]
    shoot(phone, "runs-filters-phone")


def test_a_hostile_or_huge_search_is_shown_as_text_and_cut_to_size(page: Page, alice: Person) -> None:
    make_run(alice, "Pay the invoice")
    sign_in(page, alice)
    dialogs: list[str] = []

    def refuse(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    hostile = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
    page.goto("/runs/")
    page.get_by_role("searchbox", name="Search").fill(hostile)
    expect(page.locator("td.empty")).to_have_text(f"No runs match “{hostile}”. Clear filters")
    expect(page.locator("#runs-list img")).to_have_count(0)
    page.reload()
    expect(page.get_by_role("searchbox", name="Search")).to_have_value(hostile)
    expect(page.locator("td.empty")).to_contain_text(hostile)
    assert dialogs == []

    page.goto("/runs/?q=" + "invoice " * 1000)  # a crafted address: the search keeps its bound
    value = page.get_by_role("searchbox", name="Search").input_value()
    assert len(value) <= MAX_QUERY and value.startswith("invoice invoice")


def test_a_tenant_with_no_runs_is_told_to_start_one(page: Page, olga: Person) -> None:
    sign_in(page, olga)
    page.goto("/runs/")
    expect(page.locator("td.empty")).to_have_text("No runs yet. Start one.")
    page.goto("/runs/?status=failed")  # no runs at all: filtering changes nothing to say
    expect(page.locator("td.empty")).to_have_text("No runs yet. Start one.")


def test_the_skills_list_says_when_its_only_skills_are_hidden_as_archived(page: Page, alice: Person) -> None:
    version = make_skill(alice, "old-report", "Old report")
    Skill.objects.filter(pk=version.skill_id).update(archived_at=timezone.now())
    sign_in(page, alice)
    page.goto("/skills/")
    empty = page.locator("td.empty")
    expect(empty).to_contain_text("No active skills.")
    empty.get_by_role("link", name="show archived skills").click()
    expect(page.locator("table.skills tbody tr")).to_have_count(1)
    expect(page.locator("table.skills")).to_contain_text("Old report")
