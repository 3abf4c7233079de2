"""What every run cost: wall and browser time, steps, human pauses and the wait for them, model
usage, and an amount at the tenant's prices; in the API, the run page, the runs list, and summed
over several runs (a skill's)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from approvals.models import Approval, ApprovalStatus
from runs.cost import cost_summary, run_cost
from runs.models import Run, RunStatus, Step, StepStatus
from runs.selectors import get_run_for_tenant
from skills.models import Skill, SkillVersion
from tenants.models import Tenant
from tests.conftest import Persona, start_run, wait_run

T0 = datetime(2025, 3, 2, 9, 0, 0, tzinfo=UTC)
PROGRAM = [{"action": "goto", "url": "https://shop.example/"}, {"action": "assert_text", "text": "Shop"}]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_run(
    tenant: Tenant,
    *,
    started: float | None = 0,
    finished: float | None = None,
    status: str = RunStatus.COMPLETED,
    steps: Sequence[tuple[float | None, float | None, str]] = (),
    pauses: Sequence[tuple[float, float | None, str]] = (),
    **fields: Any,
) -> Run:
    """A run as the executor would have left it, at set times (seconds after T0)."""
    run = Run.objects.create(
        tenant=tenant,
        goal="cost",
        program=PROGRAM,
        step_total=max(len(steps), 1),
        status=status,
        started_at=None if started is None else at(started),
        finished_at=None if finished is None else at(finished),
        **fields,
    )
    Run.objects.filter(pk=run.pk).update(created_at=at(-5))
    for index, (begun, ended, step_status) in enumerate(steps, start=1):
        Step.objects.create(
            run=run,
            index=index,
            action="goto",
            status=step_status,
            started_at=None if begun is None else at(begun),
            finished_at=None if ended is None else at(ended),
        )
    for created, decided, pause_status in pauses:
        approval = Approval.objects.create(
            tenant=tenant,
            run=run,
            step_index=1,
            action="click",
            trigger="approval",
            kind="approval",
            status=pause_status,
            decided_at=None if decided is None else at(decided),
            expires_at=at(3600),
        )
        Approval.objects.filter(pk=approval.pk).update(created_at=at(created))
    return get_run_for_tenant(tenant, run.pk)


def set_prices(tenant: Tenant, *, minute: str, per_1k: str, currency: str = "EUR") -> None:
    tenant.price_browser_minute = Decimal(minute)
    tenant.price_per_1k_tokens = Decimal(per_1k)
    tenant.currency = currency
    tenant.save()


# -- the arithmetic ------------------------------------------------------------------------------------
def test_the_amount_is_browser_minutes_and_thousands_of_tokens_at_the_tenants_prices(alice: Persona) -> None:
    set_prices(alice.tenant, minute="0.5", per_1k="0.01")
    run = make_run(
        alice.tenant,
        finished=120,
        steps=[(0, 30, StepStatus.DONE), (40, 100, StepStatus.DONE)],
        planner="model",
        model_calls=3,
        tokens_in=1500,
        tokens_out=500,
    )

    cost = run_cost(run)

    # 90 s of browser = 1.5 min * 0.5 = 0.75; 2,000 tokens = 2 * 0.01 = 0.02.
    assert cost == {
        "wall_s": 120.0,
        "browser_s": 90.0,
        "steps": 2,
        "pauses": 0,
        "human_wait_s": 0.0,
        "model_calls": 3,
        "tokens_in": 1500,
        "tokens_out": 500,
        "amount": 0.77,
        "currency": "EUR",
    }


def test_the_default_prices_charge_a_replay_for_its_browser_time_only(alice: Persona) -> None:
    tenant = Tenant.objects.get(pk=alice.tenant.pk)
    assert (tenant.currency, tenant.price_browser_minute, tenant.price_per_1k_tokens) == (
        "USD",
        Decimal("0.002"),
        Decimal("0.002"),
    )
    run = make_run(alice.tenant, finished=61.5, steps=[(0.25, 60.25, StepStatus.DONE)], planner="skill")

    cost = run_cost(run)

    assert cost["browser_s"] == 60.0 and cost["wall_s"] == 61.5
    assert cost["model_calls"] == 0 and cost["tokens_in"] == cost["tokens_out"] == 0
    assert cost["amount"] == 0.002 and cost["currency"] == "USD"


def test_seconds_are_kept_to_the_millisecond_and_the_amount_to_six_decimals(alice: Persona) -> None:
    set_prices(alice.tenant, minute="0.003", per_1k="0.0007")
    run = make_run(alice.tenant, finished=10.0004, steps=[(0, 7.0006, StepStatus.DONE)], tokens_in=333)

    cost = run_cost(run)

    assert cost["wall_s"] == 10.0 and cost["browser_s"] == 7.001
    # 7.001 / 60 * 0.003 = 0.00035005; 0.333 * 0.0007 = 0.0002331 → 0.00058315 → 0.000583
    assert cost["amount"] == 0.000583


def test_human_wait_runs_to_each_decision_and_an_undecided_pause_to_the_runs_end(alice: Persona) -> None:
    run = make_run(
        alice.tenant,
        status=RunStatus.CANCELLED,
        finished=100,
        steps=[(0, 2, StepStatus.DONE), (2, 4, StepStatus.DONE), (4, None, StepStatus.FAILED)],
        pauses=[(4, 24, ApprovalStatus.APPROVED), (50, None, ApprovalStatus.CANCELLED)],
    )

    cost = run_cost(run, now=at(5000))  # the run has ended: "now" changes nothing

    assert cost["pauses"] == 2
    assert cost["human_wait_s"] == 20 + 50
    assert cost["wall_s"] == 100 and cost["steps"] == 2
    assert cost["browser_s"] == 4  # the cut-off step has no end: no duration to count


def test_a_live_run_is_measured_up_to_now(alice: Persona) -> None:
    run = make_run(
        alice.tenant,
        status=RunStatus.AWAITING_APPROVAL,
        finished=None,
        steps=[(0, 3, StepStatus.DONE), (3, None, StepStatus.AWAITING_APPROVAL), (None, None, "queued")],
        pauses=[(4, None, ApprovalStatus.PENDING)],
    )

    early, later = run_cost(run, now=at(10)), run_cost(run, now=at(70))

    assert (early["wall_s"], early["human_wait_s"]) == (10, 6)
    assert (later["wall_s"], later["human_wait_s"]) == (70, 66)
    assert early["browser_s"] == later["browser_s"] == 3
    assert later["pauses"] == 1 and later["steps"] == 1
    # Without ``now``: the clock's now.
    expected = (timezone.now() - T0).total_seconds()
    assert expected - 0.01 <= run_cost(run)["wall_s"] <= expected + 5


def test_a_queued_run_is_measured_from_its_creation(alice: Persona) -> None:
    run = make_run(alice.tenant, status=RunStatus.QUEUED, started=None, finished=None)

    assert run_cost(run, now=at(10))["wall_s"] == 15  # created 5 s before T0


def test_a_step_rejected_at_its_gate_counts_its_time_before_the_pause_not_the_wait(alice: Persona) -> None:
    run = make_run(
        alice.tenant,
        status=RunStatus.REJECTED,
        finished=40,
        steps=[(0, 2, StepStatus.DONE), (2, 40, StepStatus.SKIPPED), (None, 40, StepStatus.SKIPPED)],
        pauses=[(3, 40, ApprovalStatus.REJECTED)],
    )

    cost = run_cost(run)

    assert cost["browser_s"] == 2 + 1
    assert cost["human_wait_s"] == 37
    assert cost["browser_s"] + cost["human_wait_s"] <= cost["wall_s"]
    assert cost["steps"] == 1


def test_a_summary_over_several_runs_gives_totals_averages_and_medians(alice: Persona) -> None:
    set_prices(alice.tenant, minute="1", per_1k="0")
    runs = [
        make_run(alice.tenant, finished=wall, steps=[(0, browser, StepStatus.DONE)])
        for wall, browser in [(10, 6), (30, 12), (20, 30 / 1000 * 60)]
    ]

    summary = cost_summary(runs)

    # browser 6 s, 12 s, 1.8 s at 1 a minute: 0.1 + 0.2 + 0.03
    assert summary == {
        "runs": 3,
        "amount_total": 0.33,
        "amount_avg": 0.11,
        "wall_s_median": 20.0,
        "browser_s_median": 6.0,
        "currency": "EUR",
    }
    assert cost_summary([]) == {
        "runs": 0,
        "amount_total": 0.0,
        "amount_avg": None,
        "wall_s_median": None,
        "browser_s_median": None,
        "currency": None,
    }


# -- the API ---------------------------------------------------------------------------------------------
def skill_version(tenant: Tenant, *, slug: str = "pay-invoice", version: int = 3) -> SkillVersion:
    skill = Skill.objects.create(tenant=tenant, slug=slug, name="Pay an invoice", latest_version=version)
    return SkillVersion.objects.create(skill=skill, tenant=tenant, version=version, steps=PROGRAM)


def test_a_run_in_the_api_carries_its_cost_planner_and_skill(alice: Persona) -> None:
    set_prices(alice.tenant, minute="0.06", per_1k="0.5")
    replay = make_run(
        alice.tenant,
        finished=45,
        steps=[(0, 10, StepStatus.DONE), (10, 30, StepStatus.DONE)],
        pauses=[(12, 22, ApprovalStatus.APPROVED)],
        planner="skill",
        skill_version=skill_version(alice.tenant),
    )
    written = make_run(alice.tenant, finished=5, steps=[(0, 5, StepStatus.DONE)], tokens_in=10)

    body = alice.get(f"/api/runs/{replay.pk}").json()

    assert body["planner"] == "skill"
    assert body["skill"] == {"slug": "pay-invoice", "version": 3}
    # Step 2 ran 10 s to 30 s but waited 12 s to 22 s for a human: 10 + 10 s of browser.
    assert body["cost"] == {
        "wall_s": 45.0,
        "browser_s": 20.0,
        "steps": 2,
        "pauses": 1,
        "human_wait_s": 10.0,
        "model_calls": 0,
        "tokens_in": 0,
        "tokens_out": 0,
        "amount": 0.02,
        "currency": "EUR",
    }
    other = alice.get(f"/api/runs/{written.pk}").json()
    assert other["planner"] is None and other["skill"] is None
    assert other["cost"]["amount"] == 0.01  # 5 s at 0.06 a minute, 10 tokens at 0.5 per 1,000


def test_the_schema_documents_the_cost_and_the_skill_of_a_run(alice: Persona) -> None:
    schema = alice.get("/api/schema?format=json").json()

    components = schema["components"]["schemas"]
    run = components["Run"]["properties"]
    assert run["cost"]["allOf"] == [{"$ref": "#/components/schemas/Cost"}]
    assert set(components["Cost"]["properties"]) == {
        "wall_s",
        "browser_s",
        "steps",
        "pauses",
        "human_wait_s",
        "model_calls",
        "tokens_in",
        "tokens_out",
        "amount",
        "currency",
    }
    assert run["skill"]["nullable"] is True
    planner = [ref["$ref"].rsplit("/", 1)[1] for ref in run["planner"]["oneOf"]]
    assert sorted(planner) == ["NullEnum", "PlannerEnum"]
    assert components["PlannerEnum"]["enum"] == ["model", "skill"]


def _twenty_runs(tenant: Tenant) -> None:
    for number in range(20):
        make_run(
            tenant,
            finished=30,
            steps=[(0, 10, StepStatus.DONE), (10, 20, StepStatus.DONE), (20, 30, StepStatus.DONE)],
            pauses=[(11, 15, ApprovalStatus.APPROVED)] if number % 2 else [],
            planner="skill" if number % 3 == 0 else None,
            skill_version=skill_version(tenant, slug=f"s{number}") if number % 3 == 0 else None,
        )


def test_listing_twenty_runs_with_their_cost_takes_a_fixed_handful_of_queries(
    alice: Persona, django_assert_max_num_queries: Any
) -> None:
    _twenty_runs(alice.tenant)
    browser = Client()
    browser.force_login(alice.user)
    browser.get("/runs/")  # sessions, tenant and the like settle

    # A query per run (its steps, its pauses, its tenant or skill) would be 20 more at least.
    with django_assert_max_num_queries(9):
        answer = alice.get("/api/runs?limit=20")
    assert len(answer.json()) == 20
    # Half the runs paused 4 s within their second step: 26 s of browser instead of 30.
    assert sorted(run["cost"]["browser_s"] for run in answer.json()) == [26.0] * 10 + [30.0] * 10
    assert sum(run["cost"]["pauses"] for run in answer.json()) == 10
    assert sum(run["skill"] is not None for run in answer.json()) == 7

    with django_assert_max_num_queries(12):
        page = browser.get("/runs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("0.001 USD") == 10  # 30 s at 0.002 a minute
    assert html.count("0.000867 USD") == 10  # 26 s


# -- the dashboard ------------------------------------------------------------------------------------------
def main_of(response: Any) -> str:
    html = response.content.decode()
    return html[html.index('<main id="main"') : html.index("</main>")]


def test_the_run_page_shows_what_the_run_cost_and_which_skill_it_replayed(alice: Persona) -> None:
    set_prices(alice.tenant, minute="0.6", per_1k="0")
    run = make_run(
        alice.tenant,
        finished=200,
        steps=[(0, 10, StepStatus.DONE), (10, 110, StepStatus.DONE)],
        pauses=[(20, 95, ApprovalStatus.APPROVED)],
        planner="skill",
        skill_version=skill_version(alice.tenant, slug="book-room", version=2),
    )
    browser = Client()
    browser.force_login(alice.user)

    html = main_of(browser.get(f"/runs/{run.pk}/"))

    cost = html[html.index('id="cost-h"') :]
    assert "0.35 EUR" in cost  # 35 s of browser (110 s of steps less 75 s waiting) at 0.6 a minute
    assert "3 min 20 s" in cost  # wall
    assert "35 s" in cost  # browser
    assert "1 min 15 s" in cost  # waiting for humans
    assert 'href="/skills/book-room/"' in html and "v2" in html


def test_the_runs_list_shows_each_runs_amount_and_skill(alice: Persona) -> None:
    set_prices(alice.tenant, minute="0.12", per_1k="1", currency="USD")
    make_run(
        alice.tenant,
        finished=60,
        steps=[(0, 60, StepStatus.DONE)],
        planner="skill",
        skill_version=skill_version(alice.tenant, slug="fetch-report", version=7),
    )
    make_run(alice.tenant, finished=30, steps=[(0, 30, StepStatus.DONE)], model_calls=2, tokens_in=1000)
    browser = Client()
    browser.force_login(alice.user)

    html = main_of(browser.get("/runs/"))

    assert "0.12 USD" in html  # a minute at 0.12
    assert "1.06 USD" in html  # half a minute and 1,000 tokens
    assert 'href="/skills/fetch-report/"' in html and "fetch-report v7" in html


# -- the prices, in Django admin ------------------------------------------------------------------------
def test_only_a_superuser_sets_a_tenants_prices_in_admin(alice: Persona, admin_user: Any) -> None:
    from django.contrib.auth.models import Permission

    staff = Client()
    alice.user.is_staff = True
    alice.user.save()
    alice.user.user_permissions.add(*Permission.objects.filter(codename__in=["view_tenant", "change_tenant"]))
    staff.force_login(alice.user)
    page = staff.get(f"/admin/tenants/tenant/{alice.tenant.pk}/change/").content.decode()
    assert 'name="price_browser_minute"' not in page
    assert "price browser minute" in page.lower()  # shown, read-only

    root = Client()
    root.force_login(admin_user)
    url = f"/admin/tenants/tenant/{alice.tenant.pk}/change/"
    form = root.get(url).content.decode()
    assert 'name="price_browser_minute"' in form and 'name="price_per_1k_tokens"' in form
    data = {
        "slug": "acme",
        "name": alice.tenant.name,
        "four_eyes": "auto",
        "approval_emails": "",
        "currency": "EUR",
        "price_browser_minute": "0.25",
        "price_per_1k_tokens": "0.003",
        # The agent's settings, as the form shows them (tests/test_agent_admin.py checks them).
        "agent_consequential_patterns": json.dumps(alice.tenant.agent_consequential_patterns),
        "agent_approval_origins": "[]",
        "agent_auto_compile": "on",
        "agent_max_steps": "40",
        "agent_max_model_calls": "120",
        "agent_max_tokens": "1000000",
        # The tenant's default approval rule, as the form shows it.
        "default_approvers": "[]",
        "default_required": "1",
        "default_escalate_to": "[]",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    answer = root.post(url, data)
    assert answer.status_code == 302, answer.content.decode()[-2000:]

    tenant = Tenant.objects.get(pk=alice.tenant.pk)
    assert (tenant.currency, tenant.price_browser_minute, tenant.price_per_1k_tokens) == (
        "EUR",
        Decimal("0.25"),
        Decimal("0.003"),
    )
    run = make_run(alice.tenant, finished=60, steps=[(0, 60, StepStatus.DONE)], tokens_out=1000)
    assert run_cost(run)["amount"] == 0.253


# -- end to end: the real worker, the fixture site, a human who takes a second -------------------------
@pytest.mark.usefixtures("private_urls")  # the fixture site is on 127.0.0.1
def test_a_real_run_with_an_approval_records_browser_time_pauses_and_the_wait(
    alice: Persona, site: Any, worker: Any
) -> None:
    program = [
        {"action": "goto", "url": site.url("/pay")},
        {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay $42?"}},
        {"action": "assert_text", "text": "Payment complete"},
        {"action": "extract", "selector": "#receipt", "name": "receipt_id"},
    ]
    run = start_run(alice, program)
    assert run["status"] == "awaiting_approval"
    assert run["cost"]["pauses"] == 1 and run["cost"]["steps"] == 1

    time.sleep(1.2)
    waiting = alice.get(f"/api/runs/{run['id']}").json()["cost"]
    assert waiting["human_wait_s"] >= 1  # still waiting: it grows with the clock
    assert alice.post(f"/api/runs/{run['id']}/approve").status_code == 202
    done = wait_run(alice, run["id"])
    assert done["status"] == "completed"

    cost = done["cost"]
    assert cost["steps"] == len(program) == done["step_count"]
    assert cost["pauses"] == 1
    assert cost["human_wait_s"] >= 1
    assert 0 < cost["browser_s"] <= cost["wall_s"]
    assert cost["browser_s"] + cost["human_wait_s"] <= cost["wall_s"]
    assert cost["model_calls"] == cost["tokens_in"] == cost["tokens_out"] == 0
    assert done["planner"] is None and done["skill"] is None
    # The browser minutes at the default price, to the millionth rounded half up as amounts are
    # (a float product and round() went the other way whenever it fell on a half: 1 run in ~30).
    expected = (Decimal(repr(cost["browser_s"])) / 60 * Decimal("0.002")).quantize(
        Decimal("0.000001"), rounding=ROUND_HALF_UP
    )
    assert cost["amount"] == float(expected) and cost["currency"] == "USD"
    # Settled: asking again later gives the same figures.
    time.sleep(0.3)
    assert alice.get(f"/api/runs/{run['id']}").json()["cost"] == cost


def test_an_ended_run_keeps_what_it_cost_at_the_prices_of_its_day(alice: Persona) -> None:
    from runs.states import run_transition

    set_prices(alice.tenant, minute="1.00", per_1k="0")
    run = make_run(alice.tenant, finished=None, status=RunStatus.RUNNING, steps=[(0, 30, StepStatus.DONE)])
    assert run_transition(run, to=RunStatus.COMPLETED, expect=[RunStatus.RUNNING])
    ended = get_run_for_tenant(alice.tenant, run.pk)
    assert ended.cost_final is not None
    assert run_cost(ended)["amount"] == 0.5  # 30 s at 1.00 a minute

    set_prices(alice.tenant, minute="9.00", per_1k="0", currency="USD")
    later = get_run_for_tenant(alice.tenant, run.pk)

    assert run_cost(later)["amount"] == 0.5
    assert run_cost(later)["currency"] == "EUR"
    assert alice.get(f"/api/runs/{run.pk}").json()["cost"]["amount"] == 0.5
