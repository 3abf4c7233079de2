"""The test model (tests/agent_model.py): its parsers and decisions on real snapshots of the fixture
site (taken here with Playwright, so a change of the snapshot format fails here first), its answers
through the official ``openai`` client, and whole goals driven by it in a browser."""

# ruff: noqa: F811  (the test_model fixture is imported here, and tests name it as a parameter)

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from openai import BadRequestError, OpenAI
from playwright.sync_api import Browser, Page, sync_playwright

from tests.agent_model import (
    BAD_CALLS,
    BAD_GOTO_URL,
    MODEL_NAME,
    OTP_PLACEHOLDER,
    Call,
    LayoutError,
    Prompt,
    Snapshot,
    TestModel,
    choose,
    decide,
    parse_prompt,
    parse_snapshot,
    test_model,  # noqa: F401  (fixtures)
    test_model_server,  # noqa: F401
)
from tests.site.server import TOTP_SEED, FixtureSite
from vault.totp import totp

PASSWORD = "wonderland"
SECRETS = {"shop_totp": ("totp", "JBSWY3DPEHPK3PXP"), "shop_password": ("password", PASSWORD)}


# -- a browser of our own, in its own thread (Playwright's sync API owns an event loop) -------------------
class _Browser:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-model-browser")
        self._browser: Browser | None = None
        self._pool.submit(self._launch).result(timeout=60)

    def _launch(self) -> None:
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"]
        )

    def run(self, fn: Callable[[Page], Any]) -> Any:
        """``fn(page)`` on a fresh page in a fresh context, in the browser's thread."""

        def job() -> Any:
            assert self._browser is not None
            context = self._browser.new_context()
            try:
                return fn(context.new_page())
            finally:
                context.close()

        return self._pool.submit(job).result(timeout=120)

    def close(self) -> None:
        def stop() -> None:
            if self._browser is not None:
                self._browser.close()
            self._playwright.stop()

        self._pool.submit(stop).result(timeout=30)
        self._pool.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[_Browser]:
    opened = _Browser()
    yield opened
    opened.close()


Page_ = tuple[str, str, str]  # url, title, snapshot


@pytest.fixture(scope="module")
def pages(browser: _Browser, _site_server: FixtureSite) -> dict[str, Page_]:
    """Real snapshots of every page the model handles, in the states it must tell apart."""
    site = _site_server

    def visit(page: Page) -> dict[str, Page_]:
        seen: dict[str, Page_] = {}

        def take(label: str) -> None:
            seen[label] = (page.url, page.title(), page.aria_snapshot(mode="ai"))

        page.goto(site.url("/login"))
        take("login")
        page.fill("#user", "alice")
        take("login_user")
        page.fill("#password", PASSWORD)
        url, title, text = page.url, page.title(), page.aria_snapshot(mode="ai")
        assert PASSWORD in text  # Twin hides it; the model must read the hidden form as filled
        seen["login_both"] = (url, title, text.replace(PASSWORD, "[secret:shop_password]"))
        page.click("#login")
        take("account")
        page.click("#to-otp")
        take("otp")
        page.fill("#otp", "123456")
        url, title, text = page.url, page.title(), page.aria_snapshot(mode="ai")
        seen["otp_filled"] = (url, title, text.replace('"123456"', '"[redacted]"'))
        page.click("#verify")
        take("otp_refused")
        page.goto(site.url("/pay"))
        take("pay")
        page.click("#pay")
        take("paid")
        page.goto(site.url("/agent/accounts"))
        take("accounts")
        page.check("#acct-savings")
        take("accounts_savings")
        page.click("#transfer")
        take("transferred")
        page.goto(site.url("/agent/steps?n=3"))
        take("steps")
        page.goto(site.url("/"))
        take("index")
        page.goto(site.url("/login"))
        page.fill("#user", "alice")
        page.fill("#password", "not-the-password")
        page.click("#login")
        take("login_refused")
        return seen

    return browser.run(visit)


