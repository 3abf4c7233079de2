"""The agent's pure parts: the message layout, the redaction, the policy, the goal key, the config."""

from __future__ import annotations

import json

import pytest

from engine import planner
from engine.planner import Redactor, consequential_reason, is_one_time_code, model_config, user_message
from runs.program import validate_program
from skills.services import goal_key, param_key
from tenants.models import Tenant, default_consequential_patterns


def test_the_user_message_is_laid_out_as_the_contract_says():
    text = user_message(
        goal="Pay the open invoice",
        params={"user": "ann"},
        secrets=[("shop_password", "password")],
        actions=['1. goto {"url": "http://a.test/"} -> done'],
        url="http://a.test/pay",
        title="Pay",
        snapshot='- button "Pay $42.00" [ref=e3]',
    )
    lines = text.split("\n")
    assert lines[0] == "Goal: Pay the open invoice"
    assert json.loads(lines[1].removeprefix("Params: ")) == {"user": "ann"}
    assert lines[2] == "Secrets: shop_password (password)"
    assert lines[3:5] == ["Actions so far:", '1. goto {"url": "http://a.test/"} -> done']
    assert lines[5:9] == [
        "URL: http://a.test/pay",
        "Title: Pay",
        "--- snapshot ---",
        '- button "Pay $42.00" [ref=e3]',
    ]
    assert lines[-1] == "--- end snapshot ---"
    empty = user_message(goal="g", params={}, secrets=[], actions=[], url="u", title="t", snapshot="")
    assert "Params: none\nSecrets: none\nActions so far:\nnone\nURL: u" in empty


def test_every_tool_of_the_contract_is_offered_with_its_arguments():
    tools = {t["function"]["name"]: t["function"]["parameters"] for t in planner.TOOLS}
    assert set(tools) == {"goto", "click", "fill", "select", "check", "press", "extract", "ask_human", "done"}
    assert tools["click"]["required"] == ["ref", "intent"] and "consequential" in tools["click"]["properties"]
    assert tools["fill"]["required"] == ["ref", "value", "intent"]
    assert tools["press"]["required"] == ["key", "intent"]  # ref is optional: the focused element
    assert tools["ask_human"]["properties"]["kind"]["enum"] == ["input", "choice"]
    assert tools["done"]["required"] == ["summary"]


def test_a_password_fields_value_and_every_secret_leave_the_snapshot():
    redactor = Redactor()
    redactor.add(["wonderland"], "[secret:shop_password]")
    redactor.add(["123456"], "[redacted]")
    snapshot = "\n".join(
        [
            '- textbox "User" [ref=e4]: alice',
            '- textbox "Password" [active] [ref=e5]: pw',  # a short password: hidden where it is the value
            '- textbox "Notes" [ref=e6]: "my password is wonderland, code 123456"',
            '- paragraph [ref=e7]: "Echo: wonderland"',
        ]
    )
    out = redactor.snapshot(snapshot, field_values=["pw"])
    assert "wonderland" not in out and "123456" not in out and ": pw" not in out
    assert '- textbox "Password" [active] [ref=e5]: [redacted]' in out
    assert "[secret:shop_password]" in out and '- textbox "User" [ref=e4]: alice' in out


def test_a_secret_is_recognized_in_the_forms_a_page_shows_it():
    redactor = Redactor()
    redactor.add(["p&ss w<rd"], "[secret:x]")
    for form in ("p&ss w<rd", "p%26ss%20w%3Crd", "p%26ss+w%3Crd", "p&amp;ss w&lt;rd"):
        assert redactor.text(f"seen: {form}!") == "seen: [secret:x]!"


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"tag": "input", "autocomplete": "one-time-code"}, True),
        ({"tag": "input", "labels": ["Code from your authenticator app"]}, True),
        ({"tag": "input", "name": "otp_code"}, True),
        ({"tag": "input", "placeholder": "6-digit verification code"}, True),
        ({"tag": "input", "id": "mfa-2fa"}, True),
        ({"tag": "input", "labels": ["Postal code"]}, False),  # the codes forms ask for every day
        ({"tag": "input", "placeholder": "Promo code"}, False),
        ({"tag": "input", "labels": ["Security code"]}, False),  # a card's CVC: typed from the vault or asked
        ({"tag": "input", "labels": ["Email"], "name": "email"}, False),
        ({"tag": "input", "type": "password", "labels": ["Password"]}, False),
        ({"tag": "select", "labels": ["Country code"]}, False),
    ],
)
def test_one_time_code_fields(info, expected):
    assert is_one_time_code(info) is expected


@pytest.mark.parametrize(
    ("tool", "name", "also", "flagged", "origin", "expected"),
    [
        ("click", "Pay $42.00", [], False, "", True),
        ("click", "Place order", [], False, "", True),
        ("click", "DELETE account", [], False, "", True),
        ("click", "Payment details", [], False, "", False),  # a word, not a prefix
        ("click", "Next", [], False, "", False),
        ("click", "Next", [], True, "", True),  # the model may add a gate
        ("press", "Card number", ["Pay $42.00"], False, "", True),  # Enter submits the form's Pay
        ("fill", "Confirm email", [], False, "", False),  # typing commits nothing
        ("fill", "Email", [], False, "https://bank.test", True),  # every action on that origin
    ],
)
def test_the_default_policy(tool, name, also, flagged, origin, expected):
    reason = consequential_reason(
        tool=tool,
        name=name,
        also=also,
        origin=origin,
        flagged=flagged,
        patterns=default_consequential_patterns(),
        origins=["https://bank.test"],
    )
    assert bool(reason) is expected, reason


