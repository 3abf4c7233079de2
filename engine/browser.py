"""The worker host's Chromium, and this process's connection to it.

One Chromium per worker host, behind the host's egress proxy (``engine.egress``, which launches
it as its child and refuses the addresses ``engine.netguard`` refuses), started detached (its own
session) so both outlive the worker process that launched them; any process on the host reconnects over CDP on
loopback. Each run gets its own browser context, created over raw CDP with
``disposeOnDetach: false`` so it survives disconnects: runs never share cookies,
storage or pages (docs/decisions.md has the memory figures behind this choice).

Playwright lists the pages of such contexts under ``browser.contexts[0]``, so
context-level Playwright calls would act on the wrong context: cookies go through CDP's
``Storage`` domain with the run's ``browserContextId`` instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import inspect
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from .bridge import Loop, impl, wrap

log = logging.getLogger(__name__)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    # Chromium calls home (update.googleapis.com, accounts.google.com, the optimization guide, safe
    # browsing, ...) despite --disable-background-networking alone: switch off what we found it
    # asking the egress proxy for (docs/security.md); whatever remains is refused there anyway.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-component-extensions-with-background-pages",
    "--disable-client-side-phishing-detection",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--no-pings",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--safebrowsing-disable-auto-update",
    "--disable-features="
    + ",".join(
        [
            "OptimizationHints",
            "OptimizationHintsFetching",
            "OptimizationGuideModelDownloading",
            "OptimizationTargetPrediction",
            "Translate",
            "MediaRouter",
            "DialMediaRouteProvider",
            "AutofillServerCommunication",
            "CertificateTransparencyComponentUpdater",
            "NetworkTimeServiceQuerying",
            "InterestFeedContentSuggestions",
            "SafeBrowsingEnhancedProtection",
            "PrivacySandboxSettings4",
            # A run visits the URL its program names: no silent https:// attempt first.
            "HttpsUpgrades",
        ]
    ),
    # The two that survive every switch above (sign-in's accounts.google.com and the component
    # updater's update.googleapis.com) read their server from these: point them at nowhere.
    "--gaia-url=http://0.0.0.0:9",
    "--lso-url=http://0.0.0.0:9",
    "--google-apis-url=http://0.0.0.0:9",
    "--component-updater=url-source=http://0.0.0.0:9",
]
# Every connection goes through the host's egress proxy, loopback and link-local included
# (Chromium bypasses a proxy for those unless told <-loopback>), and WebRTC may not send UDP
# around it. The --proxy-server flag itself is added by engine.egress, which owns the port.
EGRESS_FLAGS = [
    "--proxy-bypass-list=<-loopback>",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
]


def chromium_path() -> str:
    if settings.TWIN_CHROMIUM:
        return str(settings.TWIN_CHROMIUM)
    managed = sorted(Path.home().glob(".cache/ms-playwright/chromium-*/chrome-linux/chrome"))
    if managed:
        return str(managed[-1])
    found = shutil.which("chromium") or "/usr/bin/chromium"
    return found


def host_dir() -> Path:
    path = Path(settings.VAR_DIR) / "hosts" / settings.TWIN_HOST_ID
    path.mkdir(parents=True, exist_ok=True)
    return path


# Loopback checks never go through a *_proxy environment variable.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _endpoint_alive(endpoint: str, timeout: float = 1.0) -> bool:
    try:
        with _direct.open(f"{endpoint}/json/version", timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _proxy_alive(port: int, timeout: float = 2.0) -> bool:
    from .egress import HEALTH_PATH

    if not port:
        return False
    try:
        with _direct.open(f"http://127.0.0.1:{port}{HEALTH_PATH}", timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class HostBrowser:
    """The host process (``engine.egress``: the egress proxy, Chromium its child) as recorded in
    ``browser.json``. ``pid`` leads the process group that holds both."""

    pid: int
    endpoint: str
    user_data_dir: str
    proxy_port: int = 0
    chromium_pid: int = 0

    def alive(self) -> bool:
        # Both or neither: a Chromium without its proxy reaches nothing, a proxy without its
        # Chromium is a stray.
        return _endpoint_alive(self.endpoint) and _proxy_alive(self.proxy_port)


def _read_state() -> HostBrowser | None:
    try:
        data = json.loads((host_dir() / "browser.json").read_text())
        known = {k: v for k, v in data.items() if k in HostBrowser.__dataclass_fields__}
        return HostBrowser(**known)
    except (OSError, ValueError, TypeError):
        return None


def ensure_host_browser() -> HostBrowser:
    """The host's Chromium and its egress proxy, launched together unless both answer already."""
    state = _read_state()
    if state and state.alive():
        return state
    with open(host_dir() / "browser.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = _read_state()  # another process may have launched it while we waited
        if state and state.alive():
            return state
        if state:
            _terminate(state)
        state = _launch()
        (host_dir() / "browser.json").write_text(json.dumps(state.__dict__))
        return state


def _launch() -> HostBrowser:
    from .netguard import base_policy

    user_data_dir = tempfile.mkdtemp(prefix="twin-chromium-", dir=host_dir())
    ready_file = Path(user_data_dir).with_suffix(".ready")
    width, height = settings.TWIN_VIEWPORT
    chromium = [
        chromium_path(),
        *CHROMIUM_FLAGS,
        *EGRESS_FLAGS,
        f"--user-data-dir={user_data_dir}",
        f"--window-size={width},{height}",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "about:blank",
    ]
    command = [
        sys.executable,
        "-m",
        "engine.egress",
        "--policy",
        base_policy().to_json(),
        "--ready-file",
        str(ready_file),
        "--user-data-dir",
        user_data_dir,
        "--log-file",
        str(host_dir() / "egress.log"),
        "--",
        *chromium,
    ]
    # Its own session and process group: a worker or web process that dies or restarts does not
    # take the host browser (every parked page) and its proxy down with it.
    with open(host_dir() / "egress.stderr", "wb") as stderr:  # a crash of the host process, if any
        process = subprocess.Popen(
            command,
            cwd=str(Path(__file__).resolve().parent.parent),
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the host browser ({chromium[0]} behind engine.egress) exited at start with code "
                f"{process.returncode}; see {host_dir() / 'egress.stderr'} and egress.log"
            )
        with contextlib.suppress(OSError, ValueError, KeyError):
            ready = json.loads(ready_file.read_text())
            endpoint = f"http://127.0.0.1:{int(ready['devtools_port'])}"
            state = HostBrowser(
                pid=process.pid,
                endpoint=endpoint,
                user_data_dir=user_data_dir,
                proxy_port=int(ready["proxy_port"]),
                chromium_pid=int(ready["chromium_pid"]),
            )
            if _endpoint_alive(endpoint, timeout=0.5):
                log.info(
                    "launched Chromium pid %s on %s behind the egress proxy on port %s",
                    state.chromium_pid,
                    endpoint,
                    state.proxy_port,
                )
                return state
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError(f"Chromium ({chromium[0]}) did not open its debugging port within 25 s")


def _terminate(state: HostBrowser) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(state.pid, signal.SIGTERM)
    for _ in range(50):
        if not _endpoint_alive(state.endpoint, timeout=0.2) and not _proxy_alive(
            state.proxy_port, timeout=0.2
        ):
            break
        time.sleep(0.1)
    shutil.rmtree(state.user_data_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        Path(state.user_data_dir).with_suffix(".ready").unlink()


def stop_host_browser() -> bool:
    """Stop this host's Chromium and its egress proxy (every parked page with them). True when
    one was running."""
    state = _read_state()
    if state is None:
        return False
    _terminate(state)
    with contextlib.suppress(OSError):
        (host_dir() / "browser.json").unlink()
    return True


def no_proxy(connect: Callable[..., Any]) -> dict[str, Any]:
    """Options for a websockets ``connect`` to Chromium's CDP: never through a proxy (it is on
    this host; websockets >= 15 honours the *_proxy variables)."""
    return {"proxy": None} if "proxy" in inspect.signature(connect).parameters else {}


def page_ws_url(target_id: str) -> str | None:
    """The CDP websocket of one page of this host's Chromium (any process on the host may use it).

    None when this host has no Chromium on record or the id is not a CDP target id. Nothing is
    launched or checked here: a dead browser shows as a refused connection.
    """
    state = _read_state()
    if state is None or not target_id or not target_id.isalnum():
        return None
    return state.endpoint.replace("http://", "ws://", 1) + f"/devtools/page/{target_id}"


class BrowserSession:
    """This process's Playwright connection to the host browser (kept across tasks), shared by its
    threads: Playwright's async API on one loop thread (engine.bridge), so the threads of a worker
    process drive many runs at once over one driver and one CDP connection."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._loop: Loop | None = None
        self._playwright: Any = None
        self._browser: Any = None
        self._cdp: Any = None
        self._endpoint = ""
        self._pages: dict[str, Any] = {}

    # -- connection -------------------------------------------------------------------------
    def browser(self) -> Any:
        browser = self._browser
        if browser is not None and browser.is_connected():
            return browser
        with self._lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            if self._loop is None or not self._loop.alive():
                self._loop, self._playwright = Loop(), None
            loop = self._loop
            if self._playwright is None:
                from playwright.async_api import async_playwright

                self._playwright = wrap(loop.run(lambda: async_playwright().start()), loop)
            host = ensure_host_browser()
            self._endpoint = host.endpoint
            self._pages.clear()
            browser = self._playwright.chromium.connect_over_cdp(host.endpoint)
            self._cdp = browser.new_browser_cdp_session()
            self._browser = browser
            return browser

    def check(self) -> None:
        """Make sure the connection is live: a dead browser only shows on a call."""
        browser = self._browser
        if browser is not None:
            try:
                self._cdp.send("Browser.getVersion")
            except Exception:
                with self._lock:
                    if self._browser is browser:  # (no other thread reconnected meanwhile)
                        log.warning("the host browser went away; reconnecting")
                        with contextlib.suppress(Exception):
                            browser.close()
                        self._browser = None
                        self._pages.clear()
        self.browser()

    def cdp(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.browser()
        return self._cdp.send(method, params or {})

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(Exception):
                if self._browser is not None:
                    self._browser.close()
            with contextlib.suppress(Exception):
                if self._playwright is not None:
                    self._playwright.stop()
            if self._loop is not None:
                self._loop.stop()
            self._browser = self._playwright = self._cdp = self._loop = None
            self._pages.clear()

    # -- pages --------------------------------------------------------------------------------
    def new_page(self) -> tuple[Any, str, str]:
        """A page in a fresh, isolated browser context: (page, context_id, target_id)."""
        browser = self.browser()
        context_id = self.cdp("Target.createBrowserContext", {"disposeOnDetach": False})["browserContextId"]
        # Every process connected to the host browser sees every new page: wait for *ours*, known by
        # a URL no other page has (another worker creating a page at the same moment must not win).
        marker = f"about:blank#twin-{uuid.uuid4().hex}"
        with browser.contexts[0].expect_page(lambda candidate: candidate.url == marker) as page_info:
            target_id = self.cdp("Target.createTarget", {"url": marker, "browserContextId": context_id})[
                "targetId"
            ]
        page = page_info.value
        with self._lock:
            self._pages[target_id] = page
        return page, context_id, target_id

    def find_page(self, target_id: str) -> Any | None:
        """The live page with this CDP target id, or None when it is gone."""
        if not target_id:
            return None
        browser = self.browser()
        with self._lock:
            page = self._pages.get(target_id)
            known = {id(p) for p in self._pages.values()}
        if page is not None and not page.is_closed():
            return page
        for context in browser.contexts:
            for candidate in context.pages:
                if id(candidate) in known or candidate.is_closed():
                    continue
                with contextlib.suppress(Exception):
                    session = context.new_cdp_session(candidate)
                    info = session.send("Target.getTargetInfo")["targetInfo"]
                    session.detach()
                    with self._lock:
                        self._pages[info["targetId"]] = candidate
                    if info["targetId"] == target_id:
                        return candidate
        return None

    def close_context(self, context_id: str) -> None:
        if not context_id:
            return
        with contextlib.suppress(Exception):
            self.cdp("Target.disposeBrowserContext", {"browserContextId": context_id})
        with self._lock:
            pages = list(self._pages.items())
        gone = {target for target, page in pages if page.is_closed()}
        with self._lock:
            for target in gone:
                self._pages.pop(target, None)

    def context_ids(self) -> set[str]:
        return set(self.cdp("Target.getBrowserContexts").get("browserContextIds", []))

    # -- checkpoints --------------------------------------------------------------------------
    def capture(self, page: Any, context_id: str) -> dict[str, Any]:
        """What a restore needs: URL, cookies, and the page origin's local + session storage."""
        state: dict[str, Any] | None = self.look_soon(page, context_id, capture=True).result()["state"]
        if state is None:
            raise RuntimeError("the page's cookies could not be read")
        return state

    def look_soon(
        self, page: Any, context_id: str, page_cdp: Any = None, *, capture: bool
    ) -> concurrent.futures.Future[dict[str, Any]]:
        """The page's document id (over ``page_cdp``, a CDP session on it, if given) and, if
        ``capture``, what a restore needs (:meth:`capture`): all at once on the loop, started now,
        while the caller goes on (its bookkeeping). The answer: ``{"document": id or "", "state":
        the capture, or None when not asked for or the cookies could not be read}``; the storage
        of a page that cannot run script is left empty."""
        from .restore import loader_id

        self.browser()
        assert self._loop is not None
        cdp, target, on_page = impl(self._cdp), impl(page), impl(page_cdp)

        async def nothing() -> None:
            return None

        async def look() -> dict[str, Any]:
            url = target.url
            answers: tuple[Any, ...] = await asyncio.gather(
                on_page.send("Page.getFrameTree") if on_page is not None else nothing(),
                cdp.send("Storage.getCookies", {"browserContextId": context_id}) if capture else nothing(),
                target.evaluate(_CAPTURE_STORAGE_JS) if capture else nothing(),
                return_exceptions=True,
            )
            tree, cookies, storage = answers
            document = ""
            if isinstance(tree, dict):
                with contextlib.suppress(Exception):
                    document = loader_id(tree)
            state = None
            if isinstance(cookies, dict):
                storage = storage if isinstance(storage, dict) else {}
                state = {"url": url, "cookies": cookies.get("cookies", []), "storage": storage}
            return {"document": document, "state": state}

        return self._loop.submit(look)

    def restore(self, checkpoint: dict[str, Any], *, timeout_ms: float) -> tuple[Any, str, str]:
        page, context_id, target_id = self.new_page()
        cookies = [_cookie_param(c) for c in checkpoint.get("cookies", [])]
        if cookies:
            self.cdp("Storage.setCookies", {"cookies": cookies, "browserContextId": context_id})
        storage = checkpoint.get("storage") or {}
        url = checkpoint.get("url") or "about:blank"
        if url.startswith(("http://", "https://")):
            session = page.context.new_cdp_session(page)
            session.send("Page.enable")
            script_id = None
            if storage.get("origin"):
                source = _RESTORE_STORAGE_JS % json.dumps(storage)
                script_id = session.send("Page.addScriptToEvaluateOnNewDocument", {"source": source})[
                    "identifier"
                ]
            try:
                page.goto(url, timeout=timeout_ms, wait_until="load")
            finally:
                if script_id is not None:
                    with contextlib.suppress(Exception):
                        session.send("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script_id})
                with contextlib.suppress(Exception):
                    session.detach()
        return page, context_id, target_id


_CAPTURE_STORAGE_JS = """() => {
  const dump = (s) => {
    const o = {};
    for (let i = 0; i < s.length; i++) { const k = s.key(i); o[k] = s.getItem(k); }
    return o;
  };
  try { return {origin: location.origin, local: dump(localStorage), session: dump(sessionStorage)}; }
  catch (e) { return {}; }
}"""

_RESTORE_STORAGE_JS = """(() => {
  const saved = %s;
  if (location.origin !== saved.origin) return;
  try {
    for (const [k, v] of Object.entries(saved.local || {})) localStorage.setItem(k, v);
    for (const [k, v] of Object.entries(saved.session || {})) sessionStorage.setItem(k, v);
  } catch (e) {}
})();"""

_COOKIE_FIELDS = (
    "name",
    "value",
    "domain",
    "path",
    "secure",
    "httpOnly",
    "sameSite",
    "priority",
    "sourceScheme",
    "sourcePort",
)


def _cookie_param(cookie: dict[str, Any]) -> dict[str, Any]:
    param = {k: cookie[k] for k in _COOKIE_FIELDS if k in cookie}
    if not cookie.get("session") and cookie.get("expires", -1) > 0:
        param["expires"] = cookie["expires"]
    return param


_session: BrowserSession | None = None
_session_lock = threading.Lock()


def session() -> BrowserSession:
    """This process's browser session, shared by its threads (a forked child starts its own)."""
    global _session
    current = _session
    if current is not None and current._pid == os.getpid():
        return current
    with _session_lock:
        if _session is None or _session._pid != os.getpid():
            _session = BrowserSession()
        return _session
