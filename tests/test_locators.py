"""Locator bundles in a real page: what is recorded of an element, and what a replay accepts.

Each test runs its page code in the tests' browser thread, in a fresh context of the host browser.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from engine import bridge, locators
from engine.browser import session
from engine.scrub import MASK
from runs.models import Step
from tests.conftest import in_browser_thread, start_run, wait_run

TWO_CARDS = """
<section><h2>Basic</h2><p>$5</p><button id="b1">Choose</button></section>
<section><h2>Pro</h2><p>$15</p><button id="b2">Choose</button></section>
"""


@pytest.fixture
def on_page(worker: Any) -> Iterator[Callable[[str, Callable[[Any], Any]], Any]]:
    """``on_page(html, fn)``: ``fn(page)`` on a page showing ``html``, in the browser thread."""
    contexts: list[str] = []

    def run(html: str, fn: Callable[[Any], Any]) -> Any:
        def inner() -> Any:
            page, context_id, _ = session().new_page()
            contexts.append(context_id)
            page.set_content(html)
            return fn(page)

        return in_browser_thread(inner)

    yield run

    def close() -> None:
        for context_id in contexts:
            session().close_context(context_id)

    in_browser_thread(close)


def record(page: Any, selector: str) -> dict[str, Any]:
    bundle = locators.describe_element(page.locator(selector), timeout_ms=2000)
    assert bundle is not None
    return bundle


def test_the_bundle_describes_the_element_and_what_was_unique(on_page):
    html = """
    <form>
      <label for="email">Email</label>
      <input id="email" name="email" type="email" placeholder="you@example.com" data-testid="email-field">
      <select id="plan" name="plan"><option value="a">A</option><option value="b">B</option></select>
      <button type="submit" id="ember1234">Send</button>
    </form>"""

    def check(page: Any) -> None:
        page.fill("#email", "typed@example.com")
        field = record(page, "#email")
        assert field["fingerprint"] == {"tag": "input", "role": "textbox", "name": "Email"}
        assert (field["label"], field["placeholder"], field["testid"]) == (
            "Email",
            "you@example.com",
            "email-field",
        )
        assert field["attributes"] == {"id": "email", "name": "email", "type": "email"}
        assert field["unique"] == ["testid", "id", "role", "label", "placeholder", "name", "css", "xpath"]
        assert "typed@example.com" not in str(field)  # what was typed is never read
        assert record(page, "#plan")["options"] == ["a", "b"]
        button = record(page, "button")
        assert "id" not in button["attributes"]  # a generated id is not a locator
        assert button["unique"][0] == "role"
        assert locators.playwright_selector(button) == 'internal:role=button[name="Send"s]'
        assert page.locator(locators.playwright_selector(button)).count() == 1

    on_page(html, check)


def test_look_alikes_are_told_apart_by_their_own_text_and_never_by_place(on_page):
    def check(page: Any) -> None:
        pro = record(page, "#b2")
        assert (pro["lookalikes"], pro["nth"], pro["context"]) == (2, 1, "Pro")
        assert pro["unique"] == ["id", "context"]  # role, text, css and xpath match or pick by place
        # The id gone, the card's own text still finds it: a heal.
        page.evaluate("document.getElementById('b2').id = 'renamed'")
        found = locators.find(page, pro, timeout_ms=2000)
        assert (found.by, found.primary, found.healed) == ("context", "id", True)
        assert found.handle.evaluate("e => e.closest('section').querySelector('h2').textContent") == "Pro"
        # Both cards now say the same: nothing tells the buttons apart, so a person must.
        page.evaluate("document.querySelectorAll('h2').forEach(h => h.textContent = 'Plan')")
        page.evaluate("document.querySelectorAll('p').forEach(p => p.textContent = '$9')")
        with pytest.raises(locators.Ambiguous) as asked:
            locators.find(page, pro, timeout_ms=2000)
        assert len(asked.value.candidates) == 2
        chosen = locators.find(page, pro, timeout_ms=2000, pick=1)
        assert chosen.by == "human"
        assert chosen.handle.evaluate("e => e.id") == "renamed"

    on_page(TWO_CARDS, check)


def test_the_fingerprint_must_agree(on_page):
    def check(page: Any) -> None:
        pay = record(page, "#pay")
        assert pay["unique"][0] == "id"
        page.evaluate("document.getElementById('pay').textContent = 'Delete account'")
        with pytest.raises(locators.NotFound, match="named 'Pay'"):
            locators.find(page, pay, timeout_ms=300)

    on_page('<button id="pay">Pay</button>', check)


class CountedPage:
    """The page as ``locators.find`` sees it, counting the looks it asks for itself."""

    def __init__(self, page: Any) -> None:
        self.page, self.looks = page, 0

    def evaluate_handle(self, *args: Any) -> Any:
        self.looks += 1
        return self.page.evaluate_handle(*args)


def test_a_skill_steps_first_look_is_taken_while_its_start_is_written_and_a_stale_miss_asked_again_at_once(
    on_page, monkeypatch
):
    naps: list[float] = []
    monkeypatch.setattr(locators, "time", SimpleNamespace(monotonic=time.monotonic, sleep=naps.append))

    def check(page: Any) -> None:
        done = record(page, "#done")
        assert done["unique"][0] == "id"
        counted = CountedPage(page)

        # The element is there when the step starts: the early look is the find (no look of its own).
        found = locators.find(counted, done, timeout_ms=2000, first=locators.find_soon(page, done))
        assert (found.by, counted.looks) == ("id", 0)
        assert found.handle.evaluate("(el) => el.id") == "done"

        # It comes a moment later (after the click that shows it): the early look's miss is as
        # old as the step's start, so the page is asked again at once, not after a pause.
        page.evaluate("document.getElementById('done').remove()")
        early = locators.find_soon(page, done)
        page.evaluate("document.body.insertAdjacentHTML('beforeend', '<p id=\"done\">Order confirmed</p>')")
        found = locators.find(counted, done, timeout_ms=2000, first=early)
        assert (found.by, counted.looks, naps) == ("id", 1, [])

        # An early look that failed (the page was between documents) is asked again.
        failed: concurrent.futures.Future[Any] = concurrent.futures.Future()
        failed.set_exception(RuntimeError("Execution context was destroyed"))
        gone = bridge.Soon(failed, bridge.Loop(name="test-unused-loop"))
        found = locators.find(counted, done, timeout_ms=2000, first=gone)
        assert (found.by, counted.looks) == ("id", 2)

        # A look that finds nothing still waits between looks, and gives up at the deadline.
        page.evaluate("document.getElementById('done').remove()")
        with pytest.raises(locators.NotFound):
            locators.find(counted, done, timeout_ms=300, first=locators.find_soon(page, done))
        assert naps and set(naps) == {locators.POLL_S}

    on_page('<p id="done">Order confirmed</p>', check)


def test_a_masked_text_agrees_with_any_value_in_its_place(on_page):
    def check(page: Any) -> None:
        said = record(page, "#said")
        masked = locators.map_displayed(said, lambda text: text.replace("hunter22", MASK))
        assert masked["fingerprint"]["name"] == f"You said {MASK}"
        page.evaluate("document.getElementById('said').textContent = 'You said s3cret!'")
        assert locators.find(page, masked, timeout_ms=1000).by == "id"
        page.evaluate("document.getElementById('said').textContent = 'You typed s3cret!'")
        with pytest.raises(locators.NotFound):
            locators.find(page, masked, timeout_ms=300)

    on_page('<h1 id="said" role="heading">You said hunter22</h1>', check)


def test_hidden_look_alikes_do_not_count(on_page):
    html = '<button id="a">Menu</button><nav hidden><button>Menu</button></nav>'

    def check(page: Any) -> None:
        menu = record(page, "#a")
        assert menu["lookalikes"] == 1
        assert menu["unique"][:2] == ["id", "role"]
        page.evaluate("document.getElementById('a').removeAttribute('id')")
        assert locators.find(page, menu, timeout_ms=1000).by == "role"

    on_page(html, check)


def test_a_hostile_bundle_is_cut_to_size_and_finds_nothing_it_should_not(on_page):
    hostile = {
        "fingerprint": {"tag": "button", "role": "button", "name": "Pay"},
        "attributes": {"id": "x" * 5000, "onclick": "alert(1)"},
        "css": "}{ not css",
        "xpath": "//*[",
        "text": "y" * 5000,
        "unique": ["css", "xpath", "id", "eval"],
    }
    bundle = locators.clean_bundle(hostile)
    assert bundle is not None
    assert bundle["attributes"] == {}
    assert bundle["unique"] == ["id", "css", "xpath"]
    assert len(bundle["text"]) == locators.MAX_FIELD
    assert locators.clean_bundle({"fingerprint": {"tag": "<script>"}}) is None

    def check(page: Any) -> None:
        with pytest.raises(locators.NotFound):
            locators.find(page, bundle, timeout_ms=300)

    on_page('<button id="pay">Pay</button>', check)


def test_a_selector_is_described_in_one_call_only_when_it_means_one_element_now(on_page):
    def check(page: Any) -> None:
        count, bundle = locators.describe_only(page.locator("#b2"))
        assert count == 1
        assert bundle == record(page, "#b2")  # what the strict path records, to the letter
        assert locators.describe_only(page.locator("button")) == (2, None)  # strictness decides
        assert locators.describe_only(page.locator("#nothing-yet")) == (0, None)  # waited for
        assert locators.describe_only(page.locator("button").nth(1))[1] == bundle

    on_page(TWO_CARDS, check)


@pytest.mark.parametrize("over", ["page.evaluate", "CDP Runtime.evaluate"])
def test_a_plain_css_selector_is_described_by_the_page_itself_and_anything_else_by_playwright(on_page, over):
    def check(page: Any) -> None:
        # The executor asks over its CDP session on the page; both ways answer the same.
        cdp = page.context.new_cdp_session(page) if over.startswith("CDP") else None

        def describe(selector: str) -> Any:
            return locators.describe_css(page, selector, cdp=cdp)

        assert locators.selector_of(page.locator("#b2").first) == "#b2 >> nth=0"
        count, bundle = describe("#b2")
        assert count == 1
        assert bundle == record(page, "#b2")
        assert describe("#b2 >> nth=0") == (1, bundle)  # Locator.first
        assert describe("section button") == (2, None)
        assert describe("#nothing-yet") == (0, None)
        assert describe('button[title="a \\"quoted\\" </script> title"]') == (0, None)
        for engine_only in (
            "text=Choose",
            "internal:role=button",
            "//button",
            "section >> button",
            "button >> nth=1",  # which of several: Playwright's order
            "#b2 >> nth=1",
        ):
            assert describe(engine_only) == (-1, None), engine_only
        # Playwright's CSS looks into open shadow roots, the page's own does not: Playwright decides.
        page.evaluate(
            "document.body.appendChild(document.createElement('div'))"
            ".attachShadow({mode: 'open'}).innerHTML = '<button id=b2>Choose</button>'"
        )
        assert describe("#b2") == (-1, None)
        assert page.locator("#b2").count() == 2

    on_page(TWO_CARDS, check)


def test_each_element_step_of_a_hand_written_run_records_the_element_it_acted_on(alice, site, worker):
    program = [
        {"action": "goto", "url": site.url("/login")},
        {"action": "fill", "selector": "#user", "value": "alice"},  # there at once
        {"action": "goto", "url": site.url("/later?ms=700")},
        {"action": "click", "selector": "#late"},  # not there yet: waited for
        {"action": "extract", "selector": "#late-done", "name": "done"},
        {"action": "goto", "url": site.url("/twins")},
        {"action": "click", "selector": "button.del"},  # several: a person says which
    ]
    run = start_run(alice, program)
    assert run["status"] == "awaiting_approval", run
    assert run["pending_step"]["trigger"] == "ambiguity"
    assert run["outputs"] == {"done": "Late click recorded"}
    assert site.count("late") == 1
    recorded: dict[int, Any] = {s.index: s.locator for s in Step.objects.filter(run_id=run["id"])}
    assert recorded[2]["fingerprint"] == {"tag": "input", "role": "textbox", "name": "User"}
    assert recorded[2]["unique"][0] == "id"
    assert "alice" not in str(recorded[2])  # what was typed is never read
    assert (recorded[4]["attributes"]["id"], recorded[4]["name"]) == ("late", "Late")
    assert recorded[5]["attributes"]["id"] == "late-done"
    assert recorded[7] is None  # not acted on yet

    answer = alice.post(f"/api/runs/{run['id']}/approve", {"choice": run["pending_step"]["options"][1]})
    assert answer.status_code == 202, answer.content
    run = wait_run(alice, run["id"])
    assert run["status"] == "completed", run
    assert [e["row"] for e in site.events if e["kind"] == "delete"] == ["2"]
    chosen: Any = Step.objects.get(run_id=run["id"], index=7).locator
    assert (chosen["lookalikes"], chosen["nth"], chosen["context"]) == (2, 1, "Invoice 2024-002")
