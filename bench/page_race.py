"""Do two worker processes opening run pages at the same time each get their own page?

Each of two processes (like two Celery prefork children) opens N pages on the host Chromium at once
with the product's ``engine.browser.session().new_page()``, which returns (page, context_id, target_id),
then asks CDP which target the returned ``page`` really is. A page whose target id is not the one
returned belongs to the *other* process's run: that run's context, cookies and storage.

For comparison, the same with a candidate fix (not in the product): the target is created at a unique
``about:blank#twin-<nonce>`` URL and ``expect_page`` waits for the page showing that URL.

Usage:  .venv/bin/python bench/page_race.py [--pages N]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import command_line, loadavg, table

MODES = {
    "twin": "engine.browser new_page() (the product today)",
    "marker": "candidate fix: unique about:blank#nonce + expect_page(predicate=url)",
}


def target_id_of(page: Any) -> str:
    session = page.context.new_cdp_session(page)
    try:
        return str(session.send("Target.getTargetInfo")["targetInfo"]["targetId"])
    finally:
        session.detach()


def new_page_marker(session: Any) -> tuple[Any, str, str]:
    browser = session.browser()
    context_id = session.cdp("Target.createBrowserContext", {"disposeOnDetach": False})["browserContextId"]
    marker = f"about:blank#twin-{uuid.uuid4().hex}"
    with browser.contexts[0].expect_page(predicate=lambda page: page.url == marker) as page_info:
        target_id = session.cdp("Target.createTarget", {"url": marker, "browserContextId": context_id})[
            "targetId"
        ]
    return page_info.value, context_id, target_id


def child(mode: str, pages: int, start_at: float, results: Any) -> None:
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from engine.browser import session

    browser_session = session()
    browser_session.browser()  # connect before the start line: only page creation overlaps
    while time.time() < start_at:
        time.sleep(0.005)
    wrong, seconds, contexts = 0, [], []
    for _ in range(pages):
        started = time.perf_counter()
        if mode == "twin":
            page, context_id, target_id = browser_session.new_page()
        else:
            page, context_id, target_id = new_page_marker(browser_session)
        seconds.append(time.perf_counter() - started)
        contexts.append(context_id)
        try:
            wrong += target_id_of(page) != target_id
        except Exception:  # the page was the other process's and is gone already: wrong all the same
            wrong += 1
    for context_id in contexts:
        browser_session.close_context(context_id)
    browser_session.close()
    results.put((wrong, statistics.median(seconds)))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pages", type=int, default=20, help="pages each of the two processes opens (default 20)"
    )
    args = parser.parse_args()
    load_start = loadavg()
    with tempfile.TemporaryDirectory(prefix="twin-race-") as var_dir:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="twin_site.settings",
            TWIN_VAR_DIR=var_dir,
            TWIN_HOST_ID="race",
            DATABASE_URL=f"sqlite:///{var_dir}/unused.sqlite3",
        )
        import django

        django.setup()
        from engine.browser import ensure_host_browser, stop_host_browser

        rows = []
        try:
            ensure_host_browser()
            forked = multiprocessing.get_context("fork")
            for mode, label in MODES.items():
                results = forked.Queue()
                start_at = time.time() + 3.0
                procs = [
                    forked.Process(target=child, args=(mode, args.pages, start_at, results)) for _ in range(2)
                ]
                for proc in procs:
                    proc.start()
                got = [results.get(timeout=300) for _ in procs]
                for proc in procs:
                    proc.join(timeout=30)
                wrong = sum(w for w, _ in got)
                rows.append(
                    [
                        label,
                        f"{wrong} of {2 * args.pages}",
                        f"{statistics.median(s for _, s in got) * 1000:.0f}",
                    ]
                )
        finally:
            with contextlib.suppress(Exception):
                stop_host_browser()
    print("== Twin check: two processes opening run pages at the same time ==")
    print(f"command: {command_line()}")
    print(f"machine: {os.cpu_count()} cores, load average at start: {load_start}")
    print()
    print(table(["new_page", "pages that are another run's", "median ms per page"], rows))
    print()
    print(f"load average at end: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
