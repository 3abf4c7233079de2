"""How many runs one worker process can drive at once, three ways (issue 14's design question).

Plain Playwright (no Twin), one Chromium, each "run" a fresh browser context doing 6 steps
against pages that answer after ``--latency`` ms (a local server, as a slow site would):

* ``sync-1``   — one sync Playwright driver, runs one after another (today: one run per
  worker process, 2 processes a host);
* ``threads``  — ``--concurrency`` threads, each its own sync Playwright driver (a node process);
* ``async``    — one asyncio loop, one async Playwright driver, ``--concurrency`` runs at once;
* ``pages``    — as ``async``, every run a new page of one shared context (what the context
  per run costs; Twin never shares one between runs);
* ``2browsers`` — as ``async``, the runs shared between two Chromiums (is one browser process
  the bottleneck?).

Prints runs/minute, p95 seconds per run, CPU seconds per run (this process and its children:
drivers, Chromium) and the peak RSS of the drivers and Chromium. Nothing is downloaded; traffic
stays on 127.0.0.1.

    .venv/bin/python bench/concurrency_spike.py --runs 40 --concurrency 8 --latency 300
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psutil

CHROMIUM = os.environ.get("TWIN_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class SlowSite:
    """Pages on 127.0.0.1 that answer after ``latency`` ms: a form, its result."""

    def __init__(self, latency_ms: int) -> None:
        delay = latency_ms / 1000

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def handle(self) -> None:
                # (a context closed while a request of its was answered: not the benchmark's concern)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    super().handle()

            def _page(self, body: str) -> None:
                time.sleep(delay)
                data = f"<!doctype html><title>t</title><body>{body}</body>".encode()
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._page(
                    '<form method="post" action="/done"><input id="q" name="q">'
                    '<button id="go" type="submit">Go</button></form>'
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self._page('<p id="done">Done</p>')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


def sync_run(browser: Any, url: str) -> float:
    """6 steps: goto, fill, click (a navigation), wait_for, read, goto again."""
    started = time.perf_counter()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url)
        page.fill("#q", "hello")
        page.click("#go")
        page.wait_for_selector("#done")
        page.inner_text("#done")
        page.goto(url)
    finally:
        context.close()
    return time.perf_counter() - started


async def async_run(browser: Any, url: str, shared: Any = None) -> float:
    """The same 6 steps; in a context of its own, or in a new page of ``shared``."""
    started = time.perf_counter()
    context = shared or await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(url)
        await page.fill("#q", "hello")
        await page.click("#go")
        await page.wait_for_selector("#done")
        await page.inner_text("#done")
        await page.goto(url)
    finally:
        await (page.close() if shared else context.close())
    return time.perf_counter() - started


class Meter:
    """CPU seconds and peak RSS of this process and everything under it."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _tree(self) -> list[psutil.Process]:
        return [self.me, *self.me.children(recursive=True)]

    def cpu(self) -> float:
        """This process, its children that ended (drivers, and through them Chromium) and the
        ones still running."""
        mine = self.me.cpu_times()
        total = mine.user + mine.system + mine.children_user + mine.children_system
        for proc in self.me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            rss = 0
            for proc in self._tree()[1:]:
                with contextlib.suppress(psutil.Error):
                    rss += proc.memory_info().rss
            self.peak_rss = max(self.peak_rss, rss)

    def __enter__(self) -> Meter:
        self.cpu0 = self.cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_used = self.cpu() - self.cpu0
        self._stop.set()


def launch_args() -> dict[str, Any]:
    # (Playwright gives a launched browser a fresh profile of its own)
    return {"executable_path": CHROMIUM, "args": FLAGS, "headless": True}


def mode_sync_1(runs: int, concurrency: int, url: str) -> list[float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(**launch_args())
        try:
            return [sync_run(browser, url) for _ in range(runs)]
        finally:
            browser.close()


def mode_threads(runs: int, concurrency: int, url: str) -> list[float]:
    """One Chromium (over CDP), one sync driver per thread, each thread its share of the runs."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    with tempfile.TemporaryDirectory() as profile, open(os.devnull, "wb") as null:
        chromium = psutil.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={port}"],
            stdout=null,
            stderr=null,
        )
        try:
            _wait_devtools(port)
            durations: list[float] = []
            lock = threading.Lock()

            def share(first: int) -> None:
                with sync_playwright() as pw:
                    browser = pw.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
                    mine = [sync_run(browser, url) for _ in range(first, runs, concurrency)]
                with lock:
                    durations.extend(mine)

            threads = [threading.Thread(target=share, args=(i,)) for i in range(concurrency)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return durations
        finally:
            chromium.terminate()
            chromium.wait(10)


def mode_async(
    runs: int, concurrency: int, url: str, *, share_context: bool = False, browsers: int = 1
) -> list[float]:
    from playwright.async_api import async_playwright

    async def main() -> list[float]:
        async with async_playwright() as pw:
            launched = [await pw.chromium.launch(**launch_args()) for _ in range(browsers)]
            shared = await launched[0].new_context() if share_context else None
            gate = asyncio.Semaphore(concurrency)

            async def one(n: int) -> float:
                async with gate:
                    return await async_run(launched[n % browsers], url, shared)

            try:
                return list(await asyncio.gather(*(one(n) for n in range(runs))))
            finally:
                for browser in launched:
                    await browser.close()

    return asyncio.run(main())


def mode_async_two_browsers(runs: int, concurrency: int, url: str) -> list[float]:
    """As ``async``, the runs shared between two Chromiums (two browser processes)."""
    return mode_async(runs, concurrency, url, browsers=2)


def mode_async_pages(runs: int, concurrency: int, url: str) -> list[float]:
    """As ``async``, but every run a page of one shared context (what a context per run costs)."""
    return mode_async(runs, concurrency, url, share_context=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_devtools(port: int) -> None:
    import urllib.request

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("chromium's DevTools did not answer")


MODES: dict[str, Callable[[int, int, str], list[float]]] = {
    "sync-1": mode_sync_1,
    "threads": mode_threads,
    "async": mode_async,
    "pages": mode_async_pages,
    "2browsers": mode_async_two_browsers,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=int, default=300, help="ms each page takes to answer")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--flags", default="", help="more Chromium flags, space-separated")
    args = parser.parse_args()
    FLAGS.extend(args.flags.split())
    site = SlowSite(args.latency)
    print(
        f"{args.runs} runs of 6 steps, pages answering after {args.latency} ms, "
        f"concurrency {args.concurrency}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'mode':<8} {'runs/min':>9} {'p95 s/run':>10} {'CPU s/run':>10} {'peak RSS MB':>12}")
    try:
        for mode in args.modes.split(","):
            with Meter() as meter:
                started = time.perf_counter()
                durations = MODES[mode](args.runs, args.concurrency, site.url)
                wall = time.perf_counter() - started
            p95 = statistics.quantiles(durations, n=20)[-1] if len(durations) >= 2 else durations[0]
            print(
                f"{mode:<8} {args.runs / wall * 60:>9.1f} {p95:>10.2f} "
                f"{meter.cpu_used / args.runs:>10.2f} {meter.peak_rss / 2**20:>12.0f}"
            )
    finally:
        site.stop()


if __name__ == "__main__":
    main()