def test_goal_key_lower_cases_collapses_and_drops_trailing_punctuation_only():
    assert goal_key("  Pay the   Invoice!! ") == "pay the invoice"
    assert goal_key("Pay the invoice.") == goal_key("pay THE invoice")
    assert goal_key("Pay $42") != goal_key("Pay $420")
    assert goal_key("Order #7") != goal_key("Order 7")
    assert param_key({"b": 1, "a": 2}) == "a,b" and param_key(None) == ""


def test_internal_steps_are_refused_in_a_submitted_program():
    problems = validate_program([{"action": "done"}, {"action": "plan"}, {"action": "ask"}])
    assert [p.field for p in problems] == ["action", "action", "action"]
    assert validate_program([{"action": "done", "label": "Done"}], internal=True) == []
    asked = validate_program([{"action": "ask"}], internal=True)
    assert [p.field for p in asked] == ["gate"]


def test_model_config_prefers_the_tenants_endpoint(settings, db):
    settings.TWIN_LLM_BASE_URL, settings.TWIN_LLM_MODEL = "", ""
    tenant = Tenant.objects.create(slug="t", name="t")
    assert model_config(tenant) is None
    settings.TWIN_LLM_BASE_URL, settings.TWIN_LLM_MODEL = "http://127.0.0.1:11434/v1/", "llama3.1"
    config = model_config(tenant)
    assert config is not None and (config.base_url, config.model, config.source) == (
        "http://127.0.0.1:11434/v1",
        "llama3.1",
        "server",
    )
    tenant.llm_base_url, tenant.llm_model = "http://127.0.0.1:9/v1", "mine"
    config = model_config(tenant)
    assert config is not None and (config.model, config.source) == ("mine", "tenant")
    assert "api_key" not in repr(config) or "sk-" not in repr(config)


def test_a_tenants_endpoint_passes_the_address_guard(settings, db):
    settings.TWIN_ALLOW_PRIVATE_URLS = False
    tenant = Tenant(slug="t", name="t", llm_base_url="http://169.254.169.254/v1", llm_model="m")
    config = model_config(tenant)
    assert config is not None
    with pytest.raises(planner.ModelUnavailable, match="refused"):
        planner.check_endpoint(config)


def test_tenant_agent_settings_are_checked_where_they_are_edited():
    from django.core.exceptions import ValidationError

    tenant = Tenant(
        slug="t", name="t", agent_consequential_patterns=["(a)\\1"], agent_approval_origins=["nope"]
    )
    with pytest.raises(ValidationError) as caught:
        tenant.clean()
    assert set(caught.value.message_dict) == {"agent_consequential_patterns", "agent_approval_origins"}
    tenant = Tenant(slug="t", name="t", agent_approval_origins=["HTTPS://Bank.test/"])
    tenant.clean()
    assert tenant.agent_approval_origins == ["https://bank.test"]


def test_what_a_run_read_off_the_page_is_a_wildcard_in_the_compiled_bundle():
    from engine.scrub import MASK
    from skills.services import _wildcard

    # A paragraph that *is* the extracted value keeps its words and loses its numbers.
    assert _wildcard("Receipt: R-0001", ["Receipt: R-0001"]) == f"Receipt: R-{MASK}"
    # Inside a longer text, the value goes whole: the rest still tells the element.
    assert _wildcard("Your order Q7-XY is on its way", ["Q7-XY"]) == f"Your order {MASK} is on its way"
    assert _wildcard("Pay now", ["R-0001"]) == "Pay now"


def test_a_secret_without_origins_is_typed_by_a_planned_step_only_where_the_run_started(alice):
    from types import SimpleNamespace

    from engine.planning import Planning, ToolError
    from runs.models import Run

    assert alice.post("/api/secrets", {"name": "pw", "value": "hunter22"}).status_code == 201
    assert (
        alice.post(
            "/api/secrets", {"name": "bank", "value": "s3cret!!", "origins": ["https://bank.test"]}
        ).status_code
        == 201
    )
    planning = Planning()
    planning.run = Run(tenant=alice.tenant, url="https://shop.test/login", program=[])
    planning._tenant = alice.tenant
    planning.page = SimpleNamespace(url="https://shop.test/account")
    planning._check_secret_place("{{secrets.pw}}")  # the start origin: fine
    planning._check_secret_place("{{secrets.bank}}")  # scoped: the executor checks its origins
    planning.page = SimpleNamespace(url="https://evil.test/login")  # a page talked the model into it
    with pytest.raises(ToolError, match=r"typed only on https://shop\.test"):
        planning._check_secret_place("{{secrets.pw}}")
    with pytest.raises(ToolError, match="no secret named"):
        planning._check_secret_place("{{secrets.nope}}")