def message(
    page: Page_,
    goal: str,
    *,
    params: dict[str, Any] | None = None,
    secrets: dict[str, tuple[str, str]] | None = None,
    actions: list[tuple[str, Any, str]] | None = None,
) -> str:
    """The planner's user message, laid out as the contract says."""
    url, title, snapshot = page
    listed = ", ".join(f"{name} ({kind})" for name, (kind, _value) in (secrets or {}).items()) or "none"
    lines = [
        f"Goal: {goal}",
        f"Params: {json.dumps(params) if params else 'none'}",
        f"Secrets: {listed}",
        "Actions so far:",
    ]
    lines += [
        f"{n}. {tool} {json.dumps(args)} -> {outcome}"
        for n, (tool, args, outcome) in enumerate(actions or [], 1)
    ]
    if not actions:
        lines.append("none")
    lines += [f"URL: {url}", f"Title: {title}", "--- snapshot ---", snapshot, "--- end snapshot ---"]
    return "\n".join(lines)


def plan(page: Page_, goal: str, **kwargs: Any) -> Call:
    return decide(parse_prompt(message(page, goal, **kwargs)))


def ref_of(page: Page_, role: str, name: str) -> str:
    found = Snapshot(page[2]).find(role, name)
    assert len(found) == 1 and found[0].ref, (role, name, page[2])
    return found[0].ref


PAY_GOAL = "Sign in as alice and pay the open order"


# -- reading snapshots ---------------------------------------------------------------------------------
def test_the_sign_in_pages_snapshot_reads_as_roles_names_refs_and_values(pages):
    snap = Snapshot(pages["login_user"][2])
    user, password = snap.find("textbox", "User")[0], snap.find("textbox", "Password")[0]
    assert (user.value, user.filled, password.value, password.filled) == ("alice", True, None, False)
    assert snap.first("button", "Sign in") is not None
    assert snap.first("heading", "Sign in").attrs == {"level": "1"}  # type: ignore[union-attr]
    assert {user.ref, password.ref} <= snap.refs
    filled = Snapshot(pages["login_both"][2]).find("textbox", "Password")[0]
    assert filled.filled and filled.redacted


def test_quoted_values_links_radios_and_texts_read_as_the_page_shows_them(pages):
    otp = Snapshot(pages["otp_filled"][2]).first("textbox", "Code from your authenticator app")
    assert otp is not None and otp.value == "[redacted]" and otp.redacted
    pay = Snapshot(pages["pay"][2])
    assert [n.value for n in pay.find("paragraph")] == ["Amount: $42.00"]  # quoted in the snapshot
    link = Snapshot(pages["account"][2]).first("link")
    assert link is not None and link.name == "Verify with a one-time code" and link.props == {"url": "/otp"}
    accounts = Snapshot(pages["accounts_savings"][2])
    assert [(r.name, r.checked) for r in accounts.find("radio")] == [
        ("Checking ····1234", False),
        ("Savings ····9876", True),
    ]
    group = accounts.first("group", "From account")
    assert group is not None and accounts.text_of(group) == "Checking ····1234 Savings ····9876"


def test_yaml_quoting_that_the_fixture_pages_do_not_show_is_read_too():
    nodes = parse_snapshot(
        "- 'button \"It''s: here\" [ref=e2]'\n"
        '- textbox "Code" [disabled] [ref=f3e4]: "tab\\there \\x7f and \\"quotes\\""\n'
        "- list:\n"
        "  - listitem: plain: text with colons\n"
        "  - /placeholder: Search\n"
    )
    assert (nodes[0].role, nodes[0].name, nodes[0].ref) == ("button", "It's: here", "e2")
    assert nodes[1].value == 'tab\there \x7f and "quotes"' and nodes[1].flags == {"disabled"}
    assert nodes[2].props == {"placeholder": "Search"} and nodes[3].value == "plain: text with colons"
    assert nodes[3].parent == 2


@pytest.mark.parametrize(
    "text",
    [
        "not a snapshot line",
        "- button [ref=e1] trailing",
        "    - button [ref=e1]",
        "- /url: /x",
        '- button "x',
    ],
)
def test_what_is_not_an_aria_snapshot_is_a_layout_error(text):
    with pytest.raises(LayoutError):
        parse_snapshot(text)


