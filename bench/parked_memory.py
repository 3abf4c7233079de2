"""Memory and latency of keeping paused runs' pages alive ("parked") in Chromium.

Compares two ways of parking N paused runs so that they never share cookies/storage:

  A  one Chromium process per run (fresh --user-data-dir, one page each);
  B  one shared Chromium, one isolated browser context per run created over raw CDP
     (Target.createBrowserContext with disposeOnDetach=False + Target.createTarget), so the
     context and its page outlive the controlling client's connection.

For each option it parks N pages, disconnects the controlling client, then measures the PSS of
the Chromium process tree(s), and times how long a fresh OS process needs to reconnect to a
parked page and read a JS variable from it. For B it also checks cookie/localStorage isolation.

Usage:  .venv/bin/python bench/parked_memory.py [--runs N] [--page URL]
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import psutil
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

CHROMIUM = "/usr/bin/chromium"
MIB = 1024 * 1024

PAGE_HTML = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Parked run {run}</title></head>
<body>
<h1>Parked run {run}</h1>
<p>This page stands in for a form a browser-automation run has half filled in when it pauses
(for example to wait for a human approval). The run is resumed later by a different worker,
which must find this exact page again, still alive, with its in-memory state intact.</p>
<form id="f">
  <label>Name <input id="name" name="name"></label>
  <label>Email <input id="email" name="email" type="email"></label>
  <label>Plan <select id="plan" name="plan"><option>free</option><option>pro</option></select></label>
  <textarea id="notes" name="notes" rows="3" cols="40"></textarea>
  <button type="submit">Submit</button>
</form>
<ul id="items"></ul>
<script>
  const run = new URLSearchParams(location.search).get("run");
  window.parkedState = {{run: run, loadedAt: Date.now(), submits: 0}};
  window.prevLastRun = localStorage.getItem("lastRun");
  localStorage.setItem("lastRun", String(run));
  document.getElementById("f").addEventListener("submit", (e) => {{
    e.preventDefault();
    window.parkedState.submits += 1;
  }});
  const ul = document.getElementById("items");
  for (let i = 0; i < 20; i++) {{
    const li = document.createElement("li");
    li.textContent = "item " + i + " of run " + run;
    ul.appendChild(li);
  }}
</script>
</body>
</html>
"""


# --------------------------------------------------------------------------------------------
# helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path != "/":  # e.g. /favicon.ico
            self.send_error(404)
            return
        run = parse_qs(url.query).get("run", ["none"])[0]
        body = PAGE_HTML.format(run=run).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Set-Cookie", f"srv_run={run}; Path=/; Max-Age=3600")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def local_page_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def run_url(base: str, run: int, local: bool) -> str:
    return f"{base}?run={run}" if local else base


@dataclass
class Mem:
    bytes: int
    nprocs: int
    pss: bool  # False when we had to fall back to RSS for at least one process


def measure_procs(procs: list[psutil.Process]) -> Mem:
    total, n, pss_ok = 0, 0, True
    for p in procs:
        try:
            info = p.memory_full_info()
            pss = getattr(info, "pss", None)
            if pss is None:
                pss_ok = False
                total += info.rss
            else:
                total += pss
            n += 1
        except psutil.AccessDenied:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
                n += 1
            pss_ok = False
        except psutil.NoSuchProcess:
            pass
    return Mem(total, n, pss_ok)


def foreign_chromium(browsers: list[Chromium]) -> int:
    ours = {p.pid for b in browsers for p in b.procs()}
    n = 0
    for p in psutil.process_iter(["name"]):
        if (p.info.get("name") or "").startswith("chrom") and p.pid not in ours:
            n += 1
    return n


def crashpad_pids() -> set[int]:
    out: set[int] = set()
    for p in psutil.process_iter(["name"]):
        if (p.info.get("name") or "").startswith("chrome_crashpad"):
            out.add(p.pid)
    return out


# --------------------------------------------------------------------------------------------
# Chromium process management

