"""Signing in and out."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.dashboard.conftest import Person, shoot


def test_wrong_password_shows_an_error_and_the_right_one_lands_an_approver_on_the_inbox(
    page: Page, alice: Person
) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))

    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_contain_text("didn't match")
    expect(page.get_by_label("Username")).to_have_value("alice")
    expect(page.get_by_label("Password")).to_be_focused()  # ready to type it again
    shoot(page, "sign-in-error", full_page=False)

    page.get_by_label("Password").fill(alice.password)
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(re.compile(r"/inbox/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Approval inbox")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name=re.compile("^Inbox"))).to_have_attribute("aria-current", "page")
    expect(page.locator(".who")).to_contain_text("alice")


def test_signing_out_ends_the_session(page: Page, alice: Person) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(alice.username)
    page.get_by_label("Password").fill(alice.password)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/inbox/$"))

    page.get_by_role("button", name="Sign out").click()

    expect(page).to_have_url(re.compile(r"/login/$"))
    page.goto("/runs/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/runs/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to Twin")
