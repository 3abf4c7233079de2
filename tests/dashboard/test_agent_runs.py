"""Runs the agent planned, as a person sees them: the "planned" tag by the title, each planned step's
intent with the model's figures, the policy's reason and a question's answer, the run's summary; the
inbox card of a policy pause that says exactly which action waits; the tags in the runs list.

The runs are built straight in the database (no model, no worker): what the engine stores for them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.utils import timezone
from playwright.sync_api import Page, expect

from approvals.links import link_path
from approvals.models import Approval
from runs.models import Run, RunStatus, Step, StepStatus
from tests.dashboard.conftest import Person, shoot, sign_in
from tests.dashboard.test_content_security_policy import Watch
from tests.skill_factories import add_version, finished_run, make_skill

SITE = "http://127.0.0.1:5000"
PAY_PROMPT = "Click button 'Pay $42.00' on 127.0.0.1:5000/pay"
PAY_POLICY = "'Pay $42.00' matches the policy pattern 'pay'"


def planned(tool: str, intent: str, **extra: Any) -> dict[str, Any]:
    """A step's ``planned`` record as engine.planning stores it."""
    record: dict[str, Any] = {
        "tool": tool,
        "arguments": {"ref": "e5", "intent": intent},
        "intent": intent,
        "calls": 1,
        "errors": [],
        "tokens_in": 700,
        "tokens_out": 112,
        "latency_ms": 900,
    }
    record.update(extra)
    return record


def planned_run(owner: Person, *, goal: str, status: str, steps: list[dict[str, Any]], **fields: Any) -> Run:
    """A run of the agent with ``steps`` ({action, label, status, planned?}), each taking 2 s."""
    start = timezone.now() - timedelta(minutes=5)
    program = [{"action": s["action"], "label": s["label"]} for s in steps]
    run = Run.objects.create(
        tenant=owner.tenant,
        created_by=owner.user,
        goal=goal,
        url=f"{SITE}/invoices",
        program=program,
        step_total=len(program),
        planner="model",
        status=status,
        current_step=len(steps),
        started_at=start,
        model_calls=sum((s.get("planned") or {}).get("calls", 0) for s in steps),
        tokens_in=sum((s.get("planned") or {}).get("tokens_in", 0) for s in steps),
        tokens_out=sum((s.get("planned") or {}).get("tokens_out", 0) for s in steps),
        **fields,
    )
    for i, step in enumerate(steps):
        waiting = step["status"] == StepStatus.AWAITING_APPROVAL
        Step.objects.create(
            run=run,
            index=i + 1,
            action=step["action"],
            label=step["label"],
            status=step["status"],
            attempts=1,
            started_at=start + timedelta(seconds=2 * i),
            finished_at=None if waiting else start + timedelta(seconds=2 * i + 2),
            planned=step.get("planned"),
        )
    return run


def paused_at_pay(owner: Person) -> tuple[Run, Approval]:
    run = planned_run(
        owner,
        goal="Pay the July invoice",
        status=RunStatus.AWAITING_APPROVAL,
        steps=[
            {"action": "goto", "label": "Open 127.0.0.1:5000/invoices", "status": StepStatus.DONE},
            {
                "action": "click",
                "label": "Open the July invoice",
                "status": StepStatus.DONE,
                "planned": planned("click", "Open the July invoice"),
            },
            {
                "action": "ask",
                "label": "Which account should pay?",
                "status": StepStatus.DONE,
                "planned": planned(
                    "ask_human",
                    "Which account should pay?",
                    arguments={"prompt": "Which account should pay?", "kind": "choice"},
                    tokens_in=1500,
                    tokens_out=40,
                    latency_ms=1400,
                    answer="Checking",
                ),
            },
            {
                "action": "click",
                "label": "Pay the invoice",
                "status": StepStatus.AWAITING_APPROVAL,
                "planned": planned(
                    "click",
                    "Pay the invoice",
                    calls=2,
                    errors=["there is no element [ref=e9] in the newest snapshot"],
                    tokens_in=2100,
                    tokens_out=150,
                    latency_ms=2300,
                    policy=PAY_POLICY,
                ),
            },
        ],
    )
    approval = Approval.objects.create(
        tenant=owner.tenant,
        run=run,
        step_index=4,
        step_count=4,
        action="click",
        trigger="approval",
        kind="approval",
        prompt=PAY_PROMPT,
        page_url=f"{SITE}/pay",
        page_title="Pay invoice INV-7",
        expires_at=timezone.now() + timedelta(hours=23),
    )
    return run, approval