_LIVE: list[Chromium] = []


@dataclass
class Chromium:
    label: str
    port: int = 0
    tmp: str = ""
    proc: subprocess.Popen[bytes] | None = None
    crashpad: list[int] = field(default_factory=list)  # handlers that appeared at our launch

    def start(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix=f"parked-{self.label}-")
        self.port = free_port()
        before = crashpad_pids()
        _LIVE.append(self)
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={self.tmp}",
                "--remote-debugging-address=127.0.0.1",
                f"--remote-debugging-port={self.port}",
                "about:blank",
            ],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_ready()
        # chrome_crashpad_handler double-forks out of the tree (ppid 1, own session), so it is not in
        # the process tree; remember the ones that appeared during our launch, for a side note only.
        with contextlib.suppress(psutil.Error):
            t_launch = psutil.Process(self.proc.pid).create_time()  # same clock as other create_time()s
            for pid in crashpad_pids() - before:
                with contextlib.suppress(psutil.Error):
                    if psutil.Process(pid).create_time() >= t_launch - 0.05:
                        self.crashpad.append(pid)

    def _wait_ready(self, timeout: float = 30.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/json/version"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium {self.label} exited early with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    data = json.load(resp)
                    # make sure the answer comes from *our* browser (ports are picked racily)
                    if data.get("webSocketDebuggerUrl"):
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"chromium {self.label} did not answer on port {self.port}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def procs(self) -> list[psutil.Process]:
        assert self.proc is not None
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def memory(self) -> Mem:
        return measure_procs(self.procs())

    def crashpad_memory(self) -> Mem:
        procs: list[psutil.Process] = []
        for pid in self.crashpad:
            with contextlib.suppress(psutil.Error):
                procs.append(psutil.Process(pid))
        return measure_procs(procs)

    def stop(self) -> None:
        """SIGTERM the browser pid (ends its children), then SIGKILL stragglers by pid; rm tmp."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                descendants = self.procs()[1:]
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
                _gone, alive = psutil.wait_procs(descendants, timeout=5)
                for p in alive:
                    with contextlib.suppress(psutil.Error):
                        p.kill()
                psutil.wait_procs(alive, timeout=5)
        finally:
            if self.tmp:
                shutil.rmtree(self.tmp, ignore_errors=True)
            if self in _LIVE:
                _LIVE.remove(self)


def stop_all() -> None:
    for c in list(_LIVE):
        with contextlib.suppress(Exception):
            c.stop()


def settle_and_measure(browsers: list[Chromium], settle: float, samples: int = 3) -> Mem:
    """Median (by bytes) of a few samples of the summed tree PSS, after letting things settle."""
    time.sleep(settle)
    results: list[Mem] = []
    for i in range(samples):
        if i:
            time.sleep(1.0)
        ms = [b.memory() for b in browsers]
        results.append(Mem(sum(m.bytes for m in ms), sum(m.nprocs for m in ms), all(m.pss for m in ms)))
    results.sort(key=lambda m: m.bytes)
    return results[len(results) // 2]


# --------------------------------------------------------------------------------------------
# reconnect, done in a *fresh OS process* (this same file in child mode)


def target_id_of(page: Page) -> str:
    session = page.context.new_cdp_session(page)
    try:
        return str(session.send("Target.getTargetInfo")["targetInfo"]["targetId"])
    finally:
        session.detach()


def reconnect_child(endpoint: str, target_id: str) -> None:
    t0 = time.perf_counter()
    pw = sync_playwright().start()
    try:
        t1 = time.perf_counter()
        browser = pw.chromium.connect_over_cdp(endpoint)
        t2 = time.perf_counter()
        found: Page | None = None
        for ctx in browser.contexts:
            for page in ctx.pages:
                if target_id_of(page) == target_id:
                    found = page
                    break
            if found is not None:
                break
        t3 = time.perf_counter()
        value = found.evaluate("window.parkedToken") if found is not None else None
        t4 = time.perf_counter()
        npages = sum(len(c.pages) for c in browser.contexts)
        browser.close()  # over CDP this only disconnects; the parked page stays alive
        print(
            json.dumps(
                {
                    "found": found is not None,
                    "value": value,
                    "pw_start_ms": (t1 - t0) * 1e3,
                    "connect_ms": (t2 - t1) * 1e3,
                    "find_ms": (t3 - t2) * 1e3,
                    "read_ms": (t4 - t3) * 1e3,
                    "reconnect_ms": (t4 - t1) * 1e3,
                    "npages": npages,
                }
            )
        )
    finally:
        pw.stop()


@dataclass
class Reconnect:
    reconnect_ms: float
    pw_start_ms: float
    wall_ms: float
    npages: int


def reconnect_from_fresh_process(endpoint: str, target_id: str, token: str) -> Reconnect:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--reconnect-child", json.dumps([endpoint, target_id])],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    wall = (time.perf_counter() - t0) * 1e3
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if not res["found"]:
        raise RuntimeError(f"reconnect: target {target_id} not found at {endpoint}")
    if res["value"] != token:
        raise RuntimeError(f"reconnect: page state lost, got {res['value']!r}, want {token!r}")
    return Reconnect(res["reconnect_ms"], res["pw_start_ms"], wall, res["npages"])


# --------------------------------------------------------------------------------------------
# the two options


@dataclass
class Parked:
    endpoint: str
    target_id: str
    token: str


@dataclass
class Result:
    name: str
    total: Mem
    baseline: Mem
    per_page_bytes: float
    park_ms: list[float]
    reconnect: list[Reconnect]
    crashpad: Mem
    notes: list[str] = field(default_factory=list)
    foreign: int = 0  # other chromium processes on the host at measurement time


def dirty_page(page: Page, token: str) -> None:
    """Simulate the work a run did before pausing: fill the form, leave state in JS memory."""
    if page.locator("#name").count():
        page.fill("#name", f"name-{token}")
        page.fill("#email", f"{token}@example.test")
        page.fill("#notes", "half-done " * 20)
        page.click("button[type=submit]")
    page.evaluate("t => { window.parkedToken = t; }", token)


def option_a(pw: Playwright, base: str, local: bool, n: int, settle: float) -> Result:
    # Baseline: per-process cost of an idle Chromium (about:blank, never connected to).
    idle = Chromium("A-idle")
    try:
        idle.start()
        baseline = settle_and_measure([idle], settle)
    finally:
        idle.stop()

    browsers: list[Chromium] = []
    parked: list[Parked] = []
    park_ms: list[float] = []
    try:
        for i in range(n):
            token = f"A-{i}-{os.urandom(4).hex()}"
            t0 = time.perf_counter()
            c = Chromium(f"A{i}")
            browsers.append(c)
            c.start()
            browser: Browser = pw.chromium.connect_over_cdp(c.endpoint)
            page = browser.contexts[0].pages[0]
            page.goto(run_url(base, i, local), wait_until="load")
            park_ms.append((time.perf_counter() - t0) * 1e3)
            dirty_page(page, token)
            parked.append(Parked(c.endpoint, target_id_of(page), token))
            browser.close()  # disconnect the controlling client; the run is now parked
        total = settle_and_measure(browsers, settle)
        crashpad = measure_procs([p for b in browsers for p in _procs_of(b.crashpad)])
        ours_crashpad = {pid for b in browsers for pid in b.crashpad}
        foreign = foreign_chromium(browsers) - len(crashpad_pids() & ours_crashpad)
        reconnect = [reconnect_from_fresh_process(p.endpoint, p.target_id, p.token) for p in parked]
    finally:
        for c in browsers:
            c.stop()
    return Result(
        "A: process per run", total, baseline, total.bytes / n, park_ms, reconnect, crashpad, [], foreign
    )


def _procs_of(pids: list[int]) -> list[psutil.Process]:
    out: list[psutil.Process] = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            out.append(psutil.Process(pid))
    return out


def option_b(pw: Playwright, base: str, local: bool, n: int, settle: float) -> Result:
    shared = Chromium("B")
    try:
        shared.start()
        baseline = settle_and_measure([shared], settle)  # zero parked runs, no client attached

        browser = pw.chromium.connect_over_cdp(shared.endpoint)
        cdp = browser.new_browser_cdp_session()
        parked: list[Parked] = []
        pages: list[Page] = []
        contexts: list[str] = []
        park_ms: list[float] = []
        for i in range(n):
            token = f"B-{i}-{os.urandom(4).hex()}"
            t0 = time.perf_counter()
            ctx = cdp.send("Target.createBrowserContext", {"disposeOnDetach": False})
            ctx_id = str(ctx["browserContextId"])
            with browser.contexts[0].expect_page() as page_info:
                created = cdp.send("Target.createTarget", {"url": "about:blank", "browserContextId": ctx_id})
            page = page_info.value
            page.goto(run_url(base, i, local), wait_until="load")
            park_ms.append((time.perf_counter() - t0) * 1e3)
            target_id = target_id_of(page)
            if target_id != created["targetId"]:
                raise RuntimeError(f"expect_page returned another page: {target_id} != {created['targetId']}")
            dirty_page(page, token)
            parked.append(Parked(shared.endpoint, target_id, token))
            pages.append(page)
            contexts.append(ctx_id)

        notes = [check_isolation(cdp, pages, contexts, local)]
        cdp.detach()
        browser.close()  # disconnect the controlling client; contexts survive (disposeOnDetach=False)

        total = settle_and_measure([shared], settle)
        crashpad = shared.crashpad_memory()
        foreign = foreign_chromium([shared]) - len(crashpad_pids() & set(shared.crashpad))
        reconnect = [reconnect_from_fresh_process(p.endpoint, p.target_id, p.token) for p in parked]
    finally:
        shared.stop()
    per_page = (total.bytes - baseline.bytes) / n
    return Result(
        "B: context per run", total, baseline, per_page, park_ms, reconnect, crashpad, notes, foreign
    )


def check_isolation(cdp: Any, pages: list[Page], contexts: list[str], local: bool) -> str:
    if len(pages) < 2:
        return "isolation: skipped (needs --runs >= 2)"
    pages[0].evaluate("document.cookie = 'isolation_probe=run1-secret; path=/; max-age=3600'")

    def names(ctx_id: str) -> set[str]:
        cookies = cdp.send("Storage.getCookies", {"browserContextId": ctx_id})["cookies"]
        return {f"{c['name']}={c['value']}" for c in cookies}

    run1, run2 = names(contexts[0]), names(contexts[1])
    default = {f"{c['name']}={c['value']}" for c in cdp.send("Storage.getCookies")["cookies"]}
    if "isolation_probe=run1-secret" not in run1:
        return f"isolation: INCONCLUSIVE (probe cookie not stored in run 1's context: {sorted(run1)})"
    problems: list[str] = []
    if any(c.startswith("isolation_probe=") for c in run2):
        problems.append(f"run 2 sees run 1's cookie: {sorted(run2)}")
    if any(c.startswith("isolation_probe=") for c in default):
        problems.append("default context sees run 1's cookie")
    if local:
        if run2 != {"srv_run=1"}:
            problems.append(f"run 2's cookies are {sorted(run2)}, want only srv_run=1")
        # every run wrote localStorage['lastRun'] on load; none may have seen another run's value
        leaked = [i for i, p in enumerate(pages) if p.evaluate("window.prevLastRun") is not None]
        if leaked:
            problems.append(f"localStorage shared, runs {leaked} saw a previous run's value")
    if problems:
        raise RuntimeError("isolation: FAILED: " + "; ".join(problems))
    return "isolation: ok"


# --------------------------------------------------------------------------------------------
# report


def mib(b: float) -> str:
    return f"{b / MIB:8.1f}"


def med(xs: list[float]) -> str:
    return f"{statistics.median(xs):7.0f}"


def report(n: int, url: str, a: Result, b: Result) -> None:
    pss = a.total.pss and a.baseline.pss and b.total.pss and b.baseline.pss
    unit = "PSS" if pss else "RSS (PSS unavailable for some processes: fell back to RSS)"
    print(f"parked pages per option: {n}   page: {url}   memory: {unit}, MiB, chromium process tree(s)")
    print()
    head = (
        f"{'option':<20} {'procs':>5} {'total':>8} {'baseline':>8} {'per page':>8} "
        f"{'park ms':>7} {'park max':>8} {'reconn ms':>9} {'rc max':>7} {'pw start':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in (a, b):
        rc = [x.reconnect_ms for x in r.reconnect]
        print(
            f"{r.name:<20} {r.total.nprocs:>5} {mib(r.total.bytes)} {mib(r.baseline.bytes)} "
            f"{mib(r.per_page_bytes)} "
            f"{med(r.park_ms)} {max(r.park_ms):8.0f} {statistics.median(rc):9.0f} {max(rc):7.0f} "
            f"{statistics.median(x.pw_start_ms for x in r.reconnect):8.0f}"
        )
    print()
    print("columns: total = summed tree memory with all N pages parked and no client connected;")
    print("  baseline = A: one idle Chromium (about:blank) = per-process cost; B: shared Chromium, 0 parked;")
    print("  per page = A: total/N; B: (total - baseline)/N;  park = median ms to park one page")
    print("  (A: launch + wait for /json/version + connect_over_cdp + goto; B: createBrowserContext +")
    print("  createTarget + goto, over an existing connection);  reconn = median ms, in a fresh OS process,")
    print("  connect_over_cdp + find the page by CDP target id + read window.parkedToken (checked);")
    print("  pw start = median ms for sync_playwright().start() in that process (not included in reconn).")
    print(
        f"pages the reconnecting client had to attach to and scan: A {a.reconnect[0].npages}, "
        f"B {b.reconnect[0].npages}"
    )
    print(
        "PSS splits shared pages (chromium binary, libs) among every process mapping them, so A's idle\n"
        "  baseline (measured alone) exceeds A's per-process share when N processes run side by side."
    )
    foreign = max(a.foreign, b.foreign)
    if foreign:
        print(
            f"caveat: {foreign} other Chromium processes (not started here) were running during the"
            " measurements;\n  they also share those pages, so all PSS figures are a little lower than on"
            " an otherwise idle host."
        )
    print(
        f"chrome_crashpad_handler (outside the tree, not in totals): A {a.crashpad.bytes / MIB:.1f} MiB "
        f"in {a.crashpad.nprocs} procs, B {b.crashpad.bytes / MIB:.1f} MiB in {b.crashpad.nprocs} procs"
    )
    for note in b.notes:
        print(note)
    print(f"ratio B/A of memory per parked page: {b.per_page_bytes / a.per_page_bytes:.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="parked pages per option (default 10)")
    ap.add_argument("--page", help="URL to park (default: a small page served locally)")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds to wait before measuring")
    ap.add_argument("--reconnect-child", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.reconnect_child:
        endpoint, target_id = json.loads(args.reconnect_child)
        reconnect_child(endpoint, target_id)
        return 0
    if args.runs < 1:
        ap.error("--runs must be >= 1")

    def on_term(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    t0 = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            if args.page:
                url, local = args.page, False
            else:
                url, local = stack.enter_context(local_page_server()), True
            pw = sync_playwright().start()
            stack.callback(pw.stop)
            a = option_a(pw, url, local, args.runs, args.settle)
            b = option_b(pw, url, local, args.runs, args.settle)
            report(args.runs, url if not local else "local test page", a, b)
    finally:
        stop_all()
    print(f"elapsed: {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
