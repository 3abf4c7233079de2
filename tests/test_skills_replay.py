"""Skills end to end: a completed run compiles into a skill that replays the same way every time,
heals when a recorded locator breaks but the element is still unmistakable, and pauses (never
guesses) when it is not; the human's answer repairs the skill."""

from __future__ import annotations

from typing import Any

import pytest

from runs.models import RunEvent
from tests.conftest import Persona, event_types, start_run, wait_run

EMAIL = "ann@example.com"


def shop_program(site: Any) -> list[dict[str, Any]]:
    return [
        {"action": "goto", "url": site.url("/shop")},
        {"action": "click", "selector": "text=Choose", "label": "Choose the plan"},
        {"action": "fill", "selector": "#email", "value": EMAIL, "label": "Type the email"},
        {"action": "select", "selector": "#country", "value": "FR", "label": "Pick the country"},
        {
            "action": "click",
            "selector": "#subscribe",
            "label": "Subscribe",
            "timeout": 5,
            "gate": {"kind": "approval", "prompt": "Subscribe?"},
        },
        {"action": "wait_for", "selector": "#done"},
        {"action": "assert_text", "text": "Thanks"},
    ]


def approve(persona: Persona, run: dict[str, Any], **answer: Any) -> dict[str, Any]:
    response = persona.post(f"/api/runs/{run['id']}/approve", answer)
    assert response.status_code == 202, response.content
    return wait_run(persona, run["id"])


def completed_shop_run(alice: Persona, site: Any) -> dict[str, Any]:
    """The source run: the ambiguous Choose answered with Pro, then the subscription approved."""
    run = start_run(alice, shop_program(site), goal="Subscribe to a plan")
    assert run["pending_step"]["trigger"] == "ambiguity", run
    pro = next(option for option in run["pending_step"]["options"] if "Pro" in option)
    run = approve(alice, run, choice=pro)
    assert run["pending_step"]["trigger"] == "approval", run
    run = approve(alice, run)
    assert run["status"] == "completed", run
    return run


def compile_shop(alice: Persona, run_id: str, **body: Any) -> dict[str, Any]:
    response = alice.post(f"/api/runs/{run_id}/compile", {"slug": "subscribe", **body})
    assert response.status_code == 201, response.content
    return dict(response.json())


