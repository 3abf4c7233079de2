"""axe-core on every page, dashboard and admin, at desktop and phone sizes: no serious or critical
violation anywhere (moderate and minor ones are printed).

One world is built for the whole module (a run paused for each kind, a completed run with its
video, a skill, a webhook endpoint, an empty tenant) and each page is then only opened and
checked, so that seventy-odd checks take minutes instead of building the same runs seventy
times. To check a new page add one ``Check`` to ``PAGES``: its name, who looks at it (a key of
``World.states``), the address (a function of the world) and a text the page shows (so that a
redirect or an error page cannot pass for it); ``then`` does what a person does before looking
(open a menu, a dialog) when the page's first state is not the whole story.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Browser, Page, Playwright, ViewportSize, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from runs.models import Recording, RecordingStatus
from skills.models import Skill
from tenants.models import Role
from tenants.services import tenant_create
from tests.conftest import Worker, _close_all_contexts, wait_until
from tests.dashboard.axe import FAILING, report, run_axe
from tests.dashboard.conftest import PASSWORD, LiveServer, Person, shoot
from tests.dashboard.flows import (
    blocked_on_a_missing_button,
    choose_between,
    login_then_otp,
    pay_with_approval,
    pick_an_account,
)
from tests.site.server import FixtureSite
from tests.skill_factories import add_version, make_skill
from webhooks.services import endpoint_create

# The checks only read what ``world`` committed. The mark tells pytest-django that they need the
# test database (it creates it only for tests that say so); they are transactional so that no
# transaction of this process holds SQLite's write lock while the server and the worker write;
# and ``available_apps`` names an app without tables, so that the flush after each check empties
# nothing: the world lasts for the module, and its fixture flushes it at the end.
pytestmark = pytest.mark.django_db(transaction=True, available_apps=["django.contrib.staticfiles"])

VIEWPORTS: dict[str, ViewportSize] = {
    "desktop": {"width": 1366, "height": 900},
    "phone": {"width": 390, "height": 844},
}


def test_axe_runs_under_the_dashboards_policy_and_finds_a_nameless_button(
    browser: Browser, daphne: LiveServer
) -> None:
    """The harness itself: a check that cannot fail would prove nothing."""
    context = browser.new_context(base_url=daphne.url)
    try:
        page = context.new_page()
        response = page.goto("/login/")
        assert response is not None
        assert "script-src" in (response.headers.get("content-security-policy") or "")
        assert [v.rule for v in run_axe(page) if v.impact in FAILING] == []
        page.evaluate("document.querySelector('main, body').append(document.createElement('button'))")
        found = {v.rule: v for v in run_axe(page)}
        assert "button-name" in found, found
        assert found["button-name"].impact == "critical"
        assert found["button-name"].help_url.startswith("https://dequeuniversity.com/rules/axe/4.14/")
        assert "button-name" in report("sign-in", [found["button-name"]])
    finally:
        context.close()


# -- the world the pages show ---------------------------------------------------------------------
@dataclass
class World:
    runs: dict[str, str] = field(default_factory=dict)  # what it shows -> run id
    approvals: dict[str, str] = field(default_factory=dict)  # kind -> approval id
    decision_link: str = ""
    skill: str = ""
    skill_id: str = ""
    endpoint: str = ""
    tenant_id: int = 0
    # who -> the browser's signed-in state (cookies), taken once
    states: dict[str, Any] = field(default_factory=dict)


def _person(slug: str, username: str, role: str, base_url: str) -> Person:
    tenant, user, token = tenant_create(slug=slug, owner_username=username, password=PASSWORD, role=role)
    return Person(username, PASSWORD, tenant, user, token, base_url)


def _signed_in_state(browser: Browser, base_url: str, username: str, *, admin: bool = False) -> Any:
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    page.goto("/admin/login/" if admin else "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in" if admin else "Sign in").click()
    if admin:
        expect(page.get_by_role("heading", name="Runs, pauses and what was decided")).to_be_visible()
    else:
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    state = context.storage_state()
    context.close()
    return state


@pytest.fixture(scope="module")
def world(
    playwright: Playwright,  # first: it allows this thread's ORM calls while the browser runs
    browser: Browser,
    daphne: LiveServer,
    _session_worker: Worker,
    _site_server: FixtureSite,
    django_db_blocker: Any,
) -> Iterator[World]:
    """Committed rows shared by the module's checks (they only read), flushed at its end."""
    site = _site_server
    site.reset()
    w = World()
    with django_db_blocker.unblock():
        alice = _person("acme", "alice", Role.APPROVER, daphne.url)
        olga = _person("acme", "olga", Role.OPERATOR, daphne.url)
        _person("acme", "bob", Role.VIEWER, daphne.url)
        _person("globex", "carol", Role.APPROVER, daphne.url)  # a tenant with nothing in it
        tess = _person("acme", "tess", Role.VIEWER, daphne.url)  # signs in with a code as well
        TOTPDevice.objects.create(user=tess.user, name="authenticator app", confirmed=True)
        get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
        w.tenant_id = alice.tenant.pk
        endpoint, _ = endpoint_create(
            tenant=alice.tenant, url="http://127.0.0.1:9/hooks/twin", events=["run.awaiting_approval"]
        )
        w.endpoint = str(endpoint.pk)
        skill = make_skill(alice.tenant, user=olga.user)
        add_version(skill)
        w.skill, w.skill_id = skill.slug, str(skill.pk)

        done = olga.start_run(
            [
                {"action": "goto", "url": site.url("/counter"), "label": "Open the counter"},
                {"action": "click", "selector": "#click", "label": "Click it"},
            ],
            goal="Click the counter once",
        )
        paused = {
            "mfa": olga.start_run(login_then_otp(site), goal="Sign in to the supplier portal"),
            "approval": olga.start_run(pay_with_approval(site), goal="Pay the July invoice"),
            "ambiguity": olga.start_run(pick_an_account(site), goal="Delete the duplicate invoice"),
            "blocked": olga.start_run(blocked_on_a_missing_button(site), goal="Submit the flaky form"),
            "choice": olga.start_run(choose_between(site), goal="Choose the paying account"),
        }
        for kind, run in paused.items():
            now = olga.run(run["id"], wait=60)
            assert now["status"] == "awaiting_approval", now
            w.runs[kind] = run["id"]
            w.approvals[kind] = now["pending_step"]["approval_id"]
            if kind == "mfa":
                w.decision_link = urlsplit(now["pending_step"]["decision_url"]).path
        assert olga.run(done["id"], wait=30)["status"] == "completed"
        w.runs["completed"] = done["id"]
        wait_until(
            lambda: Recording.objects.filter(run_id=done["id"], status=RecordingStatus.READY).exists(),
            what="the completed run's video",
            timeout=40,
        )
        assert Skill.objects.filter(pk=w.skill_id).exists()

    for username in ("alice", "olga", "bob", "carol"):
        w.states[username] = _signed_in_state(browser, daphne.url, username)
    w.states["root"] = _signed_in_state(browser, daphne.url, "root", admin=True)
    w.states["anonymous"] = None
    yield w
    with django_db_blocker.unblock():
        _close_all_contexts()
        call_command("flush", verbosity=0, interactive=False)


