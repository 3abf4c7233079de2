"""Skills in the dashboard: the list and a skill's page (steps, parameters, locators, versions with
their diffs, runs, the chart), running one from its generated form, archiving, saving a run as a
skill; viewers look, operators act, other tenants find nothing; the admin only shows."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from approvals.models import Approval, ApprovalStatus, Cause
from runs.models import Run, RunStatus
from skills.models import Skill, SkillVersion
from tenants.models import Membership, Role
from tenants.services import tenant_create
from tests.conftest import Persona
from tests.skill_factories import SIGN_UP_TESTID, add_version, finished_run, make_skill, signup_steps


def browser(persona: Persona | Any, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(persona.user if isinstance(persona, Persona) else persona)
    return client


def main_of(response: Any) -> str:
    html = response.content.decode()
    # The cells' data-label attributes are for phones (labels of a table shown as cards).
    html = re.sub(r' data-label="[^"]*"', "", html)
    return html[html.index('<main id="main"') : html.index("</main>")]


@pytest.fixture
def signup(alice: Persona) -> Skill:
    """Sign-up, version 1 then version 2 (the button found by its test id now), with runs."""
    skill = make_skill(alice.tenant, user=alice.user)
    v1 = add_version(skill)
    v2 = add_version(
        skill, steps=signup_steps(button=SIGN_UP_TESTID, label="Press Sign up"), changed_steps=[4]
    )
    finished_run(v1, seconds=9, ago=timedelta(hours=3), user=alice.user)
    finished_run(v2, status=RunStatus.FAILED, seconds=1, ago=timedelta(hours=2), user=alice.user)
    finished_run(v2, seconds=3, ago=timedelta(hours=1), user=alice.user)
    return skill


@pytest.fixture
def olga(alice: Persona) -> Persona:
    """An operator in acme."""
    return Persona("olga", "acme", Role.OPERATOR)


def test_the_skills_list_shows_versions_runs_success_rate_median_duration_and_last_run(
    alice: Persona, signup: Skill
) -> None:
    page = browser(alice).get("/skills/")

    assert page.status_code == 200
    row = re.search(r'<tr id="skill-sign-up"[^>]*>(.*?)</tr>', main_of(page), re.S)
    assert row, main_of(page)
    cells = [
        re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    ]
    assert cells[0].startswith("Sign up a customer")
    assert cells[1:5] == ["2", "3", "67%", "6.0 s"]  # 2 of 3 ended runs completed; median of 3 s, 9 s
    last = Run.objects.filter(skill_version__skill=signup).latest("created_at").created_at
    assert cells[5] == timezone.localtime(last).strftime("%Y-%m-%d %H:%M")
    assert 'href="/skills/sign-up/"' in row.group(1)
    nav = page.content.decode()
    assert re.search(r'<a href="/skills/"\s+aria-current="page">Skills</a>', nav)


def test_archived_skills_are_left_out_of_the_list_unless_asked_for(alice: Persona, signup: Skill) -> None:
    Skill.objects.filter(pk=signup.pk).update(archived_at=timezone.now())
    client = browser(alice)

    assert "skill-sign-up" not in main_of(client.get("/skills/"))
    shown = main_of(client.get("/skills/?archived=1"))
    assert 'id="skill-sign-up"' in shown and "archived" in shown
    detail = main_of(client.get("/skills/sign-up/"))
    assert "archived" in detail and "Run this skill" not in detail and "Archive</button>" not in detail


def test_the_skill_page_shows_steps_with_labels_parameters_as_chips_and_the_primary_locator(
    alice: Persona, signup: Skill
) -> None:
    page = main_of(browser(alice).get("/skills/sign-up/"))

    steps = re.search(r'<h2 id="steps-h">Steps of version 2</h2>(.*?)</section>', page, re.S)
    assert steps
    items = re.findall(
        r'<li class="step skill-step[^"]*" id="skill-step-(\d)">(.*?)</li>', steps.group(1), re.S
    )
    assert [i for i, _ in items] == ["1", "2", "3", "4", "5"]
    text = {int(i): body for i, body in items}
    assert "Open the sign-up page" in text[1] and "https://shop.example/signup" in text[1]
    assert "Type the email" in text[2]
    assert '<mark class="tpl tpl-params" title="{{params.email}}">params.email</mark>' in text[2]
    assert '<mark class="tpl tpl-params" title="{{params.plan}}">params.plan</mark>' in text[3]
    # Each element step names the locator it is found by first, and the others that were unique.
    assert (
        '<span class="badge by">id</span> “email” <code class="selector">[id=&quot;email&quot;]</code>'
        in text[2]
    )
    assert "if that fails: label" in text[2]
    assert '<span class="badge by">test id</span> “signup”' in text[4]
    assert "Press Sign up" in text[4] and 'class="step skill-step changed"' in steps.group(1)
    assert "assert_text" in text[5] and "Welcome" in text[5]
    params = re.search(r'<table class="params">(.*?)</table>', page, re.S)
    assert params
    for name, kind, example in (
        ("email", "string", "ann@example.com"),
        ("plan", "enum: free, pro", "pro"),
        ("seats", "number", "3"),
        ("newsletter", "boolean", "false"),
    ):
        assert f"params.{name}</mark></td><td>{kind}</td><td><code>{example}</code>" in params.group(1)


def changed_cells(row: str, name: str) -> re.Match[str] | None:
    """The old and the new cell of a diff row marked as changed."""
    cell = r'\s*<td class="{} changed">(.*?)</td>'
    return re.search(rf'<th scope="row">{name}</th>' + cell.format("old") + cell.format("new"), row)


def test_each_version_shows_what_changed_since_the_one_before(alice: Persona, signup: Skill) -> None:
    page = main_of(browser(alice).get("/skills/sign-up/"))

    v2 = re.search(r'<li class="version card" id="version-2">(.*?)</li>', page, re.S)
    v1 = re.search(r'<li class="version card" id="version-1">(.*?)</li>', page, re.S)
    assert v1 and v2 and page.index('id="version-2"') < page.index('id="version-1"')
    assert "The first version." in v1.group(1)
    diff = re.search(r'<table class="diff">(.*?)</table>', v2.group(1), re.S)
    assert diff and "What changed since version 1" in diff.group(1)
    rows = re.findall(r'<tbody class="diff-step diff-changed">(.*?)</tbody>', diff.group(1), re.S)
    assert len(rows) == 1 and '<th scope="rowgroup" rowspan="2">4' in rows[0]  # step 4 only
    label = changed_cells(rows[0], "label")
    assert label and label.groups() == ("Sign up", "Press Sign up")
    locator = changed_cells(rows[0], "locator")
    assert locator
    assert "role and name: button “Sign up”" in locator.group(1) and "internal:role=button" in locator.group(
        1
    )
    assert "test id: “signup”" in locator.group(2) and "[data-testid=" in locator.group(2)
    assert "value" not in rows[0]  # a click types nothing: no value row


def test_the_skill_page_lists_its_runs_and_charts_duration_and_cost_as_inline_svg(
    alice: Persona, signup: Skill
) -> None:
    response = browser(alice).get("/skills/sign-up/")
    page = main_of(response)
    runs = list(Run.objects.filter(skill_version__skill=signup).order_by("created_at"))

    for run in runs:
        assert f'href="/runs/{run.pk}/"' in page
    charts = re.findall(r"<svg class=\"chart chart-([a-z-]+)\"(.*?)</svg>", page, re.S)
    assert [name for name, _ in charts] == ["duration-s", "amount"]
    for _, svg in charts:
        points = re.findall(
            r'<a href="/runs/([0-9a-f-]+)/"><circle class="point point-(\w+)" cx="([\d.]+)" cy="([\d.]+)"',
            svg,
        )
        assert [(p[0], p[1]) for p in points] == [(str(r.pk), r.status) for r in runs]  # oldest first
        xs = [float(p[2]) for p in points]
        assert xs == sorted(xs)
    durations = re.findall(r'<circle class="point[^"]*" cx="[\d.]+" cy="([\d.]+)"', charts[0][1])
    heights = [float(y) for y in durations]
    assert heights[0] < heights[2] < heights[1]  # 9 s is highest (smallest y), then 3 s, then 1 s
    assert "9.0 s" in charts[0][1]
    assert "<script" not in page and "style=" not in page  # the strict CSP: nothing inline


def test_a_skill_without_runs_says_so_instead_of_an_empty_chart(alice: Persona) -> None:
    add_version(make_skill(alice.tenant))
    page = main_of(browser(alice).get("/skills/sign-up/"))
    assert "<svg" not in page and "No run of this skill has ended yet." in page


def test_a_viewer_sees_the_pages_but_cannot_run_archive_or_save(
    alice: Persona, bob: Persona, signup: Skill
) -> None:
    client = browser(bob)
    run = Run.objects.filter(skill_version__skill=signup, status=RunStatus.COMPLETED).first()
    assert run is not None

    assert client.get("/skills/").status_code == 200
    detail = client.get("/skills/sign-up/")
    assert detail.status_code == 200
    page = main_of(detail)
    assert "Run this skill" not in page and "Archive" not in page and 'method="post"' not in page
    assert "Save as skill" not in main_of(client.get(f"/runs/{run.pk}/"))
    assert client.get("/skills/sign-up/run").status_code == 403
    assert client.post("/skills/sign-up/run", {"p-email": "x@example.com"}).status_code == 403
    assert client.post("/skills/sign-up/archive").status_code == 403
    assert client.get(f"/runs/{run.pk}/save-skill").status_code == 403
    assert client.post(f"/runs/{run.pk}/save-skill", {"slug": "mine"}).status_code == 403
    signup.refresh_from_db()
    assert signup.archived_at is None
    assert Run.objects.filter(skill_version__skill=signup).count() == 3
    assert SkillVersion.objects.filter(skill=signup).count() == 2


def test_another_tenants_skill_and_run_are_not_found(carol: Persona, signup: Skill) -> None:
    client = browser(carol)
    run = Run.objects.filter(skill_version__skill=signup).first()
    assert run is not None

    assert "sign-up" not in main_of(client.get("/skills/?archived=1"))
    for path in ("/skills/sign-up/", f"/skills/{signup.pk}/", "/skills/sign-up/run"):
        assert client.get(path).status_code == 404, path
    assert client.post("/skills/sign-up/run", {"p-email": "x@example.com"}).status_code == 404
    assert client.post("/skills/sign-up/archive").status_code == 404
    assert client.get(f"/runs/{run.pk}/save-skill").status_code == 404
    assert client.post(f"/runs/{run.pk}/save-skill", {"slug": "stolen"}).status_code == 404
    signup.refresh_from_db()
    assert signup.archived_at is None
    assert not Skill.objects.filter(tenant=carol.tenant).exists()


def test_the_run_form_has_one_field_per_parameter_of_the_right_kind(olga: Persona, signup: Skill) -> None:
    page = main_of(browser(olga).get("/skills/sign-up/run"))

    assert re.search(
        r'<input id="param-email" name="p-email" type="text" value="" placeholder="ann@example.com"', page
    )
    assert re.search(r'<input id="param-seats" name="p-seats" type="number" step="any"', page)
    assert re.search(r'<input type="checkbox" id="param-newsletter" name="p-newsletter"\s*>', page)
    select = re.search(r'<select id="param-plan" name="p-plan"\s*>(.*?)</select>', page, re.S)
    assert select
    assert re.findall(r'<option value="([^"]*)"', select.group(1)) == ["", "free", "pro"]


def test_the_run_form_shows_each_problem_at_its_field_and_starts_nothing(
    olga: Persona, signup: Skill
) -> None:
    client = browser(olga, csrf=True)
    form = client.get("/skills/sign-up/run")
    token = form.cookies["csrftoken"].value

    refused = client.post(
        "/skills/sign-up/run",
        {"csrfmiddlewaretoken": token, "p-email": "", "p-plan": "gold", "p-seats": "three"},
    )

    assert refused.status_code == 400
    page = main_of(refused)
    for name in ("email", "plan", "seats"):
        assert re.search(
            rf'id="param-{name}"[^>]*aria-invalid="true" aria-describedby="param-{name}-errors"', page
        ), name
        assert f'<div role="alert"><ul id="param-{name}-errors" class="error field-errors">' in page, name
    assert 'id="param-newsletter-errors"' not in page
    assert 'value="three"' in page  # what was typed stays
    assert re.search(r'<option value="gold"|<option value="pro" selected', page) is None
    assert Run.objects.filter(skill_version__skill=signup).count() == 3


@pytest.mark.usefixtures("private_urls")  # shop.example does not resolve here
def test_a_valid_form_starts_a_run_of_the_newest_version_and_opens_its_page(
    olga: Persona, signup: Skill
) -> None:
    client = browser(olga, csrf=True)
    token = client.get("/skills/sign-up/run").cookies["csrftoken"].value

    started = client.post(
        "/skills/sign-up/run",
        {
            "csrfmiddlewaretoken": token,
            "p-email": "bea@example.com",
            "p-plan": "free",
            "p-seats": "2",
            "p-newsletter": "on",
        },
    )

    run = Run.objects.filter(skill_version__skill=signup).latest("created_at")
    assert started.status_code == 302 and started["Location"] == f"/runs/{run.pk}/"
    assert run.skill_version is not None and run.skill_version.version == 2
    assert run.params == {"email": "bea@example.com", "plan": "free", "seats": 2, "newsletter": True}
    assert run.created_by == olga.user and run.planner == "skill"


def test_an_operator_archives_a_skill_and_its_runs_keep_their_link(olga: Persona, signup: Skill) -> None:
    client = browser(olga, csrf=True)
    token = client.get("/skills/sign-up/").cookies["csrftoken"].value
    assert client.post("/skills/sign-up/archive").status_code == 403  # no CSRF token: refused

    archived = client.post("/skills/sign-up/archive", {"csrfmiddlewaretoken": token}, follow=True)

    assert archived.status_code == 200
    assert "Archived the skill Sign up a customer" in archived.content.decode()
    signup.refresh_from_db()
    assert signup.archived_at is not None
    assert Run.objects.filter(skill_version__skill=signup).count() == 3
    assert client.get("/skills/sign-up/run").status_code == 404  # an archived skill is not run


# -- saving a run as a skill ----------------------------------------------------------------------------
def hand_written_run(persona: Persona, *, status: str = RunStatus.COMPLETED) -> Run:
    return finished_run(None, tenant=persona.tenant, status=status, user=persona.user)


def test_the_run_page_offers_save_as_skill_to_operators_once_the_run_completed(
    olga: Persona, bob: Persona
) -> None:
    done = hand_written_run(olga)
    failed = hand_written_run(olga, status=RunStatus.FAILED)

    page = main_of(browser(olga).get(f"/runs/{done.pk}/"))
    assert f'<a class="button" href="/runs/{done.pk}/save-skill">Save as skill</a>' in page
    assert "save-skill" not in main_of(browser(olga).get(f"/runs/{failed.pk}/"))
    assert "save-skill" not in main_of(browser(bob).get(f"/runs/{done.pk}/"))


def test_a_replay_a_person_repaired_offers_save_the_fix_with_the_skills_slug(
    olga: Persona, signup: Skill
) -> None:
    version = signup.versions.get(version=2)
    replay = finished_run(version, user=olga.user)
    Approval.objects.create(
        tenant=olga.tenant,
        run=replay,
        step_index=4,
        step_count=5,
        action="click",
        cause=Cause.AMBIGUITY,
        trigger="ambiguity",
        kind="choice",
        options=["Sign up", "Sign up (footer)"],
        status=ApprovalStatus.APPROVED,
        choice="Sign up",
        expires_at=timezone.now() + timedelta(hours=1),
    )
    plain = finished_run(version, user=olga.user)  # replayed without a pause: nothing to fix
    client = browser(olga)

    run_page = main_of(client.get(f"/runs/{replay.pk}/"))
    assert f'<a class="button" href="/runs/{replay.pk}/save-skill">Save the fix</a>' in run_page
    assert 'href="/skills/sign-up/">Sign up a customer</a> version 2' in run_page
    assert "Save as skill</a>" in main_of(client.get(f"/runs/{plain.pk}/"))

    preview = client.get(f"/runs/{replay.pk}/save-skill")
    assert preview.status_code == 200
    page = main_of(preview)
    assert "Save the fix to Sign up a customer" in page
    assert 'id="id_slug" name="slug" value="sign-up"' in page
    assert "Save the fix as version 3" in page


def test_the_preview_lists_steps_and_params_and_suggests_personal_data_as_parameters(
    olga: Persona,
) -> None:
    run = hand_written_run(olga)
    Run.objects.filter(pk=run.pk).update(
        program=[
            {"action": "goto", "url": "https://shop.example/signup", "label": "Open the sign-up page"},
            {"action": "fill", "selector": "#email", "value": "ann@example.com", "label": "Type the email"},
            {"action": "click", "selector": "#go", "label": "Sign up"},
        ],
        step_total=3,
    )
    run.refresh_from_db()
    client = browser(olga)

    preview = client.get(f"/runs/{run.pk}/save-skill")

    assert preview.status_code == 200, main_of(preview)
    page = main_of(preview)
    assert "Type the email" in page and "Sign up" in page
    suggestion = re.search(r'<div class="suggestion" id="suggestion-0">(.*?)</div>', page, re.S)
    assert suggestion and "<code>ann@example.com</code>" in suggestion.group(1)
    assert 'type="checkbox" id="suggest-0" name="suggest-0"' in suggestion.group(1)

    saved = client.post(
        f"/runs/{run.pk}/save-skill",
        {"name": "Sign up", "slug": "sign-up-2", "suggest-0": "on", "suggest-0-name": "email"},
    )

    assert saved.status_code == 302 and saved["Location"] == "/skills/sign-up-2/"
    version = SkillVersion.objects.get(skill__tenant=olga.tenant, skill__slug="sign-up-2")
    assert [p["name"] for p in version.params] == ["email"]
    assert "ann@example.com" not in str(version.steps)
    assert "{{params.email}}" in str(version.steps)


def test_saving_shows_refusals_at_their_field_and_stores_nothing(olga: Persona) -> None:
    run = hand_written_run(olga)
    client = browser(olga)

    unknown = client.post(
        f"/runs/{run.pk}/save-skill",
        {"name": "X", "slug": "x", "extra_name": "who", "extra_literal": "never typed by the run"},
    )
    assert unknown.status_code == 400
    assert 'id="extra-errors"' in main_of(unknown)
    half = client.post(f"/runs/{run.pk}/save-skill", {"name": "X", "slug": "x", "extra_name": "who"})
    assert half.status_code == 400 and "give both" in main_of(half)
    assert not Skill.objects.filter(tenant=olga.tenant).exists()

    running = finished_run(None, tenant=olga.tenant, status=RunStatus.RUNNING, seconds=None)
    refused = client.get(f"/runs/{running.pk}/save-skill")
    assert refused.status_code == 409
    assert 'id="form-errors"' in main_of(refused)
    assert 'name="slug"' not in main_of(refused)


# -- the admin ------------------------------------------------------------------------------------------
def auditor_of(tenant_slug: str, username: str) -> Client:
    _, user, _ = tenant_create(slug=tenant_slug, owner_username=username, role=Role.AUDITOR)
    return browser(user)


def test_the_admin_shows_skills_and_versions_to_auditors_of_their_tenant_only(
    signup: Skill, carol: Persona
) -> None:
    theirs = make_skill(carol.tenant, slug="globex-only", name="Globex only")
    their_version = add_version(theirs)
    ada = auditor_of("acme", "ada")
    version = signup.versions.get(version=2)

    listing = ada.get("/admin/skills/skill/")
    assert listing.status_code == 200
    assert "Sign up a customer" in listing.content.decode() and "Globex only" not in listing.content.decode()
    shown = ada.get(f"/admin/skills/skillversion/{version.pk}/change/")
    assert shown.status_code == 200 and "{{params.email}}" in shown.content.decode()
    assert ada.get(f"/admin/skills/skill/{signup.pk}/change/").status_code == 200
    assert ada.get(f"/admin/skills/skill/{theirs.pk}/change/").status_code in {302, 404}
    assert ada.get(f"/admin/skills/skillversion/{their_version.pk}/change/").status_code in {302, 404}
    assert "globex-only" not in ada.get("/admin/skills/skillversion/").content.decode()
    assert Membership.objects.filter(user__username="ada", role=Role.AUDITOR).exists()


@pytest.mark.parametrize("who", ["auditor", "superuser"])
def test_nobody_adds_changes_or_deletes_skills_or_versions_in_the_admin(signup: Skill, who: str) -> None:
    if who == "auditor":
        client = auditor_of("acme", "ada")
    else:
        client = browser(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    version = signup.versions.get(version=1)
    before = (Skill.objects.count(), SkillVersion.objects.count(), signup.name, version.steps)

    answers = [
        client.post("/admin/skills/skill/add/", {"slug": "forged", "name": "Forged"}),
        client.post(f"/admin/skills/skill/{signup.pk}/change/", {"name": "Renamed"}),
        client.post(f"/admin/skills/skill/{signup.pk}/delete/", {"post": "yes"}),
        client.post("/admin/skills/skillversion/add/", {"version": 9}),
        client.post(f"/admin/skills/skillversion/{version.pk}/change/", {"steps": "[]"}),
        client.post(f"/admin/skills/skillversion/{version.pk}/delete/", {"post": "yes"}),
    ]

    assert [a.status_code for a in answers] == [403] * len(answers)
    signup.refresh_from_db()
    version.refresh_from_db()
    assert (Skill.objects.count(), SkillVersion.objects.count(), signup.name, version.steps) == before
    for url in ("/admin/skills/skill/", "/admin/skills/skillversion/"):
        page = client.get(url).content.decode()
        assert 'value="delete_selected"' not in page and f'href="{url}add/"' not in page


def test_a_step_listed_as_changed_but_looking_the_same_is_left_out_of_the_diff(alice: Persona) -> None:
    skill = make_skill(alice.tenant)
    add_version(skill)
    steps = signup_steps()
    steps[1] = {**steps[1], "locator": {**steps[1]["locator"], "nth": 0, "lookalikes": 2}}  # re-recorded
    add_version(skill, steps=steps, changed_steps=[2])

    page = main_of(browser(alice).get("/skills/sign-up/"))

    v2 = re.search(r'<li class="version card" id="version-2">(.*?)</li>', page, re.S)
    assert v2 and "The same steps as version 1." in v2.group(1) and "<table" not in v2.group(1)