# -- reading the planner's user message ------------------------------------------------------------------
def test_the_user_message_reads_into_goal_params_secrets_actions_and_page(pages):
    actions = [
        ("goto", {"url": "http://127.0.0.1:5000/login"}, "done"),
        ("fill", {"ref": "e7", "value": "{{params.user}}", "intent": "Type -> the user"}, "done"),
        ("ask_human", {"prompt": "Which?", "kind": "choice", "options": ["A", "B"]}, "answered: Savings"),
        ("click", {"ref": "e9", "intent": "Pay"}, "failed: element e9 is gone -> retry"),
        ("extract", {"name": "receipt", "ref": "e12", "intent": "Read"}, "done: receipt = R-0001"),
        ("click", {"ref": "e3", "intent": "Pay"}, "rejected"),
        ("press", {"key": "Enter", "intent": "Send"}, "skipped"),
    ]
    prompt = parse_prompt(
        message(
            pages["login"], "Sign in as alice", params={"user": "alice"}, secrets=SECRETS, actions=actions
        )
    )
    assert (prompt.goal, prompt.params) == ("Sign in as alice", {"user": "alice"})
    assert prompt.secrets == (("shop_totp", "totp"), ("shop_password", "password"))
    assert [(a.tool, a.status, a.detail) for a in prompt.actions] == [
        ("goto", "done", ""),
        ("fill", "done", ""),
        ("ask_human", "answered", "Savings"),
        ("click", "failed", "element e9 is gone -> retry"),
        ("extract", "done", "receipt = R-0001"),
        ("click", "rejected", ""),
        ("press", "skipped", ""),
    ]
    assert prompt.actions[1].args["intent"] == "Type -> the user" and prompt.actions[4].extracted == (
        "receipt",
        "R-0001",
    )
    assert prompt.answered() == ["Savings"]
    assert (prompt.url, prompt.title) == (pages["login"][0], "Sign in")
    assert prompt.snapshot.text == pages["login"][2]


def test_none_everywhere_and_the_inline_none_of_actions_read_as_empty(pages):
    text = message(pages["index"], "Look around").replace("Actions so far:\nnone", "Actions so far: none")
    prompt = parse_prompt(text)
    assert (prompt.params, prompt.secrets, prompt.actions) == (None, (), ())


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda t: t.replace("Goal: ", "Objective: "), "Goal"),
        (lambda t: t.replace("Params: none", "Params: [1]"), "Params"),
        (lambda t: t.replace("Secrets: none", "Secrets: shop_password"), "secret"),
        (lambda t: t.replace("-> done", "-> ok"), "outcome"),
        (lambda t: t.replace("1. goto", "2. goto"), "numbered"),
        (lambda t: t.replace("Title: ", "Heading: "), "Title"),
        (lambda t: t.replace("--- end snapshot ---", ""), "end snapshot"),
    ],
)
def test_a_user_message_off_the_layout_is_refused_with_the_reason(pages, change, why):
    text = message(pages["index"], "x", actions=[("goto", {"url": "http://127.0.0.1/"}, "done")])
    with pytest.raises(LayoutError, match=why):
        parse_prompt(change(text))


# -- decisions on real snapshots ---------------------------------------------------------------------------
def test_sign_in_fills_the_user_then_the_password_from_a_secret_then_signs_in(pages):
    user_ref = ref_of(pages["login"], "textbox", "User")
    with_param = plan(pages["login"], PAY_GOAL, params={"user": "alice"}, secrets=SECRETS)
    assert with_param == Call(
        "fill", {"ref": user_ref, "value": "{{params.user}}", "intent": "Type the user name"}
    )
    assert plan(pages["login"], PAY_GOAL).arguments["value"] == "alice"  # type: ignore[index]

    password = plan(pages["login_user"], PAY_GOAL, secrets=SECRETS)  # the first password-kind secret
    assert password == Call(
        "fill",
        {
            "ref": ref_of(pages["login_user"], "textbox", "Password"),
            "value": "{{secrets.shop_password}}",
            "intent": "Type the password",
        },
    )
    sign_in = plan(pages["login_both"], PAY_GOAL, secrets=SECRETS)
    assert sign_in == Call(
        "click", {"ref": ref_of(pages["login_both"], "button", "Sign in"), "intent": "Sign in"}
    )


def test_without_a_password_secret_it_asks_a_human(pages):
    call = plan(pages["login_user"], PAY_GOAL, secrets={"shop_totp": ("totp", "x")})
    assert call.name == "ask_human" and call.arguments["kind"] == "input"  # type: ignore[index]
    assert "password" in call.arguments["prompt"]  # type: ignore[index]


