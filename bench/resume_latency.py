"""Resume latency: from the approve call to the paused step's browser action.

One run on the fixture site's /counter page: a goto, then N gated ``click #click`` steps (default 21).
Each pause is approved as soon as ``GET /api/runs/{id}?wait=`` reports it. Per pause:

  t0  just before the approve HTTP call (wall clock, this process)
  t1  the ``step.started`` RunEvent of that step (its created_at, read from the DB after the run)
  t2  when the fixture site received the click's form POST (time.time() in the site's handler)

All three use this machine's clock. Where the time goes is split with the run's other events
(``run.resumed`` is written by the approve call, ``run.resumed_in_place`` when the worker has
attached to the parked page) and the worker log's "Task … received" line (Celery dispatch).

Usage:  .venv/bin/python bench/resume_latency.py [--pauses N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Bench, median, ms, p95, table, verdict

TARGET_MS = 150.0


def program(site_url: str, pauses: int) -> list[dict[str, Any]]:
    gate = {"kind": "approval", "prompt": "Click?"}
    return [{"action": "goto", "url": site_url}] + [
        {"action": "click", "selector": "#click", "gate": gate} for _ in range(pauses)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pauses", type=int, default=21, help="gated clicks in the measured run (default 21)"
    )
    parser.add_argument("--warmup", type=int, default=4, help="gated clicks in the warm-up run (default 4)")
    args = parser.parse_args()

    with Bench("Twin benchmark: resume latency (approve -> paused step's action)") as bench:
        counter = bench.site.url("/counter")
        bench.warm_up(program(counter, args.warmup))

        offset = bench.worker_log_offset()
        bench.say(f"measured run ({args.pauses} pauses)")
        run = bench.create_run(program(counter, args.pauses), wait=60, goal="resume latency")
        run_id = run["id"]
        t0s: list[float] = []
        replied: list[float] = []
        for i in range(args.pauses):
            step = i + 2
            run = bench.wait_for(run_id, {"awaiting_approval"}, step=step)
            t0 = time.time()
            bench.approve(run_id)
            replied.append(time.time())
            t0s.append(t0)
        run = bench.wait_for(run_id, {"completed"})

        events = bench.events(run_id)
        clicks = [e["at"] for e in bench.site.events if e["kind"] == "click"]
        received = bench.task_received_times("runs.tasks.resume_run_task", offset)
        if len(clicks) != args.pauses:
            raise RuntimeError(f"the site saw {len(clicks)} clicks, expected {args.pauses}")

        def first(type_: str, step: int) -> float:
            return next(e.at for e in events if e.type == type_ and e.step_index == step)

        def first_data(type_: str, step: int) -> dict[str, Any]:
            return next(e.data for e in events if e.type == type_ and e.step_index == step)

        rows = []
        cols: dict[str, list[float]] = {
            k: [] for k in ("reply", "t1", "t2", "api", "dispatch", "attach", "prestep", "action")
        }
        for i, t0 in enumerate(t0s):
            step = i + 2
            resumed = first("run.resumed", step)
            in_place = first("run.resumed_in_place", step)
            started = first("step.started", step)
            got = received[i] if len(received) == len(t0s) else float("nan")
            pid = first_data("run.resumed_in_place", step).get("pid", "?")
            values = {
                "reply": replied[i] - t0,
                "t1": started - t0,
                "t2": clicks[i] - t0,
                "api": resumed - t0,
                "dispatch": got - resumed,
                "attach": in_place - got,
                "prestep": started - in_place,
                "action": clicks[i] - started,
            }
            for key, value in values.items():
                cols[key].append(value)
            rows.append(
                [
                    step,
                    pid,
                    *(
                        ms(values[k])
                        for k in ("t1", "t2", "reply", "api", "dispatch", "attach", "prestep", "action")
                    ),
                ]
            )

        bench.header(
            f"{args.pauses} pauses in one run (goto /counter + {args.pauses} gated `click #click`), each\n"
            "approved as soon as GET ?wait= reported it; warm-up runs came first (one per worker slot).\n"
            "Times in ms from t0 = just before the approve HTTP call."
        )
        headers = [
            "step",
            "worker pid",
            "t1-t0",
            "t2-t0",
            "202 back",
            "api",
            "dispatch",
            "attach",
            "pre-step",
            "action",
        ]
        print(table(headers, rows))
        print()
        summary = [
            [
                "t1 - t0: approve -> step.started",
                ms(median(cols["t1"])),
                ms(p95(cols["t1"])),
                ms(max(cols["t1"])),
            ],
            [
                "t2 - t0: approve -> click reaches site",
                ms(median(cols["t2"])),
                ms(p95(cols["t2"])),
                ms(max(cols["t2"])),
            ],
            [
                "  approve call returns (202)",
                ms(median(cols["reply"])),
                ms(p95(cols["reply"])),
                ms(max(cols["reply"])),
            ],
            [
                "  api: t0 -> run.resumed written",
                ms(median(cols["api"])),
                ms(p95(cols["api"])),
                ms(max(cols["api"])),
            ],
            [
                "  dispatch: run.resumed -> task received",
                ms(median(cols["dispatch"])),
                ms(p95(cols["dispatch"])),
                ms(max(cols["dispatch"])),
            ],
            [
                "  attach: received -> resumed_in_place",
                ms(median(cols["attach"])),
                ms(p95(cols["attach"])),
                ms(max(cols["attach"])),
            ],
            [
                "  pre-step: resumed_in_place -> step.started",
                ms(median(cols["prestep"])),
                ms(p95(cols["prestep"])),
                ms(max(cols["prestep"])),
            ],
            [
                "  action: step.started -> click at site",
                ms(median(cols["action"])),
                ms(p95(cols["action"])),
                ms(max(cols["action"])),
            ],
        ]
        print(table(["interval (ms)", "median", "p95", "max"], summary))
        print()
        t1_med, t2_med = median(cols["t1"]) * 1000, median(cols["t2"]) * 1000
        print(f"target: median approve -> action <= {TARGET_MS:.0f} ms")
        print(f"  t1 (step.started): median {t1_med:.0f} ms  {verdict(t1_med <= TARGET_MS)}")
        print(f"  t2 (click at site): median {t2_med:.0f} ms  {verdict(t2_med <= TARGET_MS)}")
        print(
            f"baseline in this run: the browser action alone (step.started -> click at site) median "
            f"{median(cols['action']) * 1000:.0f} ms; "
            f"t2/action = {median(cols['t2']) / median(cols['action']):.1f}x"
        )
        bench.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