def replay(alice: Persona, params: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = alice.post("/api/runs?wait=30", {"skill": "subscribe", "params": params, **body})
    assert response.status_code == 201, response.content
    return dict(response.json())


@pytest.mark.timeout(400)  # ten replays, each approved: minutes on a loaded 2-core machine
def test_compiled_skill_replays_the_chosen_element_with_only_its_human_gates(alice, site, worker):
    source = completed_shop_run(alice, site)
    skill = compile_shop(alice, source["id"], params={"email": EMAIL})

    assert skill["version"] == 1
    assert skill["params"] == [{"name": "email", "type": "string", "example": EMAIL}]
    steps = skill["steps"]
    assert [s["action"] for s in steps] == [s["action"] for s in shop_program(site)]
    assert steps[2]["value"] == "{{params.email}}"
    assert EMAIL not in str(steps)
    # The answered ambiguity became the chosen element, never "the 2nd match".
    choose = steps[1]["locator"]
    assert choose["attributes"]["id"] == "choose-pro"
    assert choose["unique"][0] == "id"
    assert steps[4]["gate"] == {"kind": "approval", "prompt": "Subscribe?"}

    site.reset()
    for number in range(10):
        email = f"user{number}@example.com"
        run = replay(alice, {"email": email})
        assert run["skill"] == {"slug": "subscribe", "version": 1}
        assert run["planner"] == "skill"
        # The only pause is the program's own gate.
        assert run["status"] == "awaiting_approval", run
        assert (run["pending_step"]["index"], run["pending_step"]["trigger"]) == (5, "approval")
        run = approve(alice, run)
        assert run["status"] == "completed", run
        assert [s["status"] for s in run["steps"]] == ["done"] * len(steps)
        assert "step.healed" not in event_types(run["id"])
    orders = [e for e in site.events if e["kind"] == "order"]
    assert [o["email"] for o in orders] == [f"user{n}@example.com" for n in range(10)]
    assert {(o["plan"], o["country"]) for o in orders} == {("Pro", "FR")}


def test_skill_params_are_checked_before_anything_runs(alice, site, worker):
    source = completed_shop_run(alice, site)
    compile_shop(alice, source["id"], params={"email": EMAIL})

    for params, expected in (
        ({}, {"params.email"}),
        ({"email": 5}, {"params.email"}),
        ({"email": "a@b.example", "extra": "x"}, {"params.extra"}),
        ({"email": True, "plan": "Pro"}, {"params.email", "params.plan"}),
    ):
        response = alice.post("/api/runs", {"skill": "subscribe", "params": params})
        assert response.status_code == 400, response.content
        body = response.json()
        assert body["error"] == "invalid_params"
        assert {p["field"] for p in body["problems"]} == expected
    unknown = alice.post("/api/runs", {"skill": "no-such-skill", "params": {}})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "skill_not_found"
    assert alice.get("/api/runs").json()[0]["id"] == source["id"]  # nothing was created


def test_a_renamed_id_heals_by_role_and_name(alice, site, worker):
    source = completed_shop_run(alice, site)
    compile_shop(alice, source["id"], params={"email": EMAIL})
    site.set_toggle("shop_renamed", True)

    run = replay(alice, {"email": "heal@example.com"})
    assert run["pending_step"]["trigger"] == "approval", run
    run = approve(alice, run)

    assert run["status"] == "completed", run
    healed = RunEvent.objects.filter(run_id=run["id"], type="step.healed").order_by("id")
    by_step = {e.step_index: e.data["by"] for e in healed}
    # Each renamed id: found again by what still tells the element apart ("Pro" is its card's own text).
    assert by_step == {2: "context", 3: "role", 4: "role", 5: "role"}, by_step
    assert {e.data["primary"] for e in healed} == {"id"}
    assert [s["healed_by"] for s in run["steps"]] == [None, "context", "role", "role", "role", None, None]
    order = [e for e in site.events if e["kind"] == "order"][-1]
    assert (order["plan"], order["email"], order["country"]) == ("Pro", "heal@example.com", "FR")


def test_two_look_alikes_pause_and_saving_the_fix_gives_a_version_that_does_not(alice, site, worker):
    source = completed_shop_run(alice, site)
    compile_shop(alice, source["id"], params={"email": EMAIL})
    site.set_toggle("shop_twin", True)
    orders = site.count("order")

    run = replay(alice, {"email": "twin@example.com"})
    assert run["pending_step"]["trigger"] == "approval", run
    run = approve(alice, run)
    pending = run["pending_step"]
    assert (pending["index"], pending["trigger"], pending["kind"]) == (5, "ambiguity", "choice"), run
    assert len(pending["options"]) == 2
    monthly = next(option for option in pending["options"] if "Monthly" in option)
    assert site.count("order") == orders  # it did not guess
    # The answer picks the element (the program's own approval gate was answered already).
    run = approve(alice, run, choice=monthly)
    assert run["status"] == "completed", run
    assert [e for e in site.events if e["kind"] == "order"][-1]["cadence"] == "monthly"

    fixed = compile_shop(alice, run["id"])
    assert fixed["version"] == 2
    assert fixed["changed_steps"] == [5]
    assert fixed["steps"][4]["locator"]["attributes"]["id"] == "subscribe-monthly"
    v1 = alice.get("/api/skills/subscribe/versions/1").json()
    assert [s for i, s in enumerate(fixed["steps"]) if i != 4] == [
        s for i, s in enumerate(v1["steps"]) if i != 4
    ]

    assert RunEvent.objects.filter(run_id=run["id"], type="skill.compiled").count() == 1
    again = replay(alice, {"email": "again@example.com"})
    assert again["skill"] == {"slug": "subscribe", "version": 2}
    assert again["pending_step"]["trigger"] == "approval", again
    again = approve(alice, again)
    assert again["status"] == "completed", again
    assert [e for e in site.events if e["kind"] == "order"][-1]["cadence"] == "monthly"


def test_an_element_that_no_longer_agrees_is_not_acted_on(alice, site, worker):
    source = completed_shop_run(alice, site)
    compile_shop(alice, source["id"], params={"email": EMAIL})
    site.set_toggle("shop_relabel", True)  # the same id, but the button now says "Sign up"
    orders = site.count("order")

    run = replay(alice, {"email": "relabel@example.com"})
    run = approve(alice, run)

    pending = run["pending_step"]
    assert (pending["index"], pending["trigger"], pending["options"]) == (
        5,
        "blocked",
        ["retry", "skip", "fail"],
    ), run
    assert "named 'Subscribe'" in pending["prompt"]
    assert site.count("order") == orders
