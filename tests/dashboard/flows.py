"""Step programs for the fixture site, shaped like the pauses a person meets."""

from __future__ import annotations

from typing import Any

from tests.site.server import FixtureSite

OTP_GATE = {"kind": "input", "prompt": "One-time code", "pattern": "^[0-9]{6}$"}
OTP_STEP = 7
OTP_STEPS = 9


def login_then_otp(site: FixtureSite) -> list[dict[str, Any]]:
    """Sign in to the site, then pause for a person to type the one-time code (step 7 of 9)."""
    return [
        {"action": "goto", "url": site.url("/login"), "label": "Open the sign-in page"},
        {"action": "fill", "selector": "#user", "value": "alice"},
        {"action": "fill", "selector": "#password", "value": "wonderland"},
        {"action": "click", "selector": "#login", "label": "Sign in"},
        {"action": "wait_for", "selector": "#welcome"},
        {"action": "goto", "url": site.url("/otp")},
        {
            "action": "fill",
            "selector": "#otp",
            "value": "{{input}}",
            "gate": OTP_GATE,
            "label": "Type the code",
        },
        {"action": "click", "selector": "#verify"},
        {"action": "assert_text", "text": "Confirm payment"},
    ]


def pay_with_approval(site: FixtureSite) -> list[dict[str, Any]]:
    """Pause before paying (an approval gate at step 2 of 3)."""
    return [
        {"action": "goto", "url": site.url("/pay")},
        {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay $42.00?"}},
        {"action": "assert_text", "text": "Payment complete"},
    ]


def pick_an_account(site: FixtureSite) -> list[dict[str, Any]]:
    """An ambiguous click: two "Delete" buttons, the run asks which (step 2 of 2)."""
    return [
        {"action": "goto", "url": site.url("/twins")},
        {"action": "click", "selector": "button.del", "label": "Delete the invoice"},
    ]


def blocked_on_a_missing_button(site: FixtureSite) -> list[dict[str, Any]]:
    """A button that is not there: the run pauses blocked (retry / skip / fail)."""
    return [
        {"action": "goto", "url": site.url("/flaky")},
        {"action": "click", "selector": "#go", "timeout": 1, "label": "Press Go"},
    ]


def choose_between(site: FixtureSite) -> list[dict[str, Any]]:
    """A choice gate the program asked for."""
    return [
        {"action": "goto", "url": site.url("/twins")},
        {
            "action": "click",
            "selector": "text={{choice}}",
            "gate": {"kind": "choice", "prompt": "Which account pays?", "options": ["Checking", "Savings"]},
        },
    ]