# -- the pages ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    name: str
    who: str  # a key of World.states
    url: Callable[[World], str]
    shows: str  # a text the page shows when it is the page this check means to look at
    then: Callable[[Page], None] | None = None
    status: int = 200


def _unfold(page: Page) -> None:
    """Open what is folded (page text, timeline details) so its content is checked too."""
    page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")


def _password_of_tess(page: Page) -> None:
    """The password step of someone with an authenticator app: the page that asks for its code."""
    page.get_by_label("Username").fill("tess")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/login/code/"))


def _wrong_password(page: Page) -> None:
    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()


def _send_empty(button: str) -> Callable[[Page], None]:
    """The page's form sent empty: its errors, each tied to its field."""

    def send(page: Page) -> None:
        # By keyboard: at 390 px a page that scrolls sideways may keep moving under a tap.
        page.get_by_role("button", name=button).press("Enter")
        expect(page.locator("[aria-invalid=true]").first).to_be_visible()

    return send


def _open_lightbox(page: Page) -> None:
    """The card's screenshot opened large (the lightbox dialog, zoomed once)."""
    page.locator("article.item a.shot-open").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Zoom in").click()


def _keys_dialog(page: Page) -> None:
    """The inbox's keyboard help (``?``)."""
    page.locator("main h1").click()
    page.keyboard.press("?")
    expect(page.locator("#keys-dialog")).to_be_visible()


