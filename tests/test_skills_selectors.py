"""Reading skills: per tenant, by id or slug, archived on request, and what their runs add up to."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.http import Http404
from django.utils import timezone

from runs.models import RunStatus
from skills.models import Skill
from skills.selectors import get_skill, get_version, skill_stats, skills_for_tenant, skills_overview
from tests.conftest import Persona
from tests.skill_factories import SIGNUP_PARAMS, add_version, finished_run, make_skill, signup_steps


def test_a_tenant_lists_its_own_skills_and_archived_ones_only_when_asked(
    alice: Persona, carol: Persona
) -> None:
    mine = make_skill(alice.tenant)
    old = make_skill(alice.tenant, slug="old", name="Old")
    Skill.objects.filter(pk=old.pk).update(archived_at=timezone.now())
    make_skill(carol.tenant)  # the same slug in another tenant

    assert list(skills_for_tenant(alice.tenant)) == [mine]
    assert set(skills_for_tenant(alice.tenant, archived=True)) == {mine, old}


def test_get_skill_finds_by_id_or_slug_and_another_tenants_skill_is_not_found(
    alice: Persona, carol: Persona
) -> None:
    mine = make_skill(alice.tenant)
    theirs = make_skill(carol.tenant, slug="theirs")

    assert get_skill(alice.tenant, "sign-up") == mine
    assert get_skill(alice.tenant, str(mine.pk)) == mine
    for key in ("theirs", str(theirs.pk), "no-such-skill", "not a uuid or slug"):
        with pytest.raises(Http404):
            get_skill(alice.tenant, key)
    Skill.objects.filter(pk=mine.pk).update(archived_at=timezone.now())
    assert get_skill(alice.tenant, "sign-up") == mine
    with pytest.raises(Http404):
        get_skill(alice.tenant, "sign-up", archived=False)


def test_get_version_gives_the_newest_or_the_one_asked_for(alice: Persona) -> None:
    skill = make_skill(alice.tenant)
    with pytest.raises(Http404):
        get_version(skill)
    first = add_version(skill)
    second = add_version(skill, changed_steps=[4])

    assert get_version(skill) == second
    assert get_version(skill, 1) == first
    with pytest.raises(Http404):
        get_version(skill, 3)


def test_skill_stats_count_runs_rate_the_ended_ones_and_chart_them_oldest_first(alice: Persona) -> None:
    alice.tenant.price_browser_minute = Decimal("0.6")
    alice.tenant.save()
    skill = make_skill(alice.tenant)
    v1 = add_version(skill)
    v2 = add_version(skill, changed_steps=[4])
    finished_run(v1, seconds=9, ago=timedelta(hours=5))
    finished_run(v1, status=RunStatus.FAILED, seconds=1, ago=timedelta(hours=4))
    finished_run(v2, seconds=2, ago=timedelta(hours=3))
    newest = finished_run(v2, seconds=4, ago=timedelta(hours=2))
    finished_run(v2, status=RunStatus.RUNNING, seconds=None, ago=timedelta(minutes=1))
    other = make_skill(alice.tenant, slug="other")
    finished_run(add_version(other), seconds=100)  # another skill's run counts for that one only
    finished_run(None, tenant=alice.tenant, seconds=100)  # a hand-written program's run: no skill

    stats = skill_stats(skill)

    assert stats["runs"] == 5
    assert stats["completed"] == 3
    assert stats["success_rate"] == pytest.approx(3 / 4)  # the running one has not ended
    assert stats["median_duration_s"] == pytest.approx(4.0)  # of the completed: 2, 4, 9
    assert stats["last_run_at"] > newest.created_at
    series = stats["series"]
    assert [round(p.duration_s) for p in series] == [9, 1, 2, 4]
    assert [p.status for p in series] == ["completed", "failed", "completed", "completed"]
    assert series[-1].run_id == newest.pk
    assert [p.created_at for p in series] == sorted(p.created_at for p in series)
    # Without model calls a run costs its browser time: at most its wall time at 0.6 a minute.
    assert 0 < series[0].amount <= 9 / 60 * 0.6 + 1e-9
    assert stats["avg_amount"] == pytest.approx(sum(p.amount for p in series) / 4)


def test_a_skill_never_run_has_no_rate_no_median_and_nothing_to_chart(alice: Persona) -> None:
    skill = make_skill(alice.tenant)
    add_version(skill)

    stats = skill_stats(skill)

    assert stats["runs"] == 0 and stats["completed"] == 0
    assert stats["success_rate"] is None and stats["median_duration_s"] is None
    assert stats["last_run_at"] is None and stats["series"] == [] and stats["avg_amount"] is None


def test_the_overview_gives_each_skill_its_versions_and_figures(alice: Persona, carol: Persona) -> None:
    signup = make_skill(alice.tenant)
    v1 = add_version(signup)
    add_version(signup)
    finished_run(v1, seconds=3)
    finished_run(v1, status=RunStatus.FAILED)
    quiet = make_skill(alice.tenant, slug="quiet", name="Quiet")
    add_version(quiet)
    theirs = make_skill(carol.tenant)
    finished_run(add_version(theirs))

    rows = {row.skill.slug: row for row in skills_overview(alice.tenant)}

    assert set(rows) == {"sign-up", "quiet"}
    assert rows["sign-up"].versions == 2 and rows["sign-up"].stats.runs == 2
    assert rows["sign-up"].stats.success_rate == pytest.approx(0.5)
    assert rows["sign-up"].stats.median_duration_s == pytest.approx(3.0)
    assert rows["quiet"].versions == 1 and rows["quiet"].stats.runs == 0


def test_the_skills_api_lists_each_skill_with_its_newest_version_in_a_fixed_number_of_queries(
    alice: Persona, carol: Persona, django_assert_max_num_queries: Any
) -> None:
    for number in range(12):
        skill = make_skill(alice.tenant, slug=f"skill-{number}", name=f"Skill {number}")
        add_version(skill, params=[])
        add_version(skill, steps=signup_steps(label=f"Sign up {number}"))
        finished_run(add_version(skill, steps=signup_steps(label=f"Newest {number}")))
    finished_run(add_version(make_skill(carol.tenant)))
    alice.get("/api/skills")  # the token, tenant and membership lookups settle

    # A query per skill for its newest version would be 12 more.
    with django_assert_max_num_queries(6):
        answer = alice.get("/api/skills")

    assert answer.status_code == 200
    skills = {skill["slug"]: skill for skill in answer.json()}
    assert set(skills) == {f"skill-{number}" for number in range(12)}
    for number in range(12):
        skill = skills[f"skill-{number}"]
        assert skill["version"] == 3
        assert skill["steps"][3]["label"] == f"Newest {number}"
        assert skill["params"] == SIGNUP_PARAMS
        assert skill["stats"]["runs"] == 1
