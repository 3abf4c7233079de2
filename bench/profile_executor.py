"""Where the executor's time goes: Twin's executor run in this process, its phases timed.

No web server and no Celery here: runs are created with ``runs.services.run_create`` (the start task
is not sent) and driven by calling ``engine.executor.execute_run`` directly, in one thread, against the
host Chromium, exactly as a worker child would. Product functions are wrapped at run time with
timers (nothing in the product is changed); the times are inclusive (``run_step`` contains
``perform``, which contains ``single_target``, ...).

Part 1: the 20-step flow of bench/executor_overhead.py.
Part 2: ``goto /pay`` + gated ``click #pay``: start -> pause, then approve (approvals.services) and
resume -> completed.
Part 3 (``--variants N``): the 20-step flow with each way a hand-written element step can describe
its element (``Execution.resolve`` swapped at run time: the page's own call, Playwright's engine,
a strict handle, nothing), with the session video off, and as a plain Playwright script on the
same host browser, in turns, N rounds after one to warm up.

Usage:  .venv/bin/python bench/profile_executor.py [--runs N] [--variants N] [--only-variants]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.executor_overhead import steps as twenty_steps
from bench.harness import Bench, loadavg, table

TOTALS: defaultdict[str, float] = defaultdict(float)
CALLS: Counter[str] = Counter()


def wrap(owner: Any, name: str, label: str | None = None) -> None:
    original: Callable[..., Any] = getattr(owner, name)
    key = label or name

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TOTALS[key] += time.perf_counter() - started
            CALLS[key] += 1

    setattr(owner, name, timed)


def instrument() -> None:
    from playwright.sync_api import ElementHandle, Locator, Page

    from engine import browser, executor, locators, restore
    from runs import services, states

    services._enqueue_start = lambda run_id: None  # no start task: this process drives the run
    for name in (
        "attach", "renew", "answers", "run_step", "perform", "act_on_one", "resolve", "note_element",
        "find_recorded", "release_handles", "track_document", "assert_text", "_finish_step",
        "checkpoint", "mask_page", "pause", "finish",
    ):  # fmt: skip
        if hasattr(executor.Execution, name):
            wrap(executor.Execution, name, f"Execution.{name}")
    for name in ("new_page", "find_page", "check", "capture", "close_context"):
        wrap(browser.BrowserSession, name, f"BrowserSession.{name}")
    wrap(restore.DocumentWatch, "document_id", "DocumentWatch.document_id")
    # The Playwright calls a step makes (each one a round trip to the driver, and to the page).
    wrap(Page, "screenshot", "Page.screenshot")
    wrap(Page, "goto", "Page.goto")
    for name in ("element_handle", "click", "fill", "inner_text", "count"):
        wrap(Locator, name, f"Locator.{name}")
    for name in ("evaluate", "click", "fill", "inner_text", "dispose"):
        wrap(ElementHandle, name, f"ElementHandle.{name}")
    wrap(locators, "describe_element", "locators.describe_element")
    wrap(locators, "clean_bundle", "locators.clean_bundle")
    wrap(locators, "scrub_bundle", "locators.scrub_bundle")
    wrap(states, "step_transition", "states.step_transition")
    wrap(states, "run_transition", "states.run_transition")
    wrap(states, "_keep_cost", "states._keep_cost")
    wrap(states, "record_event", "states.record_event")
    wrap(executor, "record_event", "executor.record_event")
    wrap(executor, "enforce_parking_budget", "executor.enforce_parking_budget")
    wrap(executor, "seal_json", "vault seal_json (checkpoint)")


# -- part 3: how an element step describes its element, variants side by side ------------------------------
def resolve_strict_handle(self: Any, locator: Any, timeout_ms: float) -> Any:
    """Before: the selector resolved strictly to a handle (element_handle), described through it."""
    handle = locator.element_handle(timeout=timeout_ms)
    self.handles.append(handle)
    return handle


def resolve_through_engine(self: Any, locator: Any, timeout_ms: float) -> Any:
    """One call through Playwright's selector engine for every selector (describe_only), not the page's
    own querySelectorAll for plain CSS (describe_css)."""
    from engine import locators

    count, bundle = locators.describe_only(locator)
    if count == 1:
        self.acted_locator, self.described = bundle, True
        return locator
    return resolve_strict_handle(self, locator, timeout_ms)


def resolve_without_bundle(self: Any, locator: Any, timeout_ms: float) -> Any:
    """A floor: nothing described, the step acts through its locator as before bundles existed."""
    self.described = True
    return locator


def report(label: str, runs: int, totals: list[float]) -> None:
    print(f"{label}: {runs} runs, median {statistics.median(totals) * 1000:.0f} ms per run")
    rows = [
        [
            key,
            f"{TOTALS[key] / runs * 1000:.1f}",
            f"{CALLS[key] / runs:g}",
            f"{TOTALS[key] / CALLS[key] * 1000:.2f}",
        ]
        for key in sorted(TOTALS, key=lambda k: -TOTALS[k])
    ]
    print(table(["phase (inclusive)", "ms / run", "calls / run", "ms / call"], rows))
    print()
    TOTALS.clear()
    CALLS.clear()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="measured runs per part (default 5)")
    parser.add_argument(
        "--variants",
        type=int,
        default=0,
        metavar="N",
        help="part 3: N rounds of the 20-step flow with each way of describing an element, and plain",
    )
    parser.add_argument("--only-variants", action="store_true", help="part 3 alone")
    args = parser.parse_args()

    with Bench("Twin profile: the executor's phases, in process", services=False) as bench:
        from approvals.services import Decision, approval_decide
        from engine import executor
        from runs import services
        from runs.models import Run
        from tenants.services import tenant_create

        # As in a worker child (engine/browser.py sets it too): Playwright's sync API runs an event loop
        # in the thread whose ORM calls stay synchronous all the same.
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        instrument()
        tenant, user, _ = tenant_create(slug="profile", owner_username="profile")
        flow = twenty_steps(bench)
        gated: list[dict[str, Any]] = [
            {"action": "goto", "url": bench.site.url("/pay")},
            {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay?"}},
        ]

        def drive(
            program: list[dict[str, Any]], expect: str, run_id: Any = None, reason: str = "start"
        ) -> Any:
            if run_id is None:
                run_id = services.run_create(
                    tenant=tenant, created_by=user, goal="profile", url="", steps=program
                ).pk
            started = time.perf_counter()
            executor.execute_run(run_id, reason=reason)
            elapsed = time.perf_counter() - started
            run = Run.objects.get(pk=run_id)
            if run.status != expect:
                raise RuntimeError(f"run {run_id} is {run.status}, expected {expect}: {run.error}")
            return run_id, elapsed

        def part1() -> list[float]:
            for _ in range(2):
                drive(flow, "completed")  # warm-up
            TOTALS.clear()
            CALLS.clear()
            return [drive(flow, "completed")[1] for _ in range(args.runs)]

        def part2() -> tuple[list[float], list[float], dict[str, float], Counter[str]]:
            to_pause: list[float] = []
            to_end: list[float] = []
            resume_totals: defaultdict[str, float] = defaultdict(float)
            resume_calls: Counter[str] = Counter()
            for i in range(args.runs + 2):
                if i == 2:
                    TOTALS.clear()
                    CALLS.clear()
                    resume_totals.clear()
                    resume_calls.clear()
                run_id, paused = drive(gated, "awaiting_approval")
                before, calls_before = dict(TOTALS), Counter(CALLS)
                run = Run.objects.get(pk=run_id)
                approval_decide(
                    run=run, decision=Decision(approve=True, input=None, choice=None, note=""), actor=user
                )
                _, resumed = drive(gated, "completed", run_id=run_id, reason="resume")
                for key in TOTALS:  # move the resume's share out of the start -> pause totals
                    resume_totals[key] += TOTALS[key] - before.get(key, 0.0)
                    resume_calls[key] += CALLS[key] - calls_before.get(key, 0)
                    TOTALS[key], CALLS[key] = before.get(key, 0.0), calls_before.get(key, 0)
                if i >= 2:
                    to_pause.append(paused)
                    to_end.append(resumed)
            return to_pause, to_end, dict(resume_totals), resume_calls

        def part3() -> dict[str, dict[str, list[float]]]:
            from django.test import override_settings
            from playwright.sync_api import sync_playwright

            from bench.harness import plain_run
            from engine.browser import ensure_host_browser

            # The plain script through Playwright's own sync API (the product's session hands out
            # proxies over its async API, which Playwright's ``expect`` does not take), connected to
            # the same host Chromium.
            plain_playwright = sync_playwright().start()
            plain_browser = plain_playwright.chromium.connect_over_cdp(ensure_host_browser().endpoint)

            current = executor.Execution.resolve
            # name -> (how resolve describes, session video on); None: the plain script.
            variants: dict[str, Any] = {
                "one page call (describe_css), then the locator": (current, True),
                "one engine call (describe_only), then the locator": (resolve_through_engine, True),
                "strict handle (element_handle, describe, act)": (resolve_strict_handle, True),
                "no bundle (before skills)": (resolve_without_bundle, True),
                "one page call, session video off": (current, False),
                "plain Playwright script": None,
            }
            found: dict[str, dict[str, list[float]]] = {
                name: {"total": [], "steps": [], "elements": []} for name in variants
            }
            element = {"fill", "click", "extract"}
            names = list(variants)
            for round_ in range(args.variants + 1):  # the first round warms up
                for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                    if variants[name] is None:
                        timing = plain_run(plain_browser, flow)
                        total, steps = timing.total, timing.steps
                    else:
                        resolve, video = variants[name]
                        setattr(executor.Execution, "resolve", resolve)  # noqa: B010
                        try:
                            with override_settings(TWIN_VIDEO=video):
                                run_id, total = drive(flow, "completed")
                        finally:
                            setattr(executor.Execution, "resolve", current)  # noqa: B010
                        rows = Run.objects.get(pk=run_id).steps.order_by("index")
                        steps = [
                            (s.finished_at - s.started_at).total_seconds()
                            for s in rows
                            if s.finished_at is not None and s.started_at is not None
                        ]
                    if round_:
                        found[name]["total"].append(total)
                        found[name]["steps"].append(sum(steps))
                        found[name]["elements"].append(
                            sum(t for step, t in zip(flow, steps, strict=True) if step["action"] in element)
                        )
            plain_playwright.stop()
            return found

        if args.only_variants:
            args.runs = 0
        bench.header(
            "Each product function below is wrapped with a timer; inclusive times, medians of runs.\n"
            "Warm: two runs of each part come first."
        )
        if args.variants:
            found = bench.in_thread(part3)
            plain_total = statistics.median(found["plain Playwright script"]["total"])
            print(
                f"part 3, the 20-step flow, {args.variants} rounds, the variants in turns "
                f"(execute_run, start -> completed; plain: new_context -> last step), medians in ms"
            )
            print(
                table(
                    ["variant", "run", "/ plain", "the 20 steps", "the 14 element steps"],
                    [
                        [
                            name,
                            f"{statistics.median(f['total']) * 1000:.0f}",
                            f"{statistics.median(f['total']) / plain_total:.2f}x",
                            f"{statistics.median(f['steps']) * 1000:.0f}",
                            f"{statistics.median(f['elements']) * 1000:.0f}",
                        ]
                        for name, f in found.items()
                    ],
                )
            )
            print()
            TOTALS.clear()
            CALLS.clear()
        if args.only_variants:
            print(f"load average at end: {loadavg()}")
            return 0
        totals = bench.in_thread(part1)
        report("part 1, the 20-step flow (execute_run, start -> completed)", args.runs, totals)
        to_pause, to_end, resume_totals, resume_calls = bench.in_thread(part2)
        for key in list(TOTALS):
            if CALLS[key] == 0:
                del TOTALS[key]
        report("part 2a, goto /pay + gated click: start -> paused", args.runs, to_pause)
        TOTALS.update({k: v for k, v in resume_totals.items() if resume_calls[k]})
        CALLS.update({k: v for k, v in resume_calls.items() if v})
        report("part 2b, the same runs: approve, then resume -> completed", args.runs, to_end)
        print(f"load average at end: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
