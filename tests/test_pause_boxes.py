"""A pause keeps where the step's element (or each option's) was on its screenshot, and the card
says in words what approving does: never a secret, never a box the page made up."""

from __future__ import annotations

from typing import Any

from approvals.cards import shot_of, step_words, value_words
from approvals.models import Approval
from engine.boxes import box_of, element_of
from tests.conftest import start_run


def _boxes(run_id: str) -> dict[str, Any]:
    boxes = Approval.objects.get(run_id=run_id, status="pending").boxes
    assert isinstance(boxes, dict), boxes
    return boxes


def _inside(box: dict[str, float], viewport: dict[str, float]) -> bool:
    return (
        0 <= box["x"] < viewport["width"]
        and 0 <= box["y"] < viewport["height"]
        and box["width"] > 0
        and box["height"] > 0
    )


def test_an_approval_pause_keeps_the_box_and_the_name_of_the_button_it_will_click(alice, site, worker):
    run = start_run(
        alice,
        [
            {"action": "goto", "url": site.url("/pay")},
            {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay?"}},
        ],
    )

    assert run["status"] == "awaiting_approval", run
    boxes = _boxes(run["id"])
    assert boxes["viewport"]["width"] > 300 and boxes["viewport"]["height"] > 200
    assert _inside(boxes["target"], boxes["viewport"])
    assert boxes["candidates"] == []
    assert boxes["element"]["role"] == "button"
    assert boxes["element"]["name"].startswith("Pay $")


def test_an_ambiguity_pause_keeps_one_box_per_option_in_the_options_order(alice, site, worker):
    run = start_run(
        alice,
        [{"action": "goto", "url": site.url("/twins")}, {"action": "click", "selector": "button.del"}],
    )

    assert run["status"] == "awaiting_approval", run
    approval = Approval.objects.get(run_id=run["id"], status="pending")
    boxes = approval.boxes
    assert boxes is not None and approval.options is not None and approval.candidates is not None
    assert len(boxes["candidates"]) == len(approval.options) == len(approval.candidates) >= 2
    assert boxes["target"] is None
    ys = [box["y"] for box in boxes["candidates"]]
    assert ys == sorted(ys) and len(set(ys)) == len(ys), "each option has its own row, top to bottom"
    assert all(_inside(box, boxes["viewport"]) for box in boxes["candidates"])
    assert boxes["element"] == {"role": "button", "name": "Delete"}


def test_a_choice_gate_outlines_the_element_each_option_would_click(alice, site, worker):
    run = start_run(
        alice,
        [
            {"action": "goto", "url": site.url("/twins")},
            {
                "action": "click",
                "selector": "text={{choice}}",
                "gate": {"kind": "choice", "prompt": "Which account?", "options": ["Checking", "Savings"]},
            },
        ],
    )

    assert run["status"] == "awaiting_approval", run
    boxes = _boxes(run["id"])
    checking, savings = boxes["candidates"]
    assert checking["x"] < savings["x"], "the two account buttons sit side by side"


def test_a_blocked_pause_outlines_nothing_when_the_element_is_not_there(alice, site, worker):
    run = start_run(
        alice,
        [
            {"action": "goto", "url": site.url("/flaky")},
            {"action": "click", "selector": "#go", "timeout": 1},
        ],
    )

    assert run["status"] == "awaiting_approval", run
    boxes = _boxes(run["id"])
    assert boxes["target"] is None
    assert "element" not in boxes


def test_a_page_cannot_plant_absurd_boxes_or_names():
    assert box_of({"x": float("nan"), "y": 0, "width": 10, "height": 10}) is None
    assert box_of({"x": "1", "y": 0, "width": 10, "height": 10}) is None
    assert box_of({"x": True, "y": 0, "width": 10, "height": 10}) is None
    assert box_of({"x": 0, "y": 0, "width": 0, "height": 10}) is None
    assert box_of({"x": 1e300, "y": -1e300, "width": 1e300, "height": 5}) == {
        "x": 1e6,
        "y": -1e6,
        "width": 1e6,
        "height": 5.0,
    }
    element = element_of({"role": "button<script>", "name": "x" * 500 + " hunter2"}, lambda s: s)
    assert element == {"role": "", "name": "x" * 100}
    assert element_of(
        {"role": "textbox", "name": "PIN hunter2"}, lambda s: s.replace("hunter2", "[secret]")
    ) == {
        "role": "textbox",
        "name": "PIN [secret]",
    }

    shot = shot_of(
        {
            "viewport": {"width": 1280, "height": 720},
            "target": {"x": -50, "y": 700, "width": 5000, "height": 5000},
            "candidates": [{"x": 10, "y": 5000, "width": 10, "height": 10}, "nonsense", None] * 40,
        }
    )
    assert shot is not None and shot.target is not None
    assert (shot.target.x, shot.target.y, shot.target.width, shot.target.height) == (0, 700, 1280, 20)
    assert len(shot.candidates) == 17, "the first 50 raw boxes are read; nonsense is dropped"
    assert shot.drawn == [] and shot.outside[:2] == [1, 4]
    assert shot_of({"viewport": {"width": 10**9, "height": 5}}) is None
    assert shot_of({"viewport": "wide"}) is None


def test_values_read_as_names_never_as_what_they_resolve_to():
    assert value_words("{{secrets.BANK_PIN}}") == "the secret BANK_PIN"
    assert value_words("{{input}}") == "your input"
    assert value_words("{{ input }}", trigger="mfa") == "the code"
    assert value_words("{{params.amount}}") == "the parameter amount"
    assert value_words("Ref {{params.ref}}!") == "'Ref [the parameter ref]!'"
    assert value_words("a" * 500).endswith("…'")

    fill = {"action": "fill", "selector": "#otp", "value": "{{input}}", "label": "Type the code"}
    element = {"role": "textbox", "name": "One-time code"}
    assert step_words(fill, element=element, trigger="mfa") == "Type the code into textbox 'One-time code'"
    click = {"action": "click", "selector": "#pay"}
    assert step_words(click, element={"role": "button", "name": "Pay $42.00"}) == "Click button 'Pay $42.00'"
    assert step_words(click) == "Click the element '#pay'"
    assert (
        step_words({"action": "goto", "url": "https://shop.example/checkout?x=1"})
        == "Open shop.example/checkout"
    )
    secret = {"action": "fill", "selector": "#pin", "value": "{{secrets.PIN}}", "label": "PIN"}
    assert step_words(secret) == "PIN: type the secret PIN into the element '#pin'"
    assert step_words({"action": "assert_text", "text": "Payment complete"}) == (
        "Check that the page shows 'Payment complete'"
    )


def test_a_list_of_cards_reads_only_the_steps_it_shows_in_few_queries(alice, django_assert_max_num_queries):
    from datetime import timedelta

    from django.utils import timezone

    from approvals.cards import card_for, with_card_steps
    from runs.models import Run

    program = [{"action": "goto", "url": "https://shop.example/"}] + [
        {"action": "click", "selector": f"#b{i}", "label": f"Button {i}"} for i in range(1, 40)
    ]
    for n in range(12):
        run = Run.objects.create(
            tenant=alice.tenant, goal=f"run {n}", program=program, step_total=len(program)
        )
        Approval.objects.create(
            tenant=alice.tenant,
            run=run,
            step_index=2 + n % 3,
            step_count=len(program),
            action="click",
            trigger="approval",
            kind="approval",
            expires_at=timezone.now() + timedelta(hours=1),
        )
    items = list(Approval.objects.select_related("run").defer("run__program").order_by("created_at"))

    with django_assert_max_num_queries(3):  # one a distinct step index, not one a card
        with_card_steps(items)
        cards = [card_for(item) for item in items]

    assert cards[0].action == "Button 1: click the element '#b1'"
    assert [n for n, _ in cards[0].next_steps] == [3, 4, 5]
    assert cards[2].next_steps[-1] == (7, "Button 6: click the element '#b6'")
