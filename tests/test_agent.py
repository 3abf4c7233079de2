"""The agent end to end: goal-only runs planned by a model (the suite's test model, which computes
its tool calls from the snapshot it is sent), in the real browser, with a real worker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runs.models import Run, RunEvent, Step
from tests.conftest import Persona, event_types, wait_run, wait_until
from tests.site.server import TOTP_SEED
from vault.totp import totp

GOAL = "Sign in as alice and pay the open order"
PASSWORD = "wonderland"


def use_model(persona: Persona, model: Any, **settings: Any) -> None:
    tenant = persona.tenant
    tenant.llm_base_url, tenant.llm_model = model.base_url, "test-model"
    for name, value in settings.items():
        setattr(tenant, name, value)
    tenant.save()


def add_secret(persona: Persona, name: str, value: str, **extra: Any) -> None:
    response = persona.post("/api/secrets", {"name": name, "value": value, **extra})
    assert response.status_code == 201, response.content


def start_goal(persona: Persona, goal: str, url: str, **body: Any) -> dict[str, Any]:
    response = persona.post("/api/runs?wait=45", {"goal": goal, "url": url, **body})
    assert response.status_code == 201, response.content
    run = dict(response.json())
    return run if run["status"] not in {"queued", "running"} else wait_run(persona, run["id"], wait=45)


def answer(persona: Persona, run: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = persona.post(f"/api/runs/{run['id']}/approve", body)
    assert response.status_code == 202, response.content
    return wait_run(persona, run["id"], wait=45)


def actions(run: dict[str, Any]) -> list[str]:
    return [step["action"] for step in run["steps"]]


def sent(model: Any) -> str:
    """Every request the model received, as one text (what a scan for leaked values reads)."""
    return json.dumps(model.requests, ensure_ascii=False)


def test_sign_in_with_a_vault_password_then_pay_pauses_before_paying(alice, site, worker, test_model):
    use_model(alice, test_model)
    add_secret(alice, "shop_password", PASSWORD)
    run = start_goal(alice, GOAL, site.url("/login"))

    # The one-time code: the model cannot know it, so a person gives it (the model never sees it).
    assert run["status"] == "awaiting_approval", run
    pending = run["pending_step"]
    assert (pending["trigger"], pending["kind"]) == ("mfa", "input"), pending
    code = totp(TOTP_SEED)
    run = answer(alice, run, input=code)

    # Paying is consequential: the run pauses before the click, saying exactly what waits.
    assert run["status"] == "awaiting_approval", run
    pending = run["pending_step"]
    assert pending["trigger"] == "approval"
    assert pending["prompt"] == f"Click button 'Pay $42.00' on {site.base_url.removeprefix('http://')}/pay"
    assert site.count("payment") == 0
    run = answer(alice, run)

    assert run["status"] == "completed", run
    assert site.count("payment") == 1 and site.count("login") == 1 and site.count("otp_ok") == 1
    assert run["planner"] == "model" and run["summary"]
    assert run["outputs"]["receipt"] == "Receipt: R-0001"  # the page's text, as the step read it
    assert actions(run) == [
        "goto",
        "fill",
        "fill",
        "click",
        "click",
        "fill",
        "click",
        "click",
        "extract",
        "done",
    ]
    planned = [s["planned"] for s in run["steps"][1:]]
    assert all(p and p["intent"] and p["calls"] >= 1 for p in planned)
    assert [s["label"] for s in run["steps"][1:]] == [
        p["intent"] if s["action"] != "done" else s["label"]
        for s, p in zip(run["steps"][1:], planned, strict=True)
    ]
    assert run["steps"][7]["planned"]["policy"]  # why the payment waited
    assert run["cost"]["model_calls"] == test_model.calls == len(planned)
    assert run["cost"]["tokens_in"] > 0 and run["cost"]["amount"] > 0

    # Nothing secret reached the model, though it saw the filled password field and the typed code.
    everything = sent(test_model)
    assert PASSWORD not in everything and code not in everything
    assert "[secret:shop_password]" in everything and "[redacted]" in everything
    for request in test_model.requests:
        assert request["tool_choice"] == "required" and request["tools"]

    # Aria refs are never stored: every planned element step has a selector and a locator bundle.
    program = Run.objects.get(pk=run["id"]).program
    for step in program:
        if step["action"] in {"fill", "click", "extract"}:
            assert "aria-ref" not in step["selector"] and step["locator"]["fingerprint"]["tag"]


def test_the_same_goal_again_replays_the_compiled_skill_with_no_model_call(alice, site, worker, test_model):
    use_model(alice, test_model)
    add_secret(alice, "shop_password", PASSWORD)
    add_secret(alice, "shop_totp", TOTP_SEED, kind="totp", origins=[site.base_url])
    first = start_goal(alice, GOAL, site.url("/login"))
    first = answer(alice, first)  # the payment; the vault typed the one-time code
    assert first["status"] == "completed", first
    # Compiled once the run has completed (after its commit): waited for.
    wait_until(lambda: "skill.compiled" in event_types(first["id"]), what="the skill's compilation")
    calls = test_model.calls

    skills = alice.get("/api/skills").json()
    assert len(skills) == 1 and skills[0]["answers_goals"] and skills[0]["version"] == 1
    assert "done" not in [s["action"] for s in skills[0]["steps"]]

    again = start_goal(alice, GOAL.lower() + ".", site.url("/login"))  # the same goal, normalized
    assert again["planner"] == "skill" and again["skill"] == {"slug": skills[0]["slug"], "version": 1}
    assert again["pending_step"]["trigger"] == "approval"  # its gates stay
    again = answer(alice, again)
    assert again["status"] == "completed", again
    assert test_model.calls == calls  # no request reached the model
    assert again["cost"]["model_calls"] == 0 and again["cost"]["tokens_in"] == 0
    assert actions(again) == actions(first)[:-1]  # the same steps (the model's "done" aside)
    assert again["outputs"]["receipt"] == "Receipt: R-0002" and site.count("payment") == 2

    # "plan": "always" plans anyway.
    forced = start_goal(alice, GOAL, site.url("/login"), plan="always")
    assert forced["planner"] == "model" and test_model.calls > calls


def test_a_vault_totp_secret_for_the_origin_types_the_code_and_the_trail_says_so(
    alice, site, worker, test_model
):
    use_model(alice, test_model)
    add_secret(alice, "shop_password", PASSWORD)
    add_secret(alice, "shop_totp", TOTP_SEED, kind="totp", origins=[site.base_url])
    run = start_goal(alice, GOAL, site.url("/login"))
    assert run["pending_step"]["trigger"] == "approval", run  # no one-time-code pause
    assert site.count("otp_ok") == 1
    event = RunEvent.objects.get(run_id=run["id"], type="agent.mfa_from_vault")
    assert event.data["secret"] == "shop_totp"
    otp_step = next(
        s for s in Run.objects.get(pk=run["id"]).program if s.get("value") == "{{secrets.shop_totp}}"
    )
    assert otp_step["action"] == "fill"
    assert TOTP_SEED not in sent(test_model)


def test_an_ambiguous_goal_asks_a_person_and_goes_on_with_the_answer(alice, site, worker, test_model):
    use_model(alice, test_model)
    run = start_goal(alice, "Transfer $100 to the landlord", site.url("/agent/accounts"))
    pending = run["pending_step"]
    assert (pending["trigger"], pending["kind"]) == ("ambiguity", "choice"), run
    savings = next(option for option in pending["options"] if option.startswith("Savings"))
    run = answer(alice, run, choice=savings)

    assert run["pending_step"]["trigger"] == "approval", run  # "Transfer $100.00" is consequential
    assert "Transfer $100.00" in run["pending_step"]["prompt"]
    run = answer(alice, run)
    assert run["status"] == "completed", run
    transfers = [e for e in site.events if e["kind"] == "transfer"]
    assert len(transfers) == 1 and "savings" in json.dumps(transfers[0]).lower()
    ask = next(s for s in run["steps"] if s["action"] == "ask")
    assert ask["planned"]["answer"] == savings
    # The answer went back to the model with the actions so far.
    assert f"answered: {savings}" in sent(test_model)


def test_bad_tool_calls_are_told_to_the_model_then_block_after_three(alice, site, worker, test_model):
    use_model(alice, test_model)
    test_model.mode = "bad"
    run = start_goal(alice, "Sign in as alice", site.url("/login"))
    assert run["status"] == "awaiting_approval", run
    pending = run["pending_step"]
    assert pending["trigger"] == "blocked" and pending["options"] == ["retry", "skip", "fail"]
    assert "3 invalid calls in a row" in pending["prompt"]
    assert test_model.calls == 3
    # The second and third requests carry the refusal of the call before as the tool's answer.
    for request in test_model.requests[1:]:
        tool_messages = [m for m in request["messages"] if m["role"] == "tool"]
        assert tool_messages and tool_messages[-1]["content"].startswith("Error: ")
    assert site.events == [] or all(e["kind"] != "login" for e in site.events)
    run = answer(alice, run, choice="fail")
    assert run["status"] == "failed"


def test_one_bad_call_is_corrected_and_recorded(alice, site, worker, test_model):
    use_model(alice, test_model)
    add_secret(alice, "shop_password", PASSWORD)
    test_model.mode = "bad_once"
    run = start_goal(alice, "Sign in as alice", site.url("/login"))
    assert run["status"] == "completed", run
    first = run["steps"][1]["planned"]
    assert first["calls"] == 2 and len(first["errors"]) == 1
    assert run["cost"]["model_calls"] == test_model.calls


def test_limits_pause_and_retry_grants_another_round_and_skip_finishes(alice, site, worker, test_model):
    use_model(alice, test_model, agent_max_steps=2)
    run = start_goal(alice, "Keep going", site.url("/agent/steps?n=1"))
    assert run["pending_step"]["trigger"] == "blocked", run
    assert "limit of 2 planned steps" in run["pending_step"]["prompt"]
    assert actions(run)[:3] == ["goto", "click", "click"]
    run = answer(alice, run, choice="retry")
    assert run["pending_step"]["trigger"] == "blocked", run
    assert "(2 rounds)" in run["pending_step"]["prompt"]
    assert actions(run)[:5] == ["goto", "click", "click", "click", "click"]
    run = answer(alice, run, choice="skip")
    assert run["status"] == "completed", run
    assert [s["status"] for s in run["steps"]][-1] == "skipped"


def test_an_unreachable_model_pauses_blocked_with_the_reason(alice, site, worker):
    tenant = alice.tenant
    tenant.llm_base_url, tenant.llm_model = "http://127.0.0.1:9/v1", "nobody"
    tenant.save()
    run = start_goal(alice, "Sign in as alice", site.url("/login"))
    assert run["pending_step"]["trigger"] == "blocked", run
    assert "could not be reached" in run["pending_step"]["prompt"]
    assert RunEvent.objects.filter(run_id=run["id"], type="agent.blocked").exists()


@pytest.mark.django_db
def test_a_goal_without_a_model_or_a_skill_is_refused_with_how_to_configure_one(alice, settings):
    settings.TWIN_LLM_BASE_URL = ""
    response = alice.post("/api/runs", {"goal": "Pay the invoice", "url": "http://127.0.0.1:1/"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "planner_not_configured"
    assert "TWIN_LLM_BASE_URL" in body["detail"] and "docs/agent.md" in body["detail"]
    assert not Run.objects.exists()
    response = alice.post("/api/runs", {"goal": "Pay the invoice"})
    assert response.status_code == 400 and "goal and a url" in json.dumps(response.json())


def test_steps_record_nothing_but_the_planned_calls(alice, site, worker, test_model):
    """The step rows keep what the model decided, scrubbed: a secret typed shows as its template."""
    use_model(alice, test_model)
    add_secret(alice, "shop_password", PASSWORD)
    run = start_goal(alice, "Sign in as alice", site.url("/login"))
    assert run["status"] == "completed", run
    rows = Step.objects.filter(run_id=run["id"]).order_by("index")
    assert PASSWORD not in json.dumps([r.planned for r in rows]) + json.dumps([r.locator for r in rows])
    password = next(r for r in rows if r.planned and r.planned["arguments"].get("value", "").startswith("{{"))
    assert password.planned is not None
    assert password.planned["arguments"]["value"] == "{{secrets.shop_password}}"


def test_a_planned_run_restored_after_the_browser_is_lost_pays_on_the_page_that_was_approved(
    alice, site, worker, test_model
):
    """Restoring never depends on aria refs: the planned click is found again by its locator."""
    from engine.browser import stop_host_browser

    use_model(alice, test_model)
    add_secret(alice, "shop_password", PASSWORD)
    add_secret(alice, "shop_totp", TOTP_SEED, kind="totp", origins=[site.base_url])
    run = start_goal(alice, GOAL, site.url("/login"))
    assert run["pending_step"]["trigger"] == "approval", run
    calls = test_model.calls
    assert stop_host_browser()

    run = answer(alice, run)
    assert run["status"] == "completed", run
    assert site.count("payment") == 1
    types = event_types(run["id"])
    assert "run.restored_from_checkpoint" in types and "run.state_verified" in types
    assert test_model.calls == calls + 2  # after the payment: extract the receipt, then done


SHOP_GOAL = "Subscribe to the Pro plan"
EMAIL = "ann@example.com"


def _planned_shop_skill(alice: Persona, site: Any, model: Any) -> dict[str, Any]:
    run = start_goal(alice, SHOP_GOAL, site.url("/shop"), params={"email": EMAIL})
    assert run["status"] == "completed" and run["planner"] == "model", run
    assert [e for e in site.events if e["kind"] == "order"][-1]["plan"] == "Pro"
    skill = alice.get("/api/skills").json()[0]
    assert skill["params"] == [{"name": "email", "type": "string", "example": EMAIL}]
    return dict(skill)


def test_a_changed_page_pauses_the_replay_and_the_persons_answer_is_the_next_version(
    alice, site, worker, test_model
):
    use_model(alice, test_model)
    skill = _planned_shop_skill(alice, site, test_model)
    calls = test_model.calls
    site.set_toggle("shop_twin", True)  # two Subscribe buttons now, and neither has the recorded id

    run = start_goal(alice, SHOP_GOAL, site.url("/shop"), params={"email": EMAIL})
    assert run["planner"] == "skill", run
    pending = run["pending_step"]
    assert pending["trigger"] == "ambiguity" and len(pending["options"]) == 2, pending
    monthly = next(option for option in pending["options"] if "Monthly" in option)
    run = answer(alice, run, choice=monthly)
    assert run["status"] == "completed", run
    assert [e for e in site.events if e["kind"] == "order"][-1]["cadence"] == "monthly"
    assert test_model.calls == calls  # a person repaired it, not the model

    # The next version is compiled once the run has completed (after its commit): waited for.
    repaired = wait_until(
        lambda: (r := alice.get(f"/api/skills/{skill['slug']}").json())["version"] == 2 and r,
        timeout=20,
        what="the skill's next version",
    )
    assert repaired["version"] == 2
    versions = alice.get(f"/api/skills/{skill['slug']}/versions").json()
    assert versions[0]["changed_steps"] == [pending["index"]]  # only the step the person answered

    again = start_goal(alice, SHOP_GOAL, site.url("/shop"), params={"email": EMAIL})
    assert again["status"] == "completed" and again["skill"]["version"] == 2, again
    assert again["cost"]["model_calls"] == 0 and test_model.calls == calls


def test_the_model_repairs_a_replayed_step_when_the_tenant_asks_it_to(alice, site, worker, test_model):
    use_model(alice, test_model, agent_repair_with_model=True)
    skill = _planned_shop_skill(alice, site, test_model)
    calls = test_model.calls
    site.set_toggle("shop_twin", True)

    run = start_goal(alice, SHOP_GOAL, site.url("/shop"), params={"email": EMAIL})
    assert run["status"] == "completed" and run["planner"] == "skill", run
    assert test_model.calls == calls + 1 and run["cost"]["model_calls"] == 1  # that one step only
    replanned = RunEvent.objects.get(run_id=run["id"], type="step.replanned")
    assert replanned.data["by"] == "model"
    step = next(s for s in run["steps"] if s["index"] == replanned.step_index)
    assert step["planned"]["tool"] == "click"
    # The repair is the skill's next version (compiled after the run's commit, so waited for):
    # the same goal now replays with no model at all.
    wait_until(
        lambda: alice.get(f"/api/skills/{skill['slug']}").json()["version"] == 2,
        timeout=20,
        what="the skill's next version",
    )
    again = start_goal(alice, SHOP_GOAL, site.url("/shop"), params={"email": EMAIL})
    assert again["status"] == "completed" and again["cost"]["model_calls"] == 0, again
    assert test_model.calls == calls + 1


def test_vision_sends_a_screenshot_only_when_the_tenant_enables_it(alice, site, worker, test_model):
    def images(request: dict[str, Any]) -> list[str]:
        content = request["messages"][-1]["content"]
        if isinstance(content, str):
            return []
        return [part["image_url"]["url"] for part in content if part.get("type") == "image_url"]

    use_model(alice, test_model)
    add_secret(alice, "shop_password", PASSWORD)
    run = start_goal(alice, "Sign in as alice", site.url("/login"))
    assert run["status"] == "completed", run
    assert all(images(request) == [] for request in test_model.requests)

    test_model.reset()
    use_model(alice, test_model, agent_vision=True)
    run = start_goal(alice, "Sign in as alice", site.url("/login"), plan="always")  # not the skill
    assert run["status"] == "completed", run
    shots = [images(request) for request in test_model.requests]
    assert shots and all(len(s) == 1 and s[0].startswith("data:image/jpeg;base64,") for s in shots)
    assert PASSWORD not in sent(test_model)
