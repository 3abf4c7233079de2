"""Egress is enforced where Chromium connects: every connection of the host browser goes through
Twin's egress proxy (engine.egress), which resolves, checks address and port, and connects to that
very address. Real Chromium, the fixture site and real sockets on loopback only: public names are
stood in for with TWIN_EGRESS_HOSTS, which points made-up names at 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from django.conf import settings

from engine import browser as browser_mod
from engine.browser import _endpoint_alive, _proxy_alive
from engine.netguard import parse_allowed, service_rules
from tests.conftest import start_run
from tests.webhook_receiver import Receiver
from webhooks import transport


class Canary:
    """A listener on a loopback port that records every connection made to it: a refused address
    must never see one."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def canary() -> Iterator[Canary]:
    c = Canary()
    yield c
    c.close()


def devtools_port() -> int:
    return urlsplit(browser_mod.ensure_host_browser().endpoint).port or 0


def egress_log() -> str:
    path = browser_mod.host_dir() / "egress.log"
    return path.read_text() if path.exists() else ""


# -- a run, through the real worker, with TWIN_ALLOW_PRIVATE_URLS=1 ------------------------------------------
def test_a_runs_goto_to_the_devtools_port_reaches_the_proxy_and_is_refused(alice, site, worker):
    port = devtools_port()
    # "localhost" is not resolved at submission (private URLs are open): the proxy decides.
    run = start_run(alice, [{"action": "goto", "url": f"http://localhost:{port}/json/list"}])

    assert run["status"] == "awaiting_approval", run
    pending = run["pending_step"]
    assert pending["trigger"] == "blocked"
    assert "refused" in pending["prompt"] and "DevTools" in pending["prompt"], pending["prompt"]
    assert "webSocketDebuggerUrl" not in json.dumps(run)
    assert f"refused localhost:{port}" in egress_log()


def test_the_devtools_port_and_the_backslash_trick_are_refused_at_submission(alice, site, worker):
    port = devtools_port()
    allowed = urlsplit(site.url("/")).netloc
    for url, why in (
        (f"http://127.0.0.1:{port}/json/list", "DevTools"),
        (f"http://127.0.0.1:{port}\\@{allowed}/x", "backslash"),
    ):
        answer = alice.post("/api/runs", {"goal": "t", "steps": [{"action": "goto", "url": url}]})
        assert answer.status_code == 400, (url, answer.content)
        assert why in json.dumps(answer.json()), answer.json()


# -- the proxy itself, driven straight from Chromium -------------------------------------------------------
_own_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-egress")


class Driver:
    """Playwright on a host browser of its own (its own host id, so its own policy and proxy)."""

    def __init__(self) -> None:
        self.playwright: Any = None
        self.browser: Any = None

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return _own_thread.submit(fn, *args).result(timeout=90)

    def _connect(self, endpoint: str) -> None:
        from playwright.sync_api import sync_playwright

        self.playwright = sync_playwright().start()
        self.browser = self.playwright.chromium.connect_over_cdp(endpoint)

    def _visit(self, url: str, wait_for: str | None) -> dict[str, Any]:
        page = self.browser.contexts[0].new_page()
        try:
            try:
                response = page.goto(url, timeout=15000, wait_until="load")
            except Exception as exc:
                return {"error": str(exc).splitlines()[0], "text": ""}
            if wait_for:
                page.wait_for_function(wait_for, timeout=10000)
            return {
                "status": response.status if response else None,
                "egress": response.headers.get("x-twin-egress") if response else None,
                "url": page.url,
                "text": page.inner_text("body"),
            }
        finally:
            page.close()

    def visit(self, url: str, wait_for: str | None = None) -> dict[str, Any]:
        return dict(self.call(self._visit, url, wait_for))

    def _close(self) -> None:
        if self.browser is not None:
            self.browser.close()
        if self.playwright is not None:
            self.playwright.stop()


NARROW = "only the fixture site"