def test_a_refused_sign_in_is_brought_to_a_human_not_retried_blindly(pages):
    tried = [("click", {"ref": "e8", "intent": "Sign in"}, "done")]
    call = plan(pages["login_refused"], PAY_GOAL, secrets=SECRETS, actions=tried)
    assert call.name == "ask_human" and "Wrong user or password" in call.arguments["prompt"]  # type: ignore[index]
    answered = [*tried, ("ask_human", {"prompt": "?", "kind": "input"}, "answered: try again")]
    again = plan(pages["login_refused"], PAY_GOAL, secrets=SECRETS, actions=answered)
    assert again.name == "fill" and again.arguments["value"] == "{{secrets.shop_password}}"  # type: ignore[index]


def test_the_account_page_leads_to_the_one_time_code_only_when_the_goal_is_to_pay(pages):
    link = ref_of(pages["account"], "link", "Verify with a one-time code")
    assert plan(pages["account"], PAY_GOAL) == Call(
        "click", {"ref": link, "intent": "Verify with a one-time code"}
    )
    assert plan(pages["account"], "Sign in as alice").name == "done"


def test_the_one_time_code_is_a_placeholder_then_verify(pages):
    code = ref_of(pages["otp"], "textbox", "Code from your authenticator app")
    assert plan(pages["otp"], PAY_GOAL) == Call(
        "fill", {"ref": code, "value": OTP_PLACEHOLDER, "intent": "Type the one-time code"}
    )
    verify = ref_of(pages["otp_filled"], "button", "Verify")
    assert plan(pages["otp_filled"], PAY_GOAL) == Call("click", {"ref": verify, "intent": "Verify"})
    three = [("click", {"ref": "e6", "intent": "Verify"}, "done")] * 3
    assert plan(pages["otp_refused"], PAY_GOAL, actions=three).name == "ask_human"
    assert plan(pages["otp_refused"], PAY_GOAL, actions=three[:1]).name == "fill"


def test_the_pay_button_is_clicked_without_calling_it_consequential_unless_the_mode_says_so(pages):
    pay = ref_of(pages["pay"], "button", "Pay $42.00")
    assert plan(pages["pay"], PAY_GOAL) == Call("click", {"ref": pay, "intent": "Pay $42.00"})
    prompt = parse_prompt(message(pages["pay"], PAY_GOAL))
    assert choose(prompt, "consequential") == Call(
        "click", {"ref": pay, "intent": "Pay $42.00", "consequential": True}
    )
    assert choose(prompt, "leak") == choose(prompt, "default")


def test_payment_complete_extracts_the_receipt_then_is_done_with_it(pages):
    holder = Snapshot(pages["paid"][2]).containing(re.compile("^Receipt"))
    assert holder is not None
    call = plan(pages["paid"], PAY_GOAL)
    assert call == Call(
        "extract", {"name": "receipt", "ref": holder.ref, "intent": "Read the receipt number"}
    )
    extracted = [("extract", call.arguments, "done: receipt = Receipt: R-0001")]  # the element's text
    done = plan(pages["paid"], PAY_GOAL, actions=extracted)
    assert done.name == "done" and done.arguments["outputs"] == {"receipt": "R-0001"}  # type: ignore[index]
    rejected = [("click", {"ref": "e5", "intent": "Pay $42.00"}, "rejected")]
    assert plan(pages["pay"], PAY_GOAL, actions=rejected).name == "done"


def test_an_unnamed_account_is_asked_for_with_the_pages_choices_then_chosen_then_transferred(pages):
    goal = "Transfer $100.00 to the landlord"
    asked = plan(pages["accounts"], goal)
    assert asked.name == "ask_human"
    assert asked.arguments["kind"] == "choice"  # type: ignore[index]
    assert asked.arguments["options"] == ["Checking ····1234", "Savings ····9876"]  # type: ignore[index]
    answered = [("ask_human", asked.arguments, "answered: Savings ····9876")]
    savings = ref_of(pages["accounts"], "radio", "Savings ····9876")
    assert plan(pages["accounts"], goal, actions=answered) == Call(
        "click", {"ref": savings, "intent": "Choose Savings ····9876"}
    )
    transfer = ref_of(pages["accounts_savings"], "button", "Transfer $100.00")
    assert plan(pages["accounts_savings"], goal, actions=answered) == Call(
        "click", {"ref": transfer, "intent": "Transfer $100.00"}
    )
    done = plan(pages["transferred"], goal)
    assert done.name == "done" and done.arguments["outputs"] == {"reference": "T-0001"}  # type: ignore[index]


