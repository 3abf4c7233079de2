"""Resume in place vs. replay from the top, for a 12-step flow gated at step 10.

The flow signs in on the fixture site, builds JS-only state on /jsstate (two +1 clicks and a note)
and submits it at step 10, then checks and extracts the result:

   1 goto /login            5 assert_text "Welcome alice"   9 fill #note
   2 fill #user             6 goto /jsstate                10 click #submit   <- approval gate
   3 fill #password         7 click #inc                   11 assert_text "Submitted 2: …"
   4 click #login           8 click #inc                   12 extract #submitted

In place: the gated run pauses at step 10; the time measured is approve call -> run completed.
Replay: what a system without parked pages must do after the approval: run the whole flow again
from the top (the same 12 steps, no gate); the time measured is POST /api/runs -> run completed.
Both are measured on the client (the answer of ``?wait=``) and on the server (``finished_at``,
against the same machine clock). Repetitions alternate between the two.

Usage:  .venv/bin/python bench/resume_vs_replay.py [--reps N]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Bench, median, ms, table, verdict

TARGET_RATIO = 5.0
GATE_STEP = 10


def flow(bench: Bench, *, gated: bool) -> list[dict[str, Any]]:
    url = bench.site.url
    steps: list[dict[str, Any]] = [
        {"action": "goto", "url": url("/login")},
        {"action": "fill", "selector": "#user", "value": "alice"},
        {"action": "fill", "selector": "#password", "value": "wonderland"},
        {"action": "click", "selector": "#login"},
        {"action": "assert_text", "text": "Welcome alice"},
        {"action": "goto", "url": url("/jsstate")},
        {"action": "click", "selector": "#inc"},
        {"action": "click", "selector": "#inc"},
        {"action": "fill", "selector": "#note", "value": "resume-vs-replay"},
        {"action": "click", "selector": "#submit"},
        {"action": "assert_text", "text": "Submitted 2: resume-vs-replay"},
        {"action": "extract", "selector": "#submitted", "name": "submitted"},
    ]
    if gated:
        steps[GATE_STEP - 1]["gate"] = {"kind": "approval", "prompt": "Submit the note?"}
    return steps


def stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def in_place(bench: Bench) -> tuple[float, float, float]:
    """(client s, server s, seconds to reach the pause) for approve -> completed."""
    started = time.perf_counter()
    run = bench.create_run(flow(bench, gated=True), wait=60, goal="in place")
    run = bench.wait_for(run["id"], {"awaiting_approval"}, step=GATE_STEP)
    to_pause = time.perf_counter() - started
    t0 = time.time()
    c0 = time.perf_counter()
    bench.approve(run["id"])
    run = bench.wait_for(run["id"], {"completed"})
    client = time.perf_counter() - c0
    check(run)
    return client, stamp(run["finished_at"]) - t0, to_pause


def replay(bench: Bench) -> tuple[float, float]:
    """(client s, server s) for POST -> completed of the whole flow."""
    c0 = time.perf_counter()
    run = bench.create_run(flow(bench, gated=False), wait=60, goal="replay")
    if run["status"] != "completed":
        run = bench.wait_for(run["id"], {"completed"})
    client = time.perf_counter() - c0
    check(run)
    return client, stamp(run["finished_at"]) - stamp(run["created_at"])


def check(run: dict[str, Any]) -> None:
    if run["status"] != "completed" or run["outputs"].get("submitted") != "Submitted 2: resume-vs-replay":
        raise RuntimeError(f"run {run['id']} did not do the flow: {run['status']} {run['outputs']}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=7, help="repetitions of each (default 7)")
    args = parser.parse_args()

    with Bench("Twin benchmark: resume in place vs. replay from the top") as bench:
        bench.warm_up(flow(bench, gated=True))
        results: dict[str, list[tuple[float, ...]]] = {"in place": [], "replay": []}
        for rep in range(args.reps):
            bench.say(f"repetition {rep + 1}/{args.reps}")
            results["in place"].append(in_place(bench))
            results["replay"].append(replay(bench))

        bench.header(
            f"12-step flow on local fixture pages (sign in, JS state on /jsstate, gate at step {GATE_STEP})\n"
            f"{args.reps} repetitions of each, alternating, after warm-up runs.\n"
            "in place = approve call -> run completed (steps 10-12 on the parked page);\n"
            "replay   = POST /api/runs -> run completed (all 12 steps in a fresh context)."
        )
        rows = []
        for i in range(args.reps):
            a, b = results["in place"][i], results["replay"][i]
            rows.append([i + 1, ms(a[0]), ms(a[1]), ms(b[0]), ms(b[1]), f"{b[0] / a[0]:.1f}x", ms(a[2])])
        print(
            table(
                [
                    "rep",
                    "in place client",
                    "in place server",
                    "replay client",
                    "replay server",
                    "ratio (client)",
                    "reach pause",
                ],
                rows,
            )
        )
        print()
        ip_c = median([r[0] for r in results["in place"]])
        ip_s = median([r[1] for r in results["in place"]])
        rp_c = median([r[0] for r in results["replay"]])
        rp_s = median([r[1] for r in results["replay"]])
        print(
            table(
                ["median (ms)", "in place", "replay", "replay / in place"],
                [
                    ["client (HTTP answer)", ms(ip_c), ms(rp_c), f"{rp_c / ip_c:.1f}x"],
                    ["server (-> finished_at)", ms(ip_s), ms(rp_s), f"{rp_s / ip_s:.1f}x"],
                ],
            )
        )
        print()
        print(f"target: replay / in place >= {TARGET_RATIO:.0f}x")
        print(f"  client: {rp_c / ip_c:.1f}x  {verdict(rp_c / ip_c >= TARGET_RATIO)}")
        print(f"  server: {rp_s / ip_s:.1f}x  {verdict(rp_s / ip_s >= TARGET_RATIO)}")
        bench.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
