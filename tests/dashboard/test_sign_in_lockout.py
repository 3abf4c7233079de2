"""Guessing a password from one place locks that username out there, and the page says so."""

from __future__ import annotations

import re

from django.conf import settings
from playwright.sync_api import Page, expect

from tests.dashboard.conftest import Person, shoot


def test_after_the_limit_of_wrong_passwords_even_the_right_one_is_refused_with_a_message(
    page: Page, alice: Person
) -> None:
    page.goto("/login/")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("a guess")
        page.get_by_role("button", name="Sign in").click()

    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(alice.password)
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins")
    expect(page.get_by_role("alert")).to_contain_text("locked for 15 minutes")
    expect(page.get_by_label("Username")).to_have_value("alice")
    shoot(page, "sign-in-locked", full_page=False)
    page.goto("/runs/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/runs/$"))
