"""The dashboard as a person uses it: a live Daphne serving the test database, real Chromium.

The server is a separate process (as in production), so everything a test creates must be
committed: these tests use the real ``worker`` (``transactional_db``) or ``live_db``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from tenants.models import Role, Tenant
from tenants.services import tenant_create
from tests.conftest import LOG_DIR, ROOT, Worker, worker_env

CHROMIUM = "/usr/bin/chromium"
ASGI_APP = "twin_site.asgi:application"
PASSWORD = "correct horse battery staple"
# A run reaches its pause in a few seconds; the UI must follow within a few more.
LIVE_TIMEOUT_MS = 30_000
# Screenshots of the main pages land in var/screenshots; TWIN_SCREENSHOTS_DIR=docs/screenshots
# refreshes the ones the docs show (a plain test run leaves the tracked files alone).
SCREENSHOTS = Path(os.environ.get("TWIN_SCREENSHOTS_DIR") or LOG_DIR.parent / "screenshots")
if not SCREENSHOTS.is_absolute():
    SCREENSHOTS = ROOT / SCREENSHOTS

expect.set_options(timeout=10_000)


# -- the live server ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """``daphne twin_site.asgi:application`` on a free port, against the test database."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.log = LOG_DIR / "daphne-dashboard.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveServer:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), ASGI_APP],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/login/", timeout=2).status_code == 200:
                    return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"daphne did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def daphne(_session_worker: Worker) -> Iterator[LiveServer]:
    """Daphne on the test database (created by then: the session worker needs it too).

    It also depends on the session worker so that the worker's environment is taken before
    the browser fixture below relaxes Django's async-safety check in this process.
    """
    env = worker_env()
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the server must keep Django's own guard
    server = LiveServer(env).start()
    yield server
    server.stop()


# -- the browser ----------------------------------------------------------------------------------
@pytest.fixture(scope="package")
def playwright(daphne: LiveServer) -> Iterator[Playwright]:
    """Playwright's sync API, for this package only.

    It keeps an event loop running in this thread while it is started, so Django would refuse
    the tests' own ORM calls (and pytest-django's flushes) as "async-unsafe": they are plain
    synchronous calls between browser calls, so that check is relaxed for as long as the
    browser is up, and Playwright is stopped before the other test packages run.
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    pw = sync_playwright().start()
    yield pw
    pw.stop()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
    )
    yield browser
    browser.close()


@pytest.fixture
def new_context(browser: Browser, daphne: LiveServer) -> Iterator[Callable[..., BrowserContext]]:
    """Browser contexts (separate cookie jars: separate people) closed after the test."""
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        options.setdefault("viewport", {"width": 1280, "height": 900})
        context = browser.new_context(base_url=daphne.url, **options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        with contextlib.suppress(Exception):
            context.close()


@pytest.fixture
def page(new_context: Callable[..., BrowserContext]) -> Page:
    return new_context().new_page()


# -- people ---------------------------------------------------------------------------------------
@dataclass
class Person:
    """A member of a tenant with a password (for the dashboard) and an API token."""

    username: str
    password: str
    tenant: Tenant
    user: Any
    token: str
    base_url: str

    def api(self, method: str, path: str, body: Any = None, *, timeout: float = 40) -> httpx.Response:
        """Call the live server's API over HTTP (the Django test client cannot run here)."""
        return httpx.request(
            method,
            f"{self.base_url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=timeout,
        )

    def start_run(self, steps: list[dict[str, Any]], *, wait: float = 0, **body: Any) -> dict[str, Any]:
        response = self.api(
            "POST", f"/api/runs?wait={wait}", {"goal": body.pop("goal", "test"), "steps": steps, **body}
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def run(self, run_id: str, *, wait: float = 0) -> dict[str, Any]:
        response = self.api("GET", f"/api/runs/{run_id}?wait={wait}")
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
def person(daphne: LiveServer, transactional_db: Any) -> Callable[..., Person]:
    def make(username: str, tenant: str, role: str) -> Person:
        tenant_row, user, token = tenant_create(
            slug=tenant, owner_username=username, password=PASSWORD, role=role
        )
        return Person(username, PASSWORD, tenant_row, user, token, daphne.url)

    return make


@pytest.fixture
def alice(person: Callable[..., Person]) -> Person:
    """An approver in acme."""
    return person("alice", "acme", Role.APPROVER)


@pytest.fixture
def dave(alice: Person, person: Callable[..., Person]) -> Person:
    """Another approver in acme."""
    return person("dave", "acme", Role.APPROVER)


@pytest.fixture
def bob(alice: Person, person: Callable[..., Person]) -> Person:
    """A viewer in acme."""
    return person("bob", "acme", Role.VIEWER)


@pytest.fixture
def olga(alice: Person, person: Callable[..., Person]) -> Person:
    """An operator in acme: starts runs, decides nothing."""
    return person("olga", "acme", Role.OPERATOR)


@pytest.fixture
def carol(person: Callable[..., Person]) -> Person:
    """An approver in globex."""
    return person("carol", "globex", Role.APPROVER)


# -- what a person does ---------------------------------------------------------------------------
def sign_in(page: Page, who: Person, *, next_path: str = "") -> None:
    page.goto("/login/" + (f"?next={next_path}" if next_path else ""))
    page.get_by_label("Username").fill(who.username)
    page.get_by_label("Password").fill(who.password)
    page.get_by_role("button", name="Sign in").click()
    # Attached, not visible: on a phone "Sign out" waits behind the navigation's Menu button.
    expect(page.get_by_role("button", name="Sign out", include_hidden=True)).to_be_attached()


def wait_live(page: Page) -> None:
    """Wait until the page's websockets are open: from then on it hears every event."""
    expect(page.locator("body")).to_have_attribute("data-live", "on")


def wait_js(page: Page, expression: str, arg: Any = None, *, timeout_ms: float = LIVE_TIMEOUT_MS) -> Any:
    """Until ``expression`` (a function of ``arg``, or a plain expression) is truthy in the page.

    Not ``page.wait_for_function``: once its first try is falsy it polls with ``eval`` inside
    the page, which the dashboard's Content-Security-Policy (no 'unsafe-eval') refuses, so it
    failed whenever the page was slower than the test. ``page.evaluate`` goes through DevTools.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        value = page.evaluate(expression, arg)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still falsy after {timeout_ms / 1000:.0f} s: {expression}")
        page.wait_for_timeout(50)


def shoot(page: Page, name: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def csrf_token(page: Page) -> str:
    return page.locator("input[name=csrfmiddlewaretoken]").first.input_value()