def test_an_account_named_in_the_goal_is_chosen_without_asking(pages):
    checking = ref_of(pages["accounts"], "radio", "Checking ····1234")
    assert plan(pages["accounts"], "Transfer $100.00 from checking").arguments["ref"] == checking  # type: ignore[index]


def test_keep_going_clicks_next_and_an_unknown_page_is_asked_about(pages):
    assert plan(pages["steps"], "keep going") == Call(
        "click", {"ref": ref_of(pages["steps"], "link", "Next"), "intent": "Next"}
    )
    lost = plan(pages["index"], PAY_GOAL)
    assert lost.name == "ask_human" and lost.arguments["kind"] == "input"  # type: ignore[index]
    assert "cannot place" in lost.arguments["prompt"]  # type: ignore[index]


def test_three_failures_in_a_row_are_brought_to_a_human(pages):
    failed = [("click", {"ref": "e8", "intent": "Sign in"}, "failed: timeout")] * 3
    assert plan(pages["login_both"], PAY_GOAL, secrets=SECRETS, actions=failed).name == "ask_human"
    assert plan(pages["login_both"], PAY_GOAL, secrets=SECRETS, actions=failed[:2]).name == "click"


def test_the_bad_mode_cycles_through_invalid_calls(pages):
    prompt: Prompt = parse_prompt(message(pages["pay"], PAY_GOAL))
    calls = [choose(prompt, "bad", bad_index=i) for i in range(len(BAD_CALLS) + 1)]
    assert calls[0].name not in {
        "goto",
        "click",
        "fill",
        "select",
        "check",
        "press",
        "extract",
        "ask_human",
        "done",
    }
    assert calls[1].name == "click" and calls[1].arguments["ref"] not in prompt.snapshot.refs  # type: ignore[index]
    assert calls[2] == Call("goto", {"url": BAD_GOTO_URL})
    assert calls[3].name == "fill" and "ref" not in calls[3].arguments
    with pytest.raises(ValueError):
        json.loads(calls[4].arguments_json)
    assert calls[len(BAD_CALLS)] == calls[0]
    assert choose(prompt, "bad_once", bad_once_due=True) == calls[1]
    assert choose(prompt, "bad_once", bad_once_due=False) == decide(prompt)


# -- the server, through the official client --------------------------------------------------------------
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": name, "description": name, "parameters": {"type": "object"}}}
    for name in ("goto", "click", "fill", "select", "check", "press", "extract", "ask_human", "done")
]


def complete(model: TestModel, messages: list[Any], **extra: Any) -> Any:
    """``chat.completions.create`` with the official client, as the agent calls it."""
    client = OpenAI(base_url=model.base_url, api_key="test-key", max_retries=0)
    options: dict[str, Any] = {"tools": TOOLS, "tool_choice": "required", **extra}
    return client.chat.completions.create(model=MODEL_NAME, messages=messages, **options)


def ask(model: TestModel, user: Any, **extra: Any) -> Any:
    return complete(
        model,
        [{"role": "system", "content": "You drive a browser."}, {"role": "user", "content": user}],
        **extra,
    )


def test_the_openai_client_gets_a_computed_tool_call_with_usage(test_model, pages):
    user = message(pages["pay"], PAY_GOAL)
    answer = ask(test_model, user)
    choice = answer.choices[0]
    assert (
        choice.finish_reason == "tool_calls"
        and choice.message.role == "assistant"
        and choice.message.content is None
    )
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id and answer.id and answer.model == MODEL_NAME
    pay = ref_of(pages["pay"], "button", "Pay $42.00")
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "click",
        {"ref": pay, "intent": "Pay $42.00"},
    )
    characters = len(user) + len("You drive a browser.")
    assert answer.usage.prompt_tokens == pytest.approx(characters / 4, abs=1)
    assert answer.usage.completion_tokens == pytest.approx(len(call.function.arguments) / 4, abs=1)
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert test_model.calls == 1 and test_model.requests[0]["messages"][1]["content"] == user
    assert test_model.replies == [Call("click", {"ref": pay, "intent": "Pay $42.00"})]