@pytest.fixture
def own_host(
    settings: Any, monkeypatch: pytest.MonkeyPatch, request: Any, site: Any
) -> Iterator[tuple[Driver, str]]:
    """A host browser + proxy of the test's own (own host id), under the policy given as the
    indirect parameter: (TWIN_ALLOW_PRIVATE_URLS or NARROW, extra always-refused rules)."""
    allowed, extra = getattr(request, "param", (True, []))
    if allowed == NARROW:  # the fixture site stands in for a public site: only its port is open
        allowed = parse_allowed("TWIN_ALLOW_PRIVATE_URLS", f"127.0.0.1:{urlsplit(site.url('/')).port}")
    settings.TWIN_HOST_ID = f"{settings.TWIN_HOST_ID}-own"
    settings.TWIN_ALLOW_PRIVATE_URLS = allowed
    monkeypatch.setenv("TWIN_EGRESS_HOSTS", "shop.twin-test=127.0.0.1,rebind.twin-test=127.0.0.1")
    if extra:  # e.g. a PostgreSQL, which these tests do not use as their database
        from engine import netguard

        base = netguard.base_policy
        monkeypatch.setattr(netguard, "base_policy", lambda **kw: base(**kw).refusing(*extra))
    browser_mod.stop_host_browser()
    (browser_mod.host_dir() / "egress.log").unlink(missing_ok=True)
    host = browser_mod.ensure_host_browser()
    driver = Driver()
    driver.call(driver._connect, host.endpoint)
    yield driver, host.endpoint
    driver.call(driver._close)
    browser_mod.stop_host_browser()


PROBED = "() => ['img', 'fetch', 'ws'].every((id) => document.getElementById(id).textContent !== 'pending')"


def refused_in_log(host_port: str) -> bool:
    return f"refused {host_port}" in egress_log()


@pytest.mark.parametrize("own_host", [(NARROW, [])], indirect=True)
def test_with_a_narrow_policy_redirects_subrequests_and_websockets_to_other_addresses_are_refused(
    own_host, site, canary
):
    driver, endpoint = own_host
    port = int(urlsplit(site.url("/")).port or 0)
    shop = f"http://shop.twin-test:{port}"

    loaded = driver.visit(f"{shop}/")
    assert loaded["status"] == 200 and "Twin fixture site" in loaded["text"], loaded

    redirected = driver.visit(f"{shop}/egress/redirect?to={quote(canary.url + '/x', safe='')}")
    assert redirected["status"] == 403 and redirected["egress"] == "refused", redirected
    assert f"127.0.0.1:{canary.port}" in redirected["text"]

    probed = driver.visit(
        f"{shop}/egress/probe?target={quote(canary.url, safe='')}",
        wait_for=PROBED,
    )
    assert "img: error" in probed["text"], probed
    assert "fetch: error" in probed["text"], probed  # the proxy's 403 carries no CORS header
    assert "ws: error" in probed["text"], probed

    # A name that resolves to an address the policy refuses is refused on that address.
    rebound = driver.visit(f"http://rebind.twin-test:{canary.port}/")
    assert rebound["status"] == 403 and f"rebind.twin-test (127.0.0.1:{canary.port})" in rebound["text"]

    # Forced past the submission check, the backslash trick meets the proxy: Chromium goes to 127.0.0.1.
    devtools = urlsplit(endpoint).port
    tricked = driver.visit(f"http://127.0.0.1:{devtools}\\@shop.twin-test:{port}/x")
    assert tricked.get("status") == 403 and f"Twin refused 127.0.0.1:{devtools}" in tricked["text"], tricked
    listed = driver.visit(f"http://127.0.0.1:{devtools}/json/list")
    assert "webSocketDebuggerUrl" not in listed["text"] and "Twin refused" in listed["text"]

    assert canary.connections == 0
    assert refused_in_log(f"127.0.0.1:{canary.port}")
    assert refused_in_log(f"rebind.twin-test:{canary.port}")
    assert f"allowed shop.twin-test:{port}" in egress_log()


@pytest.mark.parametrize(
    "own_host", [(True, service_rules("127.0.0.1", 5432, "Twin's database"))], indirect=True
)
def test_redis_postgresql_and_devtools_are_refused_with_every_private_range_open(own_host):
    driver, endpoint = own_host
    redis_port = urlsplit(settings.REDIS_URL).port or 6379
    for port, why in ((redis_port, "Redis"), (5432, "database"), (urlsplit(endpoint).port, "DevTools")):
        seen = driver.visit(f"http://127.0.0.1:{port}/")
        assert seen.get("status") == 403 and why in seen["text"], (port, seen)
    tunnelled = driver.visit(f"https://127.0.0.1:{redis_port}/")
    assert "ERR_TUNNEL_CONNECTION_FAILED" in tunnelled.get("error", ""), tunnelled
    assert refused_in_log(f"127.0.0.1:{redis_port}")


