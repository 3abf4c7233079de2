"""Parked runs: 200 runs that each pause at a gate, started at once.

Each run is ``goto /pay`` + a gated ``click #pay``. All are POSTed at once (16 client threads); once all
are ``awaiting_approval`` this reports:

* the time to get them all paused;
* busy worker slots (Celery remote control ``inspect().active()`` against the bench Redis): a paused
  run must hold no worker;
* live browser contexts and page targets in the host Chromium (CDP ``Target.getBrowserContexts`` /
  ``Target.getTargets`` over a Playwright ``connect_over_cdp`` connection of this process);
* the Chromium process tree's PSS (psutil), and memory per parked page against the same Chromium with
  no run (measured after the warm-up);
* how many runs the parking cap (``TWIN_MAX_PARKED_PAGES``, default 20) evicted (``page.evicted``);
* whether each parked page really is its run's page (the URL of the run's CDP target);
* that approving evicted runs still completes them via ``run.restored_from_checkpoint``, and how
  long that takes next to approving runs still parked in place.

Usage:  .venv/bin/python bench/parked_runs.py [--runs N] [--cap N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import MIB, Bench, median, ms, run_in_threads, table, verdict

SETTLE = 3.0


def program(bench: Bench) -> list[dict[str, Any]]:
    return [
        {"action": "goto", "url": bench.site.url("/pay")},
        {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay $42?"}},
    ]


def statuses() -> Counter[str]:
    from runs.models import Run

    return Counter(Run.objects.exclude(goal="warm-up").values_list("status", flat=True))


def target_urls(bench: Bench) -> dict[str, str]:
    """CDP target id -> URL of every page target in the host Chromium."""
    endpoint = bench.host_browser()["endpoint"]

    def ask(pw: Any) -> dict[str, str]:
        browser = pw.chromium.connect_over_cdp(endpoint)
        try:
            cdp = browser.new_browser_cdp_session()
            infos = cdp.send("Target.getTargets").get("targetInfos", [])
            cdp.detach()
            return {t["targetId"]: t.get("url", "") for t in infos if t.get("type") == "page"}
        finally:
            browser.close()

    return bench.in_browser(ask)


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-9 * len(ordered) // 10) - 1)]


def service_times(ids: list[str]) -> dict[str, list[float]]:
    """Per run: run.running -> step 1 started -> step 1 finished -> run.awaiting_approval."""
    from runs.models import RunEvent

    marks: dict[str, dict[tuple[str, int | None], float]] = {}
    rows = (
        RunEvent.objects.filter(run_id__in=ids)
        .order_by("id")
        .values_list("run_id", "type", "step_index", "created_at")
    )
    for run_id, type_, step, created in rows:
        marks.setdefault(str(run_id), {}).setdefault((type_, step), created.timestamp())
    parts: dict[str, list[float]] = {
        "run.running -> step 1 started (fresh context + page)": [],
        "step 1: goto /pay": [],
        "step 1 finished -> paused (screenshot, checkpoint, pause writes)": [],
        "run.running -> paused (one worker slot busy)": [],
    }
    names = list(parts)
    for m in marks.values():
        keys = [
            ("run.running", None),
            ("step.started", 1),
            ("step.finished", 1),
            ("run.awaiting_approval", 2),
        ]
        if not all(k in m for k in keys):
            continue  # e.g. paused blocked at step 1
        a, b, c, d = (m[k] for k in keys)
        for name, value in zip(names, (b - a, c - b, d - c, d - a), strict=True):
            parts[name].append(value)
    return parts


def approve_and_time(bench: Bench, run_id: str) -> tuple[float, str, list[str]]:
    """(seconds approve -> settled, final status, how it resumed)."""
    t0 = time.perf_counter()
    bench.approve(run_id)
    run = bench.wait_for(run_id, {"completed", "awaiting_approval", "failed"}, timeout=60)
    elapsed = time.perf_counter() - t0
    how = [
        e.type
        for e in bench.events(run_id)
        if e.type in {"run.resumed_in_place", "run.restored_from_checkpoint"}
    ]
    trigger = (run.get("pending_step") or {}).get("trigger")
    return elapsed, run["status"] + (f" ({trigger})" if trigger else ""), how


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200, help="runs to start at once (default 200)")
    parser.add_argument("--cap", type=int, default=None, help="TWIN_MAX_PARKED_PAGES (default: Twin's, 20)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for all to pause")
    parser.add_argument("--approve", type=int, default=3, help="evicted and in-place runs to approve (each)")
    args = parser.parse_args()
    env = {"TWIN_MAX_PARKED_PAGES": str(args.cap)} if args.cap else {}

    with Bench("Twin benchmark: 200 parked runs", env=env) as bench:
        from django.conf import settings

        from approvals.models import Approval
        from runs.models import Run

        cap = settings.TWIN_MAX_PARKED_PAGES
        bench.warm_up()
        time.sleep(SETTLE)
        base_pss, base_procs = bench.chromium_memory()
        base_contexts, base_pages = bench.browser_contexts()

        steps = program(bench)
        bench.say(f"starting {args.runs} runs at once")
        t0 = time.perf_counter()
        ids = [r["id"] for r in run_in_threads(lambda _: bench.create_run(steps, goal="parked"), args.runs)]
        submitted = time.perf_counter() - t0
        deadline = time.monotonic() + args.timeout
        counts = statuses()
        while counts.get("awaiting_approval", 0) < args.runs and time.monotonic() < deadline:
            if sum(n for s, n in counts.items() if s not in {"queued", "running", "awaiting_approval"}):
                break
            time.sleep(0.25)
            counts = statuses()
        all_paused = time.perf_counter() - t0
        paused_ok = counts.get("awaiting_approval", 0) == args.runs
        bench.say(f"statuses: {dict(counts)} after {all_paused:.1f} s")

        time.sleep(SETTLE)
        worker = bench.inspect()
        contexts, pages = bench.browser_contexts()
        pss, procs = bench.chromium_memory()
        evicted = bench.count_events("page.evicted")
        triggers = Counter(
            Approval.objects.filter(run_id__in=ids, status="pending").values_list("trigger", flat=True)
        )
        urls = target_urls(bench)
        parked = list(
            Run.objects.filter(pk__in=ids, status="awaiting_approval")
            .exclude(target_id="")
            .values_list("pk", "target_id")
        )
        own_page = sum(1 for _, target in parked if urls.get(target, "").endswith("/pay"))
        targets = Counter(target for _, target in parked)
        shared = sum(n for n in targets.values() if n > 1)

        service = service_times(ids)

        # Approve some evicted (checkpoint-only) runs and some still parked in place.
        # (only runs that paused at their gate: a run paused "blocked" wants retry/skip/fail, not approve)
        at_gate = {
            str(pk)
            for pk in Approval.objects.filter(
                run_id__in=ids, status="pending", trigger="approval"
            ).values_list("run_id", flat=True)
        }
        evicted_ids = [
            str(pk)
            for pk in Run.objects.filter(pk__in=ids, status="awaiting_approval", target_id="")
            .order_by("updated_at")
            .values_list("pk", flat=True)
            if str(pk) in at_gate
        ][: args.approve]
        in_place_ids = [
            str(pk) for pk, target in parked if urls.get(target, "").endswith("/pay") and str(pk) in at_gate
        ][: args.approve]
        payments_before = bench.site.count("payment")
        approved: list[tuple[str, str, tuple[float, str, list[str]]]] = []
        for kind, chosen in (("evicted", evicted_ids), ("parked in place", in_place_ids)):
            for run_id in chosen:
                approved.append((kind, run_id, approve_and_time(bench, run_id)))
        payments = bench.site.count("payment") - payments_before

        bench.header(
            f"{args.runs} runs (goto /pay + gated click #pay) POSTed at once from 16 client threads;\n"
            f"parking cap TWIN_MAX_PARKED_PAGES={cap}; memory settled {SETTLE:.0f} s before measuring."
        )
        per_page = (pss - base_pss) / max(1, pages - base_pages)
        rows = [
            ["runs POSTed (all answered 201)", f"{args.runs} in {submitted:.1f} s"],
            [
                f"time until all {args.runs} awaiting_approval",
                f"{all_paused:.1f} s ({args.runs / all_paused:.1f} runs/s)"
                if paused_ok
                else f"NOT all paused after {all_paused:.0f} s: {dict(counts)}",
            ],
            ["pending pauses by trigger", ", ".join(f"{k} {v}" for k, v in sorted(triggers.items()))],
            [
                "busy worker slots (inspect active)",
                f"{worker['active']} of {worker['slots']}"
                + ("" if worker["replied"] else " (worker did not reply)"),
            ],
            ["reserved (prefetched) tasks", worker["reserved"]],
            [
                "live browser contexts (CDP)",
                f"{contexts} (before the {args.runs} started: {base_contexts}, left by finished warm-ups)",
            ],
            ["live page targets (CDP)", f"{pages} (before: {base_pages}, incl. the default about:blank)"],
            ["runs evicted by the cap (page.evicted)", f"{evicted} (expected {max(0, args.runs - cap)})"],
            [
                "parked runs whose own page shows /pay",
                f"{own_page} of {len(parked)}" + (f"; {shared} runs share a target id" if shared else ""),
            ],
            ["Chromium tree PSS, 0 runs", f"{base_pss / MIB:.0f} MiB in {base_procs} processes"],
            [f"Chromium tree PSS, {args.runs} paused", f"{pss / MIB:.0f} MiB in {procs} processes"],
            ["memory per parked page", f"{per_page / MIB:.1f} MiB  ((PSS - PSS at 0 runs) / new pages)"],
            [
                "memory per paused run",
                f"{(pss - base_pss) / args.runs / MIB:.2f} MiB  (same / {args.runs} runs)",
            ],
        ]
        print(table(["measure", "value"], rows))
        print()
        print("one run's way to its pause, from its events (ms; queueing before run.running excluded):")
        print(
            table(
                ["part", "median", "p90", "max"],
                [[name, ms(median(v)), ms(p90(v)), ms(max(v))] for name, v in service.items() if v],
            )
        )
        print()
        print(
            table(
                ["approved run", "run id", "approve -> settled (ms)", "ended", "resumed via"],
                [
                    [kind, run_id[:8], ms(result[0]), result[1], ", ".join(result[2]) or "-"]
                    for kind, run_id, result in approved
                ],
            )
        )
        for kind in ("evicted", "parked in place"):
            times = [r[0] for k, _, r in approved if k == kind and r[1] == "completed"]
            if times:
                print(f"median approve -> completed, {kind}: {ms(median(times))} ms")
        print(f"payments the site recorded for these approvals: {payments} (expected {len(approved)})")
        print()
        at_gate_count = triggers.get("approval", 0)
        restored_ok = bool(evicted_ids) and all(
            r[1] == "completed" and "run.restored_from_checkpoint" in r[2]
            for k, _, r in approved
            if k == "evicted"
        )
        print("targets:")
        print(
            f"  0 busy worker slots while {args.runs} runs are paused: {worker['active']}  "
            f"{verdict(worker['replied'] and worker['active'] == 0)}"
        )
        print(
            f"  contexts added by the {args.runs} paused runs <= cap ({cap}): {contexts - base_contexts}  "
            f"{verdict(contexts - base_contexts <= cap)}"
        )
        print(f"  evicted runs complete via run.restored_from_checkpoint: {verdict(restored_ok)}")
        print(
            f"  every run paused at its gate (trigger approval): {at_gate_count} of {args.runs}  "
            f"{verdict(at_gate_count == args.runs)}"
        )
        bench.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