def test_the_vision_layout_is_read_from_its_text_part(test_model, pages):
    parts = [
        {"type": "text", "text": message(pages["otp"], PAY_GOAL)},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    call = ask(test_model, parts).choices[0].message.tool_calls[0]
    assert call.function.name == "fill" and json.loads(call.function.arguments)["value"] == OTP_PLACEHOLDER


def test_malformed_requests_are_openai_style_400s_and_are_still_recorded(test_model, pages):
    with pytest.raises(BadRequestError) as refused:
        ask(test_model, "Goal: no layout here")
    assert refused.value.status_code == 400 and "Params" in refused.value.message
    with pytest.raises(BadRequestError, match="stream"):
        ask(test_model, message(pages["pay"], PAY_GOAL), stream=True)
    raw = httpx.post(
        f"{test_model.base_url}/chat/completions", content=b"{not json", headers={"Authorization": "Bearer k"}
    )
    assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error"
    no_tools = httpx.post(
        f"{test_model.base_url}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": "Bearer k"},
    )
    assert no_tools.status_code == 400 and no_tools.json()["error"]["param"] == "tools"
    assert len(test_model.requests) == 4 and test_model.requests[2] == {"_unparsed": "{not json"}
    assert test_model.calls == 0


def test_a_request_without_a_key_is_a_401(test_model, pages):
    body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": message(pages["pay"], PAY_GOAL)}]}
    body |= {"tools": TOOLS, "tool_choice": "required"}
    refused = httpx.post(f"{test_model.base_url}/chat/completions", json=body)
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "invalid_request_error"
    accepted = httpx.post(
        f"{test_model.base_url}/chat/completions", json=body, headers={"Authorization": "Bearer k"}
    )
    assert accepted.status_code == 200 and test_model.calls == 1


def test_a_tool_the_request_does_not_offer_is_not_chosen(test_model, pages):
    offered = [t for t in TOOLS if t["function"]["name"] != "click"]
    with pytest.raises(BadRequestError, match="click"):
        complete(test_model, [{"role": "user", "content": message(pages["pay"], PAY_GOAL)}], tools=offered)


def test_bad_once_answers_one_invalid_call_then_behaves_after_the_tool_error(test_model, pages):
    test_model.mode = "bad_once"
    user = message(pages["pay"], PAY_GOAL)
    first = ask(test_model, user).choices[0].message.tool_calls[0]
    assert json.loads(first.function.arguments)["ref"] not in Snapshot(pages["pay"][2]).refs
    retry = complete(
        test_model,
        [
            {"role": "system", "content": "s"},
            {"role": "user", "content": user},
            {"role": "assistant", "content": None, "tool_calls": [first.model_dump()]},
            {"role": "tool", "tool_call_id": first.id, "content": "Error: no element with ref"},
        ],
    )
    second = retry.choices[0].message.tool_calls[0]
    assert json.loads(second.function.arguments)["ref"] == ref_of(pages["pay"], "button", "Pay $42.00")
    assert retry.usage.prompt_tokens > len(user) / 4 + 10  # the whole conversation counts


def test_reset_and_the_fixture_put_the_mode_and_latency_back(test_model):
    assert (test_model.mode, test_model.latency, test_model.requests, test_model.calls) == (
        "default",
        0.0,
        [],
        0,
    )
    test_model.mode, test_model.latency = "bad", 0.3
    with pytest.raises(ValueError):
        test_model.mode = "chatty"
    test_model.reset()
    assert (test_model.mode, test_model.latency) == ("default", 0.0)


