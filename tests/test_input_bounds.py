"""Bounded input everywhere: size, depth, types, characters and lengths, refused as JSON, nothing stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from runs.models import Run
from tests.test_bad_programs import GOOD_STEPS, assert_json_error
from twin_site.limits import MAX_JSON_DEPTH
from vault.models import SecretVersion
from webhooks.models import Endpoint

pytestmark = pytest.mark.usefixtures("private_urls")


def post_raw(persona: Any, path: str, raw: str | bytes) -> Any:
    return persona.client.post(path, data=raw, content_type="application/json")


def nested(levels: int) -> Any:
    value: Any = "deep"
    for _ in range(levels):
        value = {"x": value}
    return value


# -- the body: size and depth -------------------------------------------------------------------------
def test_a_20_mb_body_is_a_json_413_and_nothing_is_stored(alice):
    body = json.dumps({"goal": "g", "steps": GOOD_STEPS, "params": {"blob": "x" * 20_000_000}})

    refused = post_raw(alice, "/api/runs", body)

    error = assert_json_error(refused, 413, "payload_too_large")
    assert "1,000,000 bytes" in error["detail"]
    assert Run.objects.count() == 0


@pytest.mark.parametrize(
    "path", ["/api/secrets", "/api/webhooks", "/api/runs/00000000-0000-0000-0000-000000000000/approve"]
)
def test_every_endpoint_answers_an_oversized_body_with_the_same_json_413(alice, path):
    assert_json_error(post_raw(alice, path, b" " * 1_000_001), 413, "payload_too_large")


def test_a_body_just_under_the_limit_is_read(alice):
    body = json.dumps({"goal": "g", "steps": GOOD_STEPS, "pad": "x" * 900_000})

    # Read and judged on its content (an unknown field is ignored; the program is valid).
    assert post_raw(alice, "/api/runs", body).status_code == 201


def test_params_nested_1000_levels_deep_are_a_json_400_not_a_500(alice):
    deep = "[" * 1000 + "]" * 1000
    body = f'{{"goal": "g", "steps": {json.dumps(GOOD_STEPS)}, "params": {{"a": {deep}}}}}'

    error = assert_json_error(post_raw(alice, "/api/runs", body), 400)

    assert f"deeper than {MAX_JSON_DEPTH} levels" in error["detail"]
    assert Run.objects.count() == 0


def test_json_nested_just_past_the_limit_is_refused_anywhere_in_the_body(alice):
    body = json.dumps({"goal": "g", "steps": GOOD_STEPS, "params": {"a": nested(MAX_JSON_DEPTH)}})

    assert_json_error(post_raw(alice, "/api/runs", body), 400)
    assert Run.objects.count() == 0


# -- types ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["goal", "url"])
@pytest.mark.parametrize("value", [123, 1.5, True, ["x"], {"x": 1}])
def test_goal_and_url_must_be_strings(alice, field, value):
    body = {"goal": "g", "steps": GOOD_STEPS, field: value}

    error = assert_json_error(alice.post("/api/runs", body), 400)

    assert field in error["detail"]
    assert Run.objects.count() == 0


@pytest.mark.parametrize("value", [None, ["a"], {"a": "b"}])
def test_a_param_value_must_be_a_string_a_number_or_a_boolean(alice, value):
    body = {"goal": "g", "steps": GOOD_STEPS, "params": {"amount": value}}

    error = assert_json_error(alice.post("/api/runs", body), 400, "invalid_program")

    assert error["problems"] == [
        {"step": None, "field": "params.amount", "message": "must be a string, a number or true/false"}
    ]


def test_params_that_are_strings_numbers_and_booleans_are_kept(alice):
    body = {"goal": "g", "steps": GOOD_STEPS, "params": {"q": "shoes", "amount": 42, "gift": True}}

    created = alice.post("/api/runs", body)

    assert created.status_code == 201, created.content
    assert created.json()["params"] == {"q": "shoes", "amount": 42, "gift": True}


# -- NUL and control characters -------------------------------------------------------------------------
def test_nul_in_a_selector_is_refused_naming_where_it_is(alice):
    steps = [GOOD_STEPS[0], {"action": "click", "selector": "#pay\x00, #other"}]

    error = assert_json_error(alice.post("/api/runs", {"goal": "g", "steps": steps}), 400)

    assert "steps[1].selector" in error["detail"]
    assert Run.objects.count() == 0


def test_nul_in_a_param_key_is_refused(alice):
    body = {"goal": "g", "steps": GOOD_STEPS, "params": {"am\x00ount": "42"}}

    error = assert_json_error(alice.post("/api/runs", body), 400)

    assert "params" in error["detail"]
    assert Run.objects.count() == 0


@pytest.mark.parametrize("name", ["shop\x00password", "shop\npassword", "shop password", "x" * 101])
def test_a_secret_name_that_no_template_can_name_is_refused(alice, name):
    refused = alice.post("/api/secrets", {"name": name, "value": "hunter2"})

    assert_json_error(refused, 400)
    assert SecretVersion.objects.count() == 0


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ({"action": "click", "selector": "#pay\x1b[2J"}, "selector"),
        ({"action": "click", "selector": "#pay", "label": "Pay \u202e24$"}, "label"),
        ({"action": "press", "selector": "#q", "key": "Enter\n"}, "key"),
        ({"action": "goto", "url": "http://127.0.0.1:9/\rx"}, "url"),
        ({"action": "extract", "selector": "#r", "name": "receipt", "attribute": "data-\x7fid"}, "attribute"),
        (
            {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay \x07?"}},
            "gate.prompt",
        ),
        (
            {
                "action": "click",
                "selector": "text={{choice}}",
                "gate": {"kind": "choice", "options": ["A", "B\x1b"]},
            },
            "gate.options",
        ),
    ],
)
def test_control_characters_are_refused_in_what_a_browser_parses_or_a_person_reads(alice, step, field):
    error = assert_json_error(alice.post("/api/runs", {"goal": "g", "steps": [step]}), 400, "invalid_program")

    assert [(p["step"], p["field"]) for p in error["problems"]] == [(1, field)]
    assert "control characters" in error["problems"][0]["message"]
    assert Run.objects.count() == 0


def test_line_breaks_stay_allowed_where_text_has_lines(alice):
    steps = [
        GOOD_STEPS[0],
        {"action": "fill", "selector": "#note", "value": "line one\nline two"},
        {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay $42?\nTo: ACME"}},
        {"action": "assert_text", "text": "Thank you\tagain"},
    ]

    assert alice.post("/api/runs", {"goal": "pay\nthen check", "steps": steps}).status_code == 201


# -- lengths ----------------------------------------------------------------------------------------------
def test_a_1_mb_selector_is_refused_at_submission_not_carried_into_every_pause(alice):
    steps = [GOOD_STEPS[0], {"action": "click", "selector": "#" + "a" * 999_000}]

    error = assert_json_error(alice.post("/api/runs", {"goal": "g", "steps": steps}), 400, "invalid_program")

    assert error["problems"] == [
        {"step": 2, "field": "selector", "message": "must be at most 2,000 characters (got 999,001)"}
    ]
    assert len(json.dumps(error)) < 2_000
    assert Run.objects.count() == 0


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ({"action": "click", "selector": "#" + "a" * 2_000}, "selector"),
        ({"action": "click", "selector": "#pay", "label": "L" * 201}, "label"),
        ({"action": "fill", "selector": "#q", "value": "v" * 10_001}, "value"),
        ({"action": "press", "selector": "#q", "key": "K" * 101}, "key"),
        ({"action": "assert_text", "text": "t" * 2_001}, "text"),
        ({"action": "extract", "selector": "#r", "name": "n" * 101}, "name"),
        ({"action": "goto", "url": "http://127.0.0.1:9/" + "p" * 2_048}, "url"),
        (
            {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "P" * 1_001}},
            "gate.prompt",
        ),
        (
            {
                "action": "click",
                "selector": "text={{choice}}",
                "gate": {"kind": "choice", "options": ["O" * 201]},
            },
            "gate.options",
        ),
        (
            {
                "action": "click",
                "selector": "text={{choice}}",
                "gate": {"kind": "choice", "options": [f"option {i}" for i in range(51)]},
            },
            "gate.options",
        ),
    ],
)
def test_every_step_field_has_a_length_limit(alice, step, field):
    error = assert_json_error(alice.post("/api/runs", {"goal": "g", "steps": [step]}), 400, "invalid_program")

    assert [(p["step"], p["field"]) for p in error["problems"]] == [(1, field)]
    assert Run.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"goal": "g" * 2_001}, "goal"),
        ({"params": {f"p{i}": "v" for i in range(101)}}, "params"),
        ({"params": {"p": "v" * 10_001}}, "params"),
        ({"params": {"p" * 101: "v"}}, "params"),
        ({"params": {"not-a-name": "v"}}, "params"),
    ],
)
def test_a_runs_own_fields_have_limits(alice, body, field):
    error = assert_json_error(alice.post("/api/runs", {"goal": "g", "steps": GOOD_STEPS, **body}), 400)

    assert field in error["detail"] or any(p["field"].startswith(field) for p in error.get("problems", []))
    assert Run.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        {"url": "https://hooks.example/" + "p" * 2_048},
        {"url": 123},
        {"url": "https://hooks.example/\x1b"},
        {"url": "https://hooks.example/x", "description": "d" * 201},
        {"url": "https://hooks.example/x", "description": "line\nbreak"},
    ],
)
def test_webhook_fields_are_bounded(alice, body):
    assert_json_error(alice.post("/api/webhooks", body), 400)
    assert Endpoint.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        {"name": "ok", "value": "v" * 10_001},
        {"name": "ok", "value": 123456},
        {"name": "ok", "value": "v", "origins": [f"https://o{i}.example" for i in range(21)]},
        {"name": "ok", "value": "v", "origins": ["https://o.example\x1b"]},
    ],
)
def test_secret_fields_are_bounded(alice, body):
    assert_json_error(alice.post("/api/secrets", body), 400)
    assert SecretVersion.objects.count() == 0


def test_the_schema_documents_the_limits(alice):
    schema = alice.get("/api/schema?format=json").json()
    create = schema["components"]["schemas"]["RunCreate"]["properties"]

    assert create["goal"]["maxLength"] == 2_000
    assert create["url"]["maxLength"] == 2_048
    assert create["steps"]["maxItems"] == 500
    step = create["steps"]["items"]["properties"]
    assert step["selector"]["maxLength"] == 2_000
    assert step["label"]["maxLength"] == 200
    assert step["gate"]["properties"]["prompt"]["maxLength"] == 1_000
    assert step["gate"]["properties"]["pattern"]["maxLength"] == 500
    assert step["gate"]["properties"]["options"]["maxItems"] == 50
    assert create["params"]["maxProperties"] == 100
    assert "413" in schema["paths"]["/api/runs"]["post"]["responses"]


# -- the dashboard's start form: the same bounds, said on the form ------------------------------------------
@pytest.fixture
def signed_in(alice: Any) -> Client:
    client = Client()
    client.force_login(alice.user)
    return client


@pytest.mark.parametrize(
    ("program", "said"),
    [
        ([GOOD_STEPS[0], {"action": "click", "selector": "#" + "a" * 999_000}], "at most 2,000 characters"),
        ([GOOD_STEPS[0], {"action": "click", "selector": "#pay\x00"}], "NUL"),
        ({"goal": 123, "steps": GOOD_STEPS}, "must be a string"),
        ([nested(MAX_JSON_DEPTH)], f"nested deeper than {MAX_JSON_DEPTH} levels"),
    ],
)
def test_the_start_form_refuses_the_same_with_a_readable_error(signed_in, program, said):
    page = signed_in.post("/runs/new", {"goal": "", "url": "", "program": json.dumps(program)})

    assert page.status_code == 400
    html = page.content.decode()
    assert said in html
    assert Run.objects.count() == 0


@pytest.mark.parametrize("note", ["fine\x00", "n" * 10_001, "ok \x1b[31mred"])
@pytest.mark.parametrize("action", ["approve", "reject"])
def test_a_dashboard_decision_with_a_note_past_the_bounds_is_refused_and_the_pause_stays(
    alice, signed_in, note, action
):
    from approvals.models import Approval, ApprovalStatus
    from tests.test_state_machine import paused_run

    run, approval = paused_run(alice.tenant, alice.user)
    alice.tenant.four_eyes = False
    alice.tenant.save(update_fields=["four_eyes"])

    page = signed_in.post(
        f"/inbox/{approval.pk}/decide", {"action": action, "note": note}, HTTP_HX_REQUEST="true"
    )

    assert "the note" in page.content.decode()
    assert Approval.objects.get(pk=approval.pk).status == ApprovalStatus.PENDING
    run.refresh_from_db()
    assert run.status == "awaiting_approval"


def test_a_body_sent_without_a_length_is_cut_at_the_limit_too():
    """Chunked bodies declare no Content-Length: the parser counts what it reads."""
    import io

    from twin_site.limits import BoundedJSONParser, PayloadTooLarge

    stream = io.BytesIO(b'{"goal": "' + b"x" * 2_000_000 + b'"}')

    with pytest.raises(PayloadTooLarge):
        BoundedJSONParser().parse(stream, "application/json", {})
    assert stream.tell() == 1_000_001  # read one byte past the limit, not the whole body