@pytest.mark.parametrize("own_host", [(False, [])], indirect=True)
def test_an_idle_host_browser_lets_nothing_out(own_host):
    time.sleep(8)  # Chromium calls home within seconds of starting, when it does

    log = egress_log()
    assert "host browser pid" in log
    assert not re.search(r"allowed ", log), log
    for home in (
        "update.googleapis.com",
        "accounts.google.com",
        "optimizationguide",
        "safebrowsing",
        "gvt1.com",
    ):
        assert f"allowed {home}" not in log


# -- webhooks: the same policy, the same checked connect ---------------------------------------------------
@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def test_webhook_urls_with_userinfo_or_a_backslash_are_refused_at_save(alice, settings, receiver):
    settings.TWIN_ALLOW_PRIVATE_URLS = True
    netloc = urlsplit(receiver.url).netloc
    for url in (
        f"http://127.0.0.1:6379\\@{netloc}/hook",
        f"http://user@{netloc}/hook",
        f"http://{netloc}\\@example.com/hook",
        "http://127.0.0.1:6379/hook",
    ):
        refused = alice.post("/api/webhooks", {"url": url})
        assert refused.status_code == 400, (url, refused.content)
        assert refused.json()["error"] == "invalid_url"
        # An endpoint saved before these rules is refused at send time, before any connection.
        outcome = transport.post(url, b"{}", {"webhook-id": "msg_u"})
        assert not outcome.ok and outcome.permanent, (url, outcome)
    assert receiver.received == []


def test_a_webhook_name_that_rebinds_to_a_refused_address_is_refused_at_send(settings, monkeypatch, receiver):
    port = int(urlsplit(receiver.url).port or 0)
    settings.TWIN_ALLOW_PRIVATE_URLS = parse_allowed("X", "127.0.0.1:1-2")  # anything but the receiver
    monkeypatch.setenv("TWIN_EGRESS_HOSTS", "hooks.twin-test=127.0.0.1")

    outcome = transport.post(f"http://hooks.twin-test:{port}/hook", b"{}", {"webhook-id": "msg_e"})

    assert not outcome.ok and outcome.permanent, outcome
    assert f"hooks.twin-test (127.0.0.1:{port})" in outcome.error
    assert receiver.received == []

    settings.TWIN_ALLOW_PRIVATE_URLS = parse_allowed("X", f"127.0.0.1:{port}")
    assert transport.post(f"http://hooks.twin-test:{port}/hook", b"{}", {"webhook-id": "msg_f"}).ok
    assert len(receiver.received) == 1


def test_a_webhook_to_redis_is_refused_at_send_even_with_private_urls_open(settings):
    settings.TWIN_ALLOW_PRIVATE_URLS = True
    port = urlsplit(settings.REDIS_URL).port or 6379

    outcome = transport.post(f"http://127.0.0.1:{port}/", b"{}", {"webhook-id": "msg_r"})

    assert not outcome.ok and outcome.permanent and "Redis" in outcome.error, outcome


# -- the proxy lives exactly as long as the browser ---------------------------------------------------------
def _gone(check: Callable[[], bool], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not check():
            return True
        time.sleep(0.1)
    return False


def test_the_proxy_and_chromium_live_and_die_together_and_come_back_together(own_host):
    first = browser_mod.ensure_host_browser()
    assert first.proxy_port and first.chromium_pid and first.pid != first.chromium_pid
    assert "--proxy-server" not in " ".join(browser_mod.CHROMIUM_FLAGS)  # added by engine.egress only

    os.kill(first.chromium_pid, signal.SIGKILL)  # Chromium crashes: its proxy goes with it
    assert _gone(lambda: _proxy_alive(first.proxy_port, timeout=0.5))

    second = browser_mod.ensure_host_browser()  # both come back, together
    assert second.alive() and second.endpoint != first.endpoint

    os.kill(second.pid, signal.SIGKILL)  # the proxy's process dies: no Chromium is left without it
    assert _gone(lambda: _endpoint_alive(second.endpoint, timeout=0.5))

    third = browser_mod.ensure_host_browser()
    assert third.alive()
    assert third.endpoint not in {first.endpoint, second.endpoint}


def test_a_webhook_name_that_does_not_resolve_is_retried_not_given_up(settings):
    settings.TWIN_ALLOW_PRIVATE_URLS = False

    outcome = transport.post("http://nowhere.invalid/hook", b"{}", {"webhook-id": "msg_n"})

    assert not outcome.ok and not outcome.permanent, outcome
    assert "does not resolve" in outcome.error