def test_latency_is_slept_per_call_and_calls_overlap(test_model, pages):
    test_model.latency = 1.0
    user = message(pages["pay"], PAY_GOAL)
    started = time.monotonic()
    threads = [threading.Thread(target=ask, args=(test_model, user)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 2.5, elapsed  # one after the other would take 3 s
    assert test_model.calls == 3


def test_leaked_finds_a_value_anywhere_in_any_request(test_model, pages):
    ask(test_model, message(pages["pay"], PAY_GOAL))
    assert test_model.leaked(PASSWORD, "Pay $42.00") == ["Pay $42.00"]
    ask(test_model, message(pages["pay"], f"Pay with password {PASSWORD}"))
    assert test_model.leaked(PASSWORD) == [PASSWORD]


# -- whole goals: the model's calls carried out in a browser, as the agent will ------------------------------
def drive(
    browser: _Browser,
    model: TestModel,
    start: str,
    goal: str,
    *,
    params: dict[str, Any] | None = None,
    secrets: dict[str, tuple[str, str]] | None = None,
    answers: list[str] | None = None,
    max_steps: int = 15,
) -> tuple[list[Call], dict[str, Any] | None]:
    """Plan with the model one action at a time and act on the returned refs; the calls made and the
    ``done`` arguments (None if ``max_steps`` ran out). Like Twin, it types secrets and the one-time
    code itself and shows them to the model only as ``[secret:NAME]`` / ``[redacted]``."""
    hidden = {value: f"[secret:{name}]" for name, (_kind, value) in (secrets or {}).items()}
    pending = list(answers or [])

    def run(page: Page) -> tuple[list[Call], dict[str, Any] | None]:
        page.goto(start)
        history: list[tuple[str, dict[str, Any], str]] = []
        calls: list[Call] = []
        for _ in range(max_steps):
            url, title, snapshot = page.url, page.title(), page.aria_snapshot(mode="ai")
            for value, shown in hidden.items():
                snapshot = snapshot.replace(value, shown)
            user = message((url, title, snapshot), goal, params=params, secrets=secrets, actions=history)
            answer = complete(model, [{"role": "system", "content": "s"}, {"role": "user", "content": user}])
            tool = answer.choices[0].message.tool_calls[0].function
            args = json.loads(tool.arguments)
            calls.append(Call(tool.name, args))
            if tool.name == "done":
                return calls, args
            outcome = "done"
            if tool.name == "ask_human":
                outcome = f"answered: {pending.pop(0)}"
            elif tool.name == "fill":
                value = args["value"]
                if value.startswith("{{params."):
                    value = (params or {})[value[9:-2]]
                elif value.startswith("{{secrets."):
                    value = (secrets or {})[value[10:-2]][1]
                elif value == OTP_PLACEHOLDER:  # Twin pauses here; the vault or a human types the code
                    value = totp(TOTP_SEED)
                    hidden[value] = "[redacted]"
                page.locator(f"aria-ref={args['ref']}").fill(value)
            elif tool.name == "click":
                page.locator(f"aria-ref={args['ref']}").click()
                page.wait_for_load_state()
            elif tool.name == "extract":
                text = page.locator(f"aria-ref={args['ref']}").inner_text()
                outcome = f"done: {args['name']} = {text}"
            else:
                raise AssertionError(f"unexpected call {tool.name} {args}")
            history.append((tool.name, args, outcome))
        return calls, None

    return browser.run(run)


def test_a_sign_in_two_step_and_payment_goal_runs_to_its_receipt(test_model, browser, site):
    calls, done = drive(
        browser, test_model, site.url("/login"), PAY_GOAL, params={"user": "alice"}, secrets=SECRETS
    )
    assert [c.name for c in calls] == [
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
    assert done is not None and done["outputs"] == {"receipt": "R-0001"}
    assert [e["kind"] for e in site.events] == ["login", "otp_ok", "payment"]
    assert site.events[2]["user"] == "alice"
    assert test_model.leaked(PASSWORD) == []
    assert test_model.calls == len(calls)


def test_a_transfer_goal_asks_which_account_and_transfers_from_the_answer(test_model, browser, site):
    calls, done = drive(
        browser,
        test_model,
        site.url("/agent/accounts"),
        "Transfer $100.00 to the landlord",
        answers=["Savings"],
    )
    assert [c.name for c in calls] == ["ask_human", "click", "click", "done"]
    assert calls[0].arguments["options"] == ["Checking ····1234", "Savings ····9876"]  # type: ignore[index]
    assert [(e["kind"], e["account"]) for e in site.events] == [("transfer", "savings")]
    assert done is not None and done["outputs"] == {"reference": site.events[0]["reference"]}


def test_keep_going_walks_the_steps_until_the_limit(test_model, browser, site):
    calls, done = drive(browser, test_model, site.url("/agent/steps?n=1"), "keep going", max_steps=4)
    assert done is None and [c.name for c in calls] == ["click"] * 4
    prompts = test_model.prompts()
    assert [p.title for p in prompts] == ["Step 1", "Step 2", "Step 3", "Step 4"]
