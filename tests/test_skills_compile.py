"""Compiling runs into skills: what a version holds (and never holds), versions, archiving, the API's
refusals. The runs compiled here are built in the database (the replay tests use real ones), except
the secret scan, which needs what a real run records."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from runs.models import Run, RunStatus, Step, StepStatus
from skills.models import Skill, SkillVersion
from tests.conftest import Persona, start_run, wait_run

BUTTON = {
    "tag": "button",
    "role": "button",
    "name": "Pay",
    "text": "Pay",
    "attributes": {"id": "pay", "type": "submit"},
    "css": "body > form > button",
    "xpath": "/html[1]/body[1]/form[1]/button[1]",
    "fingerprint": {"tag": "button", "role": "button", "name": "Pay"},
    "unique": ["id", "role", "text", "css", "xpath"],
}
FIELD = {
    "tag": "input",
    "role": "textbox",
    "name": "Card",
    "label": "Card",
    "attributes": {"id": "card", "name": "card"},
    "css": "body > form > input",
    "xpath": "/html[1]/body[1]/form[1]/input[1]",
    "fingerprint": {"tag": "input", "role": "textbox", "name": "Card"},
    "unique": ["id", "role", "label", "name", "css", "xpath"],
}


def completed_run(persona: Persona, **fields: Any) -> Run:
    """A completed run of goto + fill (a card number and an email) + click, as the executor leaves it."""
    program = fields.pop(
        "program",
        [
            {"action": "goto", "url": "http://shop.example/pay?ref=A-77"},
            {"action": "fill", "selector": "#card", "value": "4111 1111 1111 1111"},
            {"action": "fill", "selector": "#email", "value": "ann@example.com"},
            {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay?"}},
        ],
    )
    now = timezone.now()
    run = Run.objects.create(
        tenant=persona.tenant,
        goal="Pay the invoice",
        url="http://shop.example/pay",
        program=program,
        step_total=len(program),
        status=fields.pop("status", RunStatus.COMPLETED),
        started_at=now,
        finished_at=now,
        **fields,
    )
    locators = {"fill": FIELD, "click": BUTTON}
    for index, step in enumerate(program, start=1):
        Step.objects.create(
            run=run,
            index=index,
            action=step["action"],
            label=step.get("label", f"{step['action']} {step.get('selector', step.get('url', ''))}"),
            status=StepStatus.DONE,
            locator=locators.get(step["action"]),
            started_at=now,
            finished_at=now,
        )
    return run


def test_compile_promotes_literals_keeps_gates_and_versions_the_slug(alice, private_urls):
    run = completed_run(alice)

    first = alice.post(f"/api/runs/{run.pk}/compile", {"slug": "pay", "params": {"ref": "A-77"}})
    second = alice.post(f"/api/runs/{run.pk}/compile", {"slug": "pay", "name": "Pay an invoice"})

    assert first.status_code == 201, first.content
    v1 = first.json()
    assert (v1["slug"], v1["name"], v1["version"]) == ("pay", "Pay the invoice", 1)
    assert v1["params"] == [{"name": "ref", "type": "string", "example": "A-77"}]
    steps = v1["steps"]
    assert steps[0]["url"] == "http://shop.example/pay?ref={{params.ref}}"
    assert steps[1]["locator"]["attributes"]["id"] == "card"
    assert steps[1]["selector"] == '[id="card"]'  # the primary locator, as a Playwright selector
    assert steps[3]["gate"] == {"kind": "approval", "prompt": "Pay?"}
    assert all(step["label"] for step in steps)
    assert second.status_code == 201, second.content
    assert second.json()["version"] == 2
    assert second.json()["name"] == "Pay an invoice"
    assert second.json()["changed_steps"] == [1]  # v2 has no ref parameter: its goto differs
    skill = alice.get("/api/skills/pay").json()
    assert (skill["version"], skill["name"], skill["archived"]) == (2, "Pay an invoice", False)
    assert alice.get(f"/api/skills/{skill['id']}").json()["slug"] == "pay"
    assert [v["version"] for v in alice.get("/api/skills/pay/versions").json()] == [2, 1]
    assert alice.get("/api/skills/pay/versions/1").json()["steps"] == steps
    assert alice.get("/api/skills/pay/versions/3").status_code == 404
    assert [s["slug"] for s in alice.get("/api/skills").json()] == ["pay"]
    assert alice.get("/api/skills").json()[0]["stats"]["runs"] == 0


def test_preview_suggests_personal_data_and_stores_nothing(alice, private_urls):
    run = completed_run(alice)

    response = alice.get(f"/api/runs/{run.pk}/compile")

    assert response.status_code == 200, response.content
    preview = response.json()
    assert preview["version"] == 1
    suggested = {s["literal"]: s for s in preview["suggested"]}
    assert suggested["4111 1111 1111 1111"]["name"] == "card_number"
    assert suggested["4111 1111 1111 1111"]["steps"] == [2]
    assert suggested["ann@example.com"]["name"] == "email"
    assert "A-77" not in suggested
    taken = alice.client.get(
        f"/api/runs/{run.pk}/compile", {"params": json.dumps({"email": "ann@example.com"})}
    ).json()
    assert [s["name"] for s in taken["suggested"]] == ["card_number"]
    assert taken["steps"][2]["value"] == "{{params.email}}"
    assert not Skill.objects.exists()


def test_compile_refuses_what_it_cannot_compile_and_stores_nothing(alice, bob, carol, private_urls):
    paused = completed_run(alice, status=RunStatus.AWAITING_APPROVAL)
    run = completed_run(alice)

    not_done = alice.post(f"/api/runs/{paused.pk}/compile", {"slug": "pay"})
    unused = alice.post(f"/api/runs/{run.pk}/compile", {"params": {"amount": "99.00", "ref": "A-77"}})
    bad_slug = alice.post(f"/api/runs/{run.pk}/compile", {"slug": "Pay It!"})
    braces = alice.post(f"/api/runs/{run.pk}/compile", {"params": {"x": "{{secrets.a}}"}})
    viewer = bob.post(f"/api/runs/{run.pk}/compile", {"slug": "pay"})
    stranger = carol.post(f"/api/runs/{run.pk}/compile", {"slug": "pay"})

    assert not_done.status_code == 409
    assert not_done.json()["error"] == "not_completed"
    assert unused.status_code == 400
    assert unused.json()["error"] == "literal_not_used"
    assert [p["field"] for p in unused.json()["problems"]] == ["params.amount"]
    assert bad_slug.status_code == 400
    assert [p["field"] for p in bad_slug.json()["problems"]] == ["slug"]
    assert braces.status_code == 400
    assert viewer.status_code == 403
    assert stranger.status_code == 404
    assert not Skill.objects.exists()


def test_archiving_hides_the_skill_and_keeps_its_versions_and_runs(alice, carol, private_urls):
    run = completed_run(alice)
    assert alice.post(f"/api/runs/{run.pk}/compile", {"slug": "pay"}).status_code == 201
    replay = alice.post("/api/runs", {"skill": "pay", "params": {}})
    assert replay.status_code == 201, replay.content
    assert replay.json()["skill"] == {"slug": "pay", "version": 1}
    assert replay.json()["planner"] == "skill"

    assert carol.client.delete("/api/skills/pay").status_code == 404
    assert alice.client.delete("/api/skills/pay").status_code == 204

    assert alice.get("/api/skills").json() == []
    assert [s["slug"] for s in alice.get("/api/skills?archived=1").json()] == ["pay"]
    assert alice.get("/api/skills/pay").json()["archived"] is True
    assert alice.get("/api/skills/pay/versions/1").status_code == 200
    refused = alice.post("/api/runs", {"skill": "pay", "params": {}})
    assert refused.status_code == 404
    assert refused.json()["error"] == "skill_not_found"
    assert alice.get(f"/api/runs/{replay.json()['id']}").json()["skill"] == {"slug": "pay", "version": 1}
    assert alice.get("/api/skills/pay").json()["stats"]["runs"] == 1
    assert alice.client.delete("/api/skills/pay").status_code == 404
    # Compiling the slug again brings it back, as its next version.
    assert alice.post(f"/api/runs/{run.pk}/compile", {"slug": "pay"}).json()["version"] == 2
    assert alice.get("/api/skills/pay").json()["archived"] is False


def test_versions_are_immutable(alice, private_urls):
    run = completed_run(alice)
    alice.post(f"/api/runs/{run.pk}/compile", {"slug": "pay"})
    version = SkillVersion.objects.get()

    version.steps = []
    try:
        version.save()
    except RuntimeError as exc:
        assert "immutable" in str(exc)
    else:
        raise AssertionError("a version was changed")
    assert SkillVersion.objects.get().steps != []


def test_another_tenants_skill_does_not_exist(alice, carol, private_urls):
    run = completed_run(alice)
    skill = alice.post(f"/api/runs/{run.pk}/compile", {"slug": "pay"}).json()

    assert carol.get("/api/skills").json() == []
    assert carol.get("/api/skills/pay").status_code == 404
    assert carol.get(f"/api/skills/{skill['id']}").status_code == 404
    assert carol.get("/api/skills/pay/versions/1").status_code == 404
    missing = carol.post("/api/runs", {"skill": "pay", "params": {}})
    assert (missing.status_code, missing.json()["error"]) == (404, "skill_not_found")
    assert carol.get(f"/api/runs/{run.pk}/compile").status_code == 404


def test_a_locator_in_a_program_is_checked(alice, private_urls):
    response = alice.post(
        "/api/runs",
        {
            "steps": [
                {"action": "goto", "url": "http://shop.example/", "locator": BUTTON},
                {"action": "click", "selector": "#pay", "locator": "#pay"},
                {"action": "click", "selector": "#pay", "locator": {"tag": "button"}},
                {
                    "action": "click",
                    "selector": "#pay",
                    "locator": {**BUTTON, "name": "Pay {{params.who}}"},
                },
                {"action": "click", "selector": "#pay", "locator": {**BUTTON, "text": "x" * 20_000}},
            ]
        },
    )

    assert response.status_code == 400
    assert [(p["step"], p["field"]) for p in response.json()["problems"]] == [
        (1, "locator"),
        (2, "locator"),
        (3, "locator"),
        (4, "locator"),
        (5, "locator"),
    ]


# -- with a real run ------------------------------------------------------------------------------------
def test_no_secret_or_one_time_code_is_in_any_skill_version(alice, site, worker):
    secret = f"Tr0ub&dor-{secrets.token_hex(4)}!"
    code = f"{secrets.randbelow(9 * 10**7) + 10**7}"
    assert alice.post("/api/secrets", {"name": "echo_secret", "value": secret}).status_code == 201

    def echo(value: str, gate: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        fill: dict[str, Any] = {"action": "fill", "selector": "#v", "value": value}
        if gate:
            fill["gate"] = gate
        return [
            {"action": "goto", "url": site.url("/echo")},
            fill,
            {"action": "click", "selector": "#send"},
            # The page shows what was typed: the element waited for holds the value.
            {"action": "wait_for", "selector": "#said"},
            {"action": "extract", "selector": "#said", "name": "said"},
        ]

    typed = start_run(alice, echo("{{secrets.echo_secret}}"))
    assert typed["status"] == "completed", typed
    given = start_run(alice, echo("{{input}}", {"kind": "input", "prompt": "Code", "pattern": "^[0-9]{8}$"}))
    assert given["status"] == "awaiting_approval", given
    assert alice.post(f"/api/runs/{given['id']}/approve", {"input": code}).status_code == 202
    assert wait_run(alice, given["id"])["status"] == "completed"

    answers = [
        alice.post(f"/api/runs/{typed['id']}/compile", {"slug": "echo-secret"}),
        alice.post(f"/api/runs/{given['id']}/compile", {"slug": "echo-code"}),
        alice.get(f"/api/runs/{typed['id']}/compile"),
        alice.get("/api/skills"),
    ]

    assert [a.status_code for a in answers] == [201, 201, 200, 200]
    for answer in answers:
        assert secret not in answer.content.decode(), answer.content
        assert code not in answer.content.decode(), answer.content
    stored = json.dumps(list(SkillVersion.objects.values("steps", "params")), default=str)
    assert secret not in stored and code not in stored
    assert '"{{secrets.echo_secret}}"' in stored and '"{{input}}"' in stored
    said = answers[0].json()["steps"][3]["locator"]
    assert said["attributes"]["id"] == "said"
    assert "You said" in said["text"]

    # The skill replays: the element that showed the secret is still recognized (the value aside).
    replay = alice.post("/api/runs?wait=30", {"skill": "echo-secret", "params": {}})
    assert replay.status_code == 201, replay.content
    done = replay.json()
    assert done["status"] == "completed", done
    assert secret not in replay.content.decode()
    assert done["cost"]["model_calls"] == 0
    assert done["cost"]["tokens_in"] == done["cost"]["tokens_out"] == 0
    assert 0 < done["cost"]["browser_s"] <= done["cost"]["wall_s"]
    assert done["cost"]["steps"] == 5


@pytest.mark.django_db(transaction=True)
def test_when_a_planned_run_is_said_compiled_its_skill_already_answers_the_goal(
    alice: Persona, private_urls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The skill.compiled event reaches webhooks and live pages when it commits: by then the skill
    # must answer the goal, or the same goal sent at once is planned again (a CI run of the agent
    # test read the skill between the two).
    from runs import events
    from skills.learning import compile_completed

    seen: list[bool] = []

    def on_commit_read_the_skill(run: Any, event: Any, data: dict[str, Any]) -> None:
        if event.type == "skill.compiled":
            skill_id = data["skill_id"]
            transaction.on_commit(lambda: seen.append(Skill.objects.get(pk=skill_id).answers_goals))

    monkeypatch.setattr(
        events, "event_subscribers", [*events.event_subscribers, (99, on_commit_read_the_skill)]
    )
    run = completed_run(alice, planner="model")
    compile_completed(run.pk)
    assert seen == [True]
    assert Skill.objects.get(tenant=alice.tenant).answers_goals
