"""runs.program.validate_program: every problem of a step program, found before anything runs."""

from __future__ import annotations

from typing import Any

import pytest

from runs.program import ACTIONS, validate_program

GOOD_STEP: dict[str, dict[str, Any]] = {
    "goto": {"action": "goto", "url": "https://shop.example/"},
    "fill": {"action": "fill", "selector": "#user", "value": "alice"},
    "click": {"action": "click", "selector": "#pay"},
    "press": {"action": "press", "selector": "#q", "key": "Enter"},
    "select": {"action": "select", "selector": "#country", "value": "FR"},
    "check": {"action": "check", "selector": "#terms"},
    "wait_for": {"action": "wait_for", "selector": "#done"},
    "assert_text": {"action": "assert_text", "text": "Payment complete"},
    "extract": {"action": "extract", "selector": "#receipt", "name": "receipt_id"},
}


def problems_of(steps: Any, **kwargs: Any) -> list[tuple[int | None, str]]:
    return [(p.step, p.field) for p in validate_program(steps, resolve_hosts=False, **kwargs)]


def messages_of(steps: Any, **kwargs: Any) -> str:
    return " | ".join(p.message for p in validate_program(steps, resolve_hosts=False, **kwargs))


def test_the_contract_example_program_is_valid():
    steps = [
        {"action": "goto", "url": "http://127.0.0.1:8080/login"},
        {"action": "fill", "selector": "#user", "value": "alice"},
        {"action": "fill", "selector": "#password", "value": "{{secrets.shop_password}}"},
        {
            "action": "fill",
            "selector": "#otp",
            "value": "{{input}}",
            "gate": {"kind": "input", "trigger": "mfa", "prompt": "One-time code", "pattern": "^[0-9]{6}$"},
        },
        {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay $42?"}},
        {
            "action": "click",
            "selector": "text={{choice}}",
            "gate": {"kind": "choice", "prompt": "Which account?", "options": ["Checking", "Savings"]},
        },
        {"action": "press", "selector": "#q", "key": "Enter"},
        {"action": "select", "selector": "#country", "value": "FR"},
        {"action": "check", "selector": "#terms", "timeout": 5, "label": "Accept the terms"},
        {"action": "wait_for", "selector": "#done", "timeout": 2.5},
        {"action": "assert_text", "text": "Payment complete"},
        {"action": "extract", "selector": "#receipt", "name": "receipt_id"},
        {"action": "assert_text", "text": "{{outputs.receipt_id}}"},
    ]

    assert validate_program(steps, secret_names=["shop_password"], resolve_hosts=False) == []


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_every_action_reports_each_missing_required_field(action):
    required = ACTIONS[action]

    assert problems_of([{"action": action}]) == [(1, field) for field in required]


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_every_action_is_valid_with_its_required_fields(action):
    assert problems_of([GOOD_STEP[action]]) == []


@pytest.mark.parametrize(
    ("action", "field"),
    [("goto", "url"), ("click", "selector"), ("assert_text", "text"), ("extract", "name"), ("press", "key")],
)
def test_a_required_field_must_be_a_non_empty_string(action, field):
    assert problems_of([{**GOOD_STEP[action], field: ""}]) == [(1, field)]
    assert problems_of([{**GOOD_STEP[action], field: 42}]) == [(1, field)]


def test_a_fill_may_type_an_empty_value_but_not_a_missing_one():
    assert problems_of([{"action": "fill", "selector": "#q", "value": ""}]) == []
    assert problems_of([{"action": "fill", "selector": "#q"}]) == [(1, "value")]


def test_an_unknown_action_is_named_with_the_known_ones():
    problems = validate_program([{"action": "hover", "selector": "#menu"}], resolve_hosts=False)

    assert [(p.step, p.field) for p in problems] == [(1, "action")]
    assert "'hover'" in problems[0].message
    assert "click" in problems[0].message


def test_a_step_without_an_action_or_that_is_not_an_object_is_a_problem():
    assert problems_of([{"selector": "#pay"}, "click #pay"]) == [(1, "action"), (2, "step")]


def test_an_unknown_field_is_refused_rather_than_ignored():
    problems = validate_program([{"action": "click", "selector": "#pay", "wait": 3}], resolve_hosts=False)

    assert [(p.step, p.field) for p in problems] == [(1, "wait")]
    assert "'wait'" in problems[0].message


def test_an_action_specific_optional_field_is_only_taken_by_its_action():
    assert problems_of([{**GOOD_STEP["extract"], "attribute": "href"}]) == []
    assert problems_of([{**GOOD_STEP["click"], "attribute": "href"}]) == [(1, "attribute")]


@pytest.mark.parametrize("timeout", [0, -1, 601, "10", True, None, [5]])
def test_a_bad_timeout_is_a_problem(timeout):
    assert problems_of([{**GOOD_STEP["click"], "timeout": timeout}]) == [(1, "timeout")]


@pytest.mark.parametrize("timeout", [0.5, 1, 15, 600])
def test_a_timeout_in_seconds_up_to_ten_minutes_is_accepted(timeout):
    assert problems_of([{**GOOD_STEP["click"], "timeout": timeout}]) == []


def test_a_label_must_be_a_string():
    assert problems_of([{**GOOD_STEP["click"], "label": 7}]) == [(1, "label")]


@pytest.mark.parametrize(
    "gate",
    [
        {"kind": "approval"},
        {"kind": "approval", "prompt": "Pay?", "trigger": "blocked", "expires_in": 60},
        {"kind": "input", "prompt": "Code", "pattern": "^[0-9]{6}$"},
        {"kind": "choice", "options": ["Checking", "Savings"]},
    ],
)
def test_each_gate_kind_is_accepted(gate):
    assert problems_of([{**GOOD_STEP["click"], "gate": gate}]) == []


@pytest.mark.parametrize("gate", [{}, {"kind": "maybe"}, {"kind": None}, {"prompt": "Pay?"}])
def test_a_gate_needs_a_known_kind(gate):
    assert problems_of([{**GOOD_STEP["click"], "gate": gate}]) == [(1, "gate.kind")]


def test_a_gate_must_be_an_object():
    assert problems_of([{**GOOD_STEP["click"], "gate": "approval"}]) == [(1, "gate")]


def test_a_gate_refuses_unknown_fields_bad_triggers_and_bad_expiry():
    gate = {"kind": "approval", "prompt": 3, "trigger": "later", "expires_in": 0, "colour": "red"}

    assert sorted(problems_of([{**GOOD_STEP["click"], "gate": gate}])) == [
        (1, "gate.colour"),
        (1, "gate.expires_in"),
        (1, "gate.prompt"),
        (1, "gate.trigger"),
    ]


@pytest.mark.parametrize(
    "options", [None, [], ["Checking", ""], ["Checking", "Checking"], "Checking", [1, 2]]
)
def test_a_choice_gate_without_proper_options_is_a_problem(options):
    gate = {"kind": "choice", "prompt": "Which account?"}
    if options is not None:
        gate["options"] = options

    assert problems_of([{**GOOD_STEP["click"], "gate": gate}]) == [(1, "gate.options")]


def test_options_on_a_gate_that_is_not_a_choice_are_a_problem():
    gate = {"kind": "approval", "options": ["yes", "no"]}

    assert problems_of([{**GOOD_STEP["click"], "gate": gate}]) == [(1, "gate.options")]


def test_a_pattern_that_is_not_a_regular_expression_is_a_problem():
    step = {
        "action": "fill",
        "selector": "#otp",
        "value": "{{input}}",
        "gate": {"kind": "input", "pattern": "([0-9"},
    }

    problems = validate_program([step], resolve_hosts=False)

    assert [(p.step, p.field) for p in problems] == [(1, "gate.pattern")]
    assert "regular expression" in problems[0].message


def test_a_pattern_only_belongs_on_an_input_gate():
    gate = {"kind": "approval", "pattern": "^y$"}

    assert problems_of([{**GOOD_STEP["click"], "gate": gate}]) == [(1, "gate.pattern")]


def test_input_template_without_an_input_gate_is_a_problem():
    step = {"action": "fill", "selector": "#otp", "value": "{{input}}"}
    approval_gated = {**step, "gate": {"kind": "approval"}}

    assert problems_of([step, approval_gated]) == [(1, "value"), (2, "value")]
    assert "gate of kind 'input'" in messages_of([step])


def test_choice_template_without_a_choice_gate_is_a_problem():
    step = {"action": "click", "selector": "text={{ choice }}"}
    input_gated = {**step, "gate": {"kind": "input"}}

    assert problems_of([step, input_gated]) == [(1, "selector"), (2, "selector")]
    assert "gate of kind 'choice'" in messages_of([step])


@pytest.mark.parametrize(
    "expr", ["{{vault.x}}", "{{secrets}}", "{{params.}}", "{{outputs.a-b}}", "{{}}", "{{user}}"]
)
def test_an_unknown_template_source_is_a_problem(expr):
    assert problems_of([{"action": "click", "selector": f"#row-{expr}"}]) == [(1, "selector")]


def test_a_parameter_that_was_not_given_is_a_problem():
    step = {"action": "fill", "selector": "#q", "value": "{{params.query}}"}

    assert problems_of([step]) == [(1, "value")]
    assert "no parameter named 'query'" in messages_of([step])
    assert problems_of([step], params={"query": "shoes"}) == []


def test_an_output_is_only_usable_after_the_step_that_extracts_it():
    use = {"action": "assert_text", "text": "{{outputs.receipt_id}}"}
    extract = GOOD_STEP["extract"]

    assert problems_of([use, extract]) == [(1, "text")]
    assert "no earlier extract step is named 'receipt_id'" in messages_of([use, extract])
    assert problems_of([extract, use]) == []


def test_an_extract_name_must_be_a_plain_name():
    assert problems_of([{**GOOD_STEP["extract"], "name": "receipt id"}]) == [(1, "name")]


@pytest.mark.parametrize(
    "step",
    [
        {"action": "click", "selector": "#{{secrets.pw}}"},
        {"action": "goto", "url": "https://shop.example/?p={{secrets.pw}}"},
        {"action": "fill", "selector": "{{secrets.pw}}", "value": "x"},
        {"action": "assert_text", "text": "{{secrets.pw}}"},
        {"action": "press", "selector": "#q", "key": "{{secrets.pw}}"},
        {"action": "select", "selector": "#q", "value": "{{secrets.pw}}"},
    ],
)
def test_a_secret_can_only_be_typed_as_the_value_of_a_fill(step):
    problems = validate_program([step], secret_names=["pw"], resolve_hosts=False)

    assert len(problems) == 1
    assert "secrets can only be typed" in problems[0].message


def test_a_secret_the_vault_does_not_hold_is_a_problem():
    step = {"action": "fill", "selector": "#password", "value": "{{secrets.shop_pasword}}"}

    assert problems_of([step], secret_names=["shop_password"]) == [(1, "value")]
    assert "no secret named 'shop_pasword'" in messages_of([step], secret_names=["shop_password"])
    assert problems_of([step], secret_names=["shop_pasword"]) == []


@pytest.mark.parametrize("steps", [[], None, {"action": "click"}, "goto"])
def test_a_program_must_be_a_non_empty_list(steps):
    assert problems_of(steps) == [(None, "steps")]


def test_a_program_with_several_problems_reports_all_of_them_with_their_step_numbers():
    steps = [
        {"action": "goto", "url": "https://shop.example/"},
        {"action": "fly", "to": "moon"},
        {"action": "fill", "selector": "#otp", "value": "{{input}}", "timeout": -5},
        {"action": "click", "selector": "#pay", "gate": {"kind": "choice"}},
        {"action": "assert_text", "text": "{{outputs.total}}"},
        {"action": "click"},
    ]

    problems = validate_program(steps, secret_names=[], resolve_hosts=False)

    assert [(p.step, p.field) for p in problems] == [
        (2, "action"),
        (3, "timeout"),
        (3, "value"),
        (4, "gate.options"),
        (5, "text"),
        (6, "selector"),
    ]
    assert all(p.message for p in problems)
    assert all(set(p.as_dict()) == {"step", "field", "message"} for p in problems)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/",
        "http://10.0.0.5/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://192.168.1.1/",
    ],
)
def test_goto_a_private_address_is_refused_when_private_urls_are_not_allowed(settings, url):
    settings.TWIN_ALLOW_PRIVATE_URLS = False

    problems = validate_program([{"action": "goto", "url": url}])

    assert [(p.step, p.field) for p in problems] == [(1, "url")]
    assert "private or local address" in problems[0].message


def test_goto_a_private_address_is_allowed_when_private_urls_are_allowed(settings):
    settings.TWIN_ALLOW_PRIVATE_URLS = True

    # Not 8000: Twin's own web port stays refused even with private addresses allowed.
    assert validate_program([{"action": "goto", "url": "http://127.0.0.1:8080/"}]) == []


def test_goto_a_public_address_is_allowed_when_private_urls_are_not_allowed(settings):
    settings.TWIN_ALLOW_PRIVATE_URLS = False

    assert validate_program([{"action": "goto", "url": "https://93.184.216.34/"}]) == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "javascript:alert(1)", "/relative/path", "https://"])
def test_goto_refuses_what_is_not_an_http_url_even_when_private_urls_are_allowed(settings, url):
    settings.TWIN_ALLOW_PRIVATE_URLS = True

    assert problems_of([{"action": "goto", "url": url}]) == [(1, "url")]
