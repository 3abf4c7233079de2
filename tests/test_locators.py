"""Locator bundles in a real page: what is recorded of an element, and what a replay accepts.

Each test runs its page code in the tests' browser thread, in a fresh context of the host browser.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engine import locators
from engine.browser import session
from engine.scrub import MASK
from tests.conftest import in_browser_thread

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
