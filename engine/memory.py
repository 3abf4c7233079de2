"""What the host browser's pages cost in memory, and the budget of the parked ones.

Each run has a browser context of its own, and Chromium never shares a renderer process between
contexts; the browser process keeps each context's state too. Chromium does not say which
renderer holds which page: a page's price is the whole Chromium's proportional set size (PSS:
shared memory split between its users; the browser, its helpers and every renderer) over the
open pages, measured from ``/proc`` (psutil) at most every 15 seconds. With few pages that
over-prices them (the browser's own memory is shared out among them); with many, it is what
each costs. Parked pages are kept within ``TWIN_PARKED_MEMORY_MB`` at that price each; past it
the least recently paused are closed (``page.evicted``), their runs restored from the checkpoint
and verified when someone answers (engine.executor.enforce_parking_budget).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

import psutil

from . import browser as browser_mod

MB = 1024 * 1024
FRESH_SECONDS = 15.0


@dataclass(frozen=True)
class PageMemory:
    renderers: int  # renderer processes of the host Chromium
    renderer_mb: float  # their PSS, in total
    chromium_mb: float  # the PSS of the whole Chromium: browser, helpers, renderers
    pages: int  # open pages (active runs' and parked ones)

    @property
    def per_page_mb(self) -> float:
        return self.chromium_mb / self.pages if self.pages else 0.0


def measure() -> PageMemory | None:
    """The host browser's pages and their renderers' memory now; None without a host browser."""
    state = browser_mod._read_state()
    if state is None or not state.chromium_pid:
        return None
    total = renderer_total = renderers = 0
    try:
        root = psutil.Process(state.chromium_pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    for process in processes:
        with contextlib.suppress(psutil.Error):
            pss = process.memory_full_info().pss
            total += pss
            if "--type=renderer" in process.cmdline():
                renderer_total += pss
                renderers += 1
    try:
        targets = browser_mod.session().cdp("Target.getTargets").get("targetInfos", [])
    except Exception:
        return None
    pages = sum(1 for target in targets if target.get("type") == "page")
    return PageMemory(
        renderers=renderers, renderer_mb=renderer_total / MB, chromium_mb=total / MB, pages=pages
    )


_last: tuple[float, PageMemory | None] = (0.0, None)
_lock = threading.Lock()


def page_memory() -> PageMemory | None:
    """:func:`measure`, at most every FRESH_SECONDS (it reads every Chromium process's memory map)."""
    global _last
    with _lock:
        when, known = _last
        if known is not None and time.monotonic() - when < FRESH_SECONDS:
            return known
    found = measure()
    with _lock:
        _last = (time.monotonic(), found)
    return found