def _reject_dialog(page: Page) -> None:
    """The confirmation ``r`` asks for before rejecting the selected card."""
    page.locator("main h1").click()
    page.keyboard.press("j")
    page.keyboard.press("r")
    expect(page.locator("#confirm-dialog")).to_be_visible()


def _menu_open(page: Page) -> None:
    """The navigation's menu unfolded, where it folds (a phone)."""
    menu = page.get_by_role("button", name="Menu")
    if menu.is_visible():
        menu.click()
        expect(menu).to_have_attribute("aria-expanded", "true")


PAGES = [
    # the dashboard
    Check("sign-in", "anonymous", lambda w: "/login/", "Password"),
    Check("sign-in-refused", "anonymous", lambda w: "/login/", "didn't match", _wrong_password),
    Check("inbox-empty", "carol", lambda w: "/inbox/", "Inbox"),
    Check("inbox-every-kind", "alice", lambda w: "/inbox/", "Choose the paying account", _unfold),
    Check("inbox-lightbox", "alice", lambda w: "/inbox/", "Choose the paying account", _open_lightbox),
    Check("inbox-keys-help", "alice", lambda w: "/inbox/", "keyboard", _keys_dialog),
    Check("inbox-reject-confirm", "alice", lambda w: "/inbox/", "Reject this pause?", _reject_dialog),
    Check("inbox-menu-open", "alice", lambda w: "/inbox/", "Sign out", _menu_open),
    Check("run-paused", "alice", lambda w: f"/runs/{w.runs['approval']}/", "Pay the July invoice", _unfold),
    Check(
        "run-ambiguity", "alice", lambda w: f"/runs/{w.runs['ambiguity']}/", "Delete the duplicate invoice"
    ),
    Check(
        "run-completed", "alice", lambda w: f"/runs/{w.runs['completed']}/", "Click the counter once", _unfold
    ),
    Check("live-view", "alice", lambda w: f"/runs/{w.runs['mfa']}/live", "Sign in to the supplier portal"),
    Check("runs-list", "alice", lambda w: "/runs/", "Submit the flaky form"),
    Check("runs-list-empty", "carol", lambda w: "/runs/", "Runs"),
    Check("runs-list-filtered", "alice", lambda w: "/runs/?status=failed", "Runs"),
    Check("start-a-run", "olga", lambda w: "/runs/new", "Start a run"),
    Check("start-a-run-refused", "olga", lambda w: "/runs/new", "Start a run", _send_empty("Start the run")),
    Check("skills-list", "alice", lambda w: "/skills/", "Sign up a customer"),
    Check("skills-list-empty", "carol", lambda w: "/skills/", "Skills"),
    Check("skill-detail", "alice", lambda w: f"/skills/{w.skill}/", "Sign up a customer"),
    Check("skill-run-form", "olga", lambda w: f"/skills/{w.skill}/run", "Run Sign up a customer"),
    Check(
        "skill-run-form-refused",
        "olga",
        lambda w: f"/skills/{w.skill}/run",
        "Run Sign up a customer",
        _send_empty("Run the skill"),
    ),
    Check("skill-save", "olga", lambda w: f"/runs/{w.runs['completed']}/save-skill", "Save as skill"),
    Check("webhooks-list", "olga", lambda w: "/webhooks/", "127.0.0.1:9/hooks/twin"),
    Check("webhooks-list-refused", "olga", lambda w: "/webhooks/", "Webhooks", _send_empty("Add endpoint")),
    Check("webhooks-list-empty", "carol", lambda w: "/webhooks/", "Webhooks"),
    Check("webhook-detail", "olga", lambda w: f"/webhooks/{w.endpoint}/", "127.0.0.1:9/hooks/twin"),
    Check("webhook-delete", "olga", lambda w: f"/webhooks/{w.endpoint}/delete", "Delete this endpoint?"),
    Check("decision-link", "alice", lambda w: w.decision_link, "Sign in to the supplier portal"),
    Check("decision-link-broken", "alice", lambda w: "/decide/x", "This link does not work", status=404),
    Check("two-factor-code", "anonymous", lambda w: "/login/", "sign-in code", _password_of_tess),
    Check("two-factor-setup", "alice", lambda w: "/account/two-factor/", "Two-factor sign-in"),
    Check("forbidden", "bob", lambda w: "/runs/new", "Not allowed", status=403),
    Check("not-found", "alice", lambda w: f"/runs/{uuid.uuid4()}/", "Not found", status=404),
    # Django admin, the audit trail
    Check("admin-sign-in", "anonymous", lambda w: "/admin/login/", "Password"),
    Check("admin-index", "root", lambda w: "/admin/", "Runs, pauses and what was decided"),
    Check("admin-runs", "root", lambda w: "/admin/runs/run/", "Submit the flaky form"),
    Check(
        "admin-run",
        "root",
        lambda w: f"/admin/runs/run/{w.runs['completed']}/change/",
        "Click the counter once",
    ),
    Check(
        "admin-run-paused",
        "root",
        lambda w: f"/admin/runs/run/{w.runs['ambiguity']}/change/",
        "Delete the duplicate invoice",
    ),
    Check("admin-approvals", "root", lambda w: "/admin/approvals/approval/", "Pay the July invoice"),
    Check(
        "admin-approval",
        "root",
        lambda w: f"/admin/approvals/approval/{w.approvals['ambiguity']}/change/",
        "Delete the duplicate invoice",
        _unfold,
    ),
    Check("admin-approvals-export", "root", lambda w: "/admin/approvals/approval/export/", "Export"),
    Check("admin-tenants", "root", lambda w: "/admin/tenants/tenant/", "globex"),
    Check("admin-tenant", "root", lambda w: f"/admin/tenants/tenant/{w.tenant_id}/change/", "alice"),
    Check("admin-skills", "root", lambda w: "/admin/skills/skill/", "Sign up a customer"),
    Check("admin-skill", "root", lambda w: f"/admin/skills/skill/{w.skill_id}/change/", "Sign up a customer"),
]


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("check", PAGES, ids=[c.name for c in PAGES])
def test_the_page_has_no_serious_or_critical_accessibility_violation(
    check: Check, viewport: str, world: World, browser: Browser, daphne: LiveServer
) -> None:
    size = VIEWPORTS[viewport]
    context = browser.new_context(
        base_url=daphne.url,
        viewport=size,
        storage_state=world.states[check.who],
        is_mobile=viewport == "phone",
        has_touch=viewport == "phone",
        reduced_motion="reduce",
    )
    try:
        page = context.new_page()
        response = page.goto(check.url(world))
        assert response is not None and response.status == check.status, (
            f"{check.name}: {response and response.status} at {page.url}"
        )
        assert not re.search(r"/login/\?next=", page.url) or check.who == "anonymous", page.url
        page.wait_for_load_state("load")
        # What the page fetches as it opens (htmx fragments, the video's first frames) is in
        # before axe looks; a page that keeps polling is checked after a few seconds anyway.
        with contextlib.suppress(PlaywrightTimeoutError):
            page.wait_for_load_state("networkidle", timeout=5_000)
        if check.then is not None:
            check.then(page)
        expect(page.locator("body")).to_contain_text(check.shows, ignore_case=True)
        violations = run_axe(page)
        failing = [v for v in violations if v.impact in FAILING]
        others = [v for v in violations if v.impact not in FAILING]
        if others:
            print(report(f"{check.name} at {viewport} (not failing)", others))
        if failing or os.environ.get("TWIN_A11Y_SCREENSHOTS"):  # =1: every page, to look at
            shoot(page, f"a11y-{check.name}-{viewport}")
        assert not failing, report(f"{check.name} at {viewport}", failing)
    finally:
        context.close()