def asking_for_an_account(owner: Person) -> Run:
    """A planned run paused at the model's own question (ask_human: a choice)."""
    question = "Which account should pay the August invoice?"
    run = planned_run(
        owner,
        goal="Pay the August invoice",
        status=RunStatus.AWAITING_APPROVAL,
        steps=[
            {"action": "goto", "label": "Open 127.0.0.1:5000/invoices", "status": StepStatus.DONE},
            {
                "action": "ask",
                "label": question,
                "status": StepStatus.AWAITING_APPROVAL,
                "planned": planned("ask_human", question, arguments={"prompt": question, "kind": "choice"}),
            },
        ],
    )
    Approval.objects.create(
        tenant=owner.tenant,
        run=run,
        step_index=2,
        step_count=2,
        action="ask",
        trigger="ambiguity",
        kind="choice",
        prompt=question,
        options=["Checking", "Savings"],
        page_url=f"{SITE}/invoices",
        page_title="Invoices",
        expires_at=timezone.now() + timedelta(hours=23),
    )
    return run


def test_a_planned_run_shows_who_planned_each_step_and_its_pause_says_what_waits(
    page: Page, alice: Person
) -> None:
    run, approval = paused_at_pay(alice)
    asking_for_an_account(alice)
    watch = Watch(page)
    sign_in(page, alice)

    # The inbox card: planned by the agent, what for, and the action waiting, verbatim and set apart.
    page.goto("/inbox/")
    card = page.locator("article.item").filter(has_text="Pay the July invoice")
    expect(card.locator(".badge.trigger")).to_have_text("Approval")
    expect(card.locator(".planned-by")).to_have_text("Planned by the agent Pay the invoice")
    expect(card.locator(".prompt-action .prompt-lead")).to_have_text("The action waiting for your approval")
    expect(card.locator(".prompt-action .prompt")).to_have_text(PAY_PROMPT)
    expect(card.locator(".policy")).to_have_text(f"Needs approval: {PAY_POLICY}")
    expect(card.get_by_role("button", name="Approve")).to_be_visible()
    # The model's own question: planned by the agent, the question as the prompt, no action box.
    asked = page.locator("article.item").filter(has_text="Pay the August invoice")
    expect(asked.locator(".planned-by")).to_have_text("Planned by the agent The agent asks:")
    expect(asked.locator(".prompt")).to_have_text("Which account should pay the August invoice?")
    expect(asked.locator(".prompt-action")).to_have_count(0)
    expect(asked.get_by_role("radio", name="Savings")).to_be_visible()
    watch.check("the inbox with a planned pause")
    shoot(page, "agent-inbox")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the action still reads whole
    expect(card.locator(".prompt-action .prompt")).to_be_visible()
    shoot(page, "agent-inbox-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # The run page: the tag by the title, each planned step's figures under its intent.
    card.get_by_role("link", name="Pay the July invoice").click()
    expect(page).to_have_url(re.compile(rf"/runs/{run.pk}/$"))
    expect(page.locator(".page-head .title .planner-tag")).to_have_text("planned")
    expect(page.locator(".page-head .badge").first).to_have_text("awaiting approval")
    expect(page.locator("dd.planner")).to_have_text("the model (planned step by step)")
    steps = page.locator("ol.steps > li")
    expect(steps).to_have_count(4)
    expect(steps.nth(0).locator(".planned")).to_have_count(0)  # the run's URL: no model chose it
    expect(steps.nth(1).locator(".label")).to_have_text("Open the July invoice")
    expect(steps.nth(1).locator(".planned-figures")).to_have_text("click · 1 call · 812 tokens · 0.9 s")
    expect(steps.nth(2).locator(".planned-figures")).to_have_text("ask_human · 1 call · 1,540 tokens · 1.4 s")
    expect(steps.nth(2).locator(".answer")).to_have_text("answer: Checking")
    expect(steps.nth(3).locator(".planned-figures")).to_have_text(
        "click · 2 calls (1 refused) · 2,250 tokens · 2.3 s"
    )
    expect(steps.nth(3).locator(".policy")).to_have_text(f"needs approval: {PAY_POLICY}")
    # The cost panel counts the model's calls and tokens.
    expect(page.locator("dd.cost-model")).to_have_text("4 (4300 tokens in, 302 out)")
    # The pending pause on the run page is the same card.
    pending = page.locator("section.pending article.item")
    expect(pending.locator(".planned-by")).to_contain_text("Planned by the agent")
    expect(pending.locator(".prompt-action .prompt")).to_have_text(PAY_PROMPT)
    watch.check("a planned run's page")
    shoot(page, "agent-run-paused")

    # A decision link (from an email or chat) says the same.
    page.goto(link_path(approval))
    item = page.locator("article.link-item")
    expect(item.locator(".planned-by")).to_have_text("Planned by the agent Pay the invoice")
    expect(item.locator(".prompt-action .prompt")).to_have_text(PAY_PROMPT)
    watch.check("a planned pause's decision link")


def test_a_finished_planned_run_shows_its_summary_and_the_runs_list_tags_who_planned(
    page: Page, alice: Person
) -> None:
    done = planned_run(
        alice,
        goal="Find the receipt number of the July invoice",
        status=RunStatus.COMPLETED,
        finished_at=timezone.now() - timedelta(minutes=4),
        plan={
            "rounds": 1,
            "steps": 3,
            "finished": True,
            "summary": "The receipt number is R-1042.",
            "paused_for": "",
        },
        outputs={"receipt": "R-1042"},
        steps=[
            {"action": "goto", "label": "Open 127.0.0.1:5000/invoices", "status": StepStatus.DONE},
            {
                "action": "click",
                "label": "Open the July invoice",
                "status": StepStatus.DONE,
                "planned": planned("click", "Open the July invoice"),
            },
            {
                "action": "extract",
                "label": "Read the receipt number",
                "status": StepStatus.DONE,
                "planned": planned("extract", "Read the receipt number", tokens_in=0, tokens_out=0),
            },
            {
                "action": "done",
                "label": "Done: The receipt number is R-1042.",
                "status": StepStatus.DONE,
                "planned": planned(
                    "done",
                    "The receipt number is R-1042.",
                    arguments={"summary": "The receipt number is R-1042.", "outputs": {"receipt": "R-1042"}},
                ),
            },
        ],
    )
    skill = make_skill(alice.tenant, user=alice.user)
    replay = finished_run(add_version(skill), user=alice.user)
    Run.objects.filter(pk=replay.pk).update(plan={"matched": True})
    written = finished_run(None, tenant=alice.tenant, user=alice.user)
    Run.objects.filter(pk=written.pk).update(goal="Check the shop is up")

    watch = Watch(page)
    sign_in(page, alice)
    page.goto(f"/runs/{done.pk}/")
    expect(page.locator(".page-head .title .planner-tag")).to_have_text("planned")
    expect(page.locator("dd.summary")).to_have_text("The receipt number is R-1042.")
    steps = page.locator("ol.steps > li")
    expect(steps.nth(3).locator(".label")).to_have_text("Done: The receipt number is R-1042.")
    # A model that reports no usage: no token figure rather than a made-up one.
    expect(steps.nth(2).locator(".planned-figures")).to_have_text("extract · 1 call · 0.9 s")
    watch.check("a finished planned run")
    shoot(page, "agent-run-completed")

    page.goto(f"/runs/{replay.pk}/")
    tag = page.locator(".page-head .title .planner-tag")
    expect(tag).to_have_text("replayed skill v1")
    expect(page.locator("dd.summary")).to_have_count(0)
    tag.click()
    expect(page).to_have_url(re.compile(r"/skills/sign-up/$"))

    page.goto(f"/runs/{written.pk}/")
    expect(page.locator(".page-head .title .planner-tag")).to_have_count(0)

    page.goto("/runs/")
    expect(page.locator(f"#run-{done.pk} .planner-tag")).to_have_text("planned")
    expect(page.locator(f"#run-{replay.pk} .planner-tag")).to_have_text("skill")
    expect(page.locator(f"#run-{replay.pk} .skill-ref")).to_have_text("sign-up v1")
    expect(page.locator(f"#run-{written.pk} .planner-tag")).to_have_count(0)
    watch.check("the runs list")
    shoot(page, "agent-runs-list")
