"""The egress proxy's cost: executor_overhead's 20 steps as a plain Playwright script, on a Chromium
launched directly (no proxy, as before the proxy existed) and on Twin's host browser behind its
egress proxy (same binary and flags otherwise). Repetitions alternate, both warm; same machine load.

Usage:  TWIN_HOST_ID=bench-egress TWIN_ALLOW_PRIVATE_URLS=1 \\
        .venv/bin/python bench/egress_overhead.py [--reps N]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import SimpleNamespace

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "twin_site.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()

    import django

    django.setup()
    from playwright.sync_api import sync_playwright

    from bench.executor_overhead import steps
    from bench.harness import own_chromium
    from bench.harness import plain_run as plain
    from engine.browser import ensure_host_browser, stop_host_browser
    from tests.site.server import FixtureSite

    with FixtureSite() as site, own_chromium() as direct_endpoint, sync_playwright() as pw:
        program = steps(SimpleNamespace(site=site))  # type: ignore[arg-type]
        proxied_endpoint = ensure_host_browser().endpoint
        try:
            browsers = {
                "direct": pw.chromium.connect_over_cdp(direct_endpoint),
                "proxied": pw.chromium.connect_over_cdp(proxied_endpoint),
            }
            for browser in browsers.values():
                plain(browser, program)  # warm-up
            results: dict[str, list[float]] = {name: [] for name in browsers}
            goto_ms: dict[str, list[float]] = {name: [] for name in browsers}
            for _ in range(args.reps):
                for name, browser in browsers.items():
                    timing = plain(browser, program)
                    results[name].append(timing.total)
                    goto_ms[name] += [
                        t for s, t in zip(program, timing.steps, strict=True) if s["action"] == "goto"
                    ]
        finally:
            stop_host_browser()

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    print(f"{args.reps} alternating repetitions of 20 steps; load average {os.getloadavg()[0]:.1f}")
    print(f"{'':10}{'20 steps (ms)':>16}{'one goto (ms)':>16}")
    for name in results:
        print(f"{name:10}{median(results[name]) * 1000:16.0f}{median(goto_ms[name]) * 1000:16.1f}")
    ratio = median(results["proxied"]) / median(results["direct"])
    extra = (median(goto_ms["proxied"]) - median(goto_ms["direct"])) * 1000
    print(f"proxied / direct: {ratio:.3f}x; per goto {extra:+.1f} ms")


if __name__ == "__main__":
    main()
