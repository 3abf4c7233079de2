"""Executor overhead: 20 steps as a Twin run vs. the same 20 steps as a plain Playwright script.

The steps (goto / fill / click / assert_text / extract on the fixture site's local pages):

   1 goto /login             8 click #inc               15 click #click
   2 fill #user              9 click #inc               16 click #click
   3 fill #password         10 fill #note               17 extract #clicks
   4 click #login           11 click #submit            18 goto /pay
   5 assert_text Welcome    12 assert_text Submitted    19 click #pay
   6 goto /jsstate          13 extract #submitted       20 extract #receipt
   7 click #inc             14 goto /counter

Twin: ``POST /api/runs?wait=60`` -> completed. Measured as created_at -> finished_at from the API's
timestamps (the server's view: queueing, dispatch, a fresh browser context, the steps with their
bookkeeping and checkpoints) and as the client's wall time of that one HTTP call.
Plain: a Playwright script connected over CDP to an already-running Chromium (same binary and flags
as Twin's host browser, launched by this script): ``browser.new_context()``, ``new_page()``, the 20
steps in idiomatic Playwright (``expect(...).to_contain_text`` for assert_text), measured from
new_context() until the last step returned. Both are warm (warm-up first); repetitions alternate.

Usage:  .venv/bin/python bench/executor_overhead.py [--reps N]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Bench, median, ms, own_chromium, plain_run, table, verdict

TARGET_RATIO = 1.3


def steps(bench: Bench) -> list[dict[str, Any]]:
    url = bench.site.url
    return [
        {"action": "goto", "url": url("/login")},
        {"action": "fill", "selector": "#user", "value": "alice"},
        {"action": "fill", "selector": "#password", "value": "wonderland"},
        {"action": "click", "selector": "#login"},
        {"action": "assert_text", "text": "Welcome alice"},
        {"action": "goto", "url": url("/jsstate")},
        {"action": "click", "selector": "#inc"},
        {"action": "click", "selector": "#inc"},
        {"action": "click", "selector": "#inc"},
        {"action": "fill", "selector": "#note", "value": "overhead"},
        {"action": "click", "selector": "#submit"},
        {"action": "assert_text", "text": "Submitted 3: overhead"},
        {"action": "extract", "selector": "#submitted", "name": "submitted"},
        {"action": "goto", "url": url("/counter")},
        {"action": "click", "selector": "#click"},
        {"action": "click", "selector": "#click"},
        {"action": "extract", "selector": "#clicks", "name": "clicks"},
        {"action": "goto", "url": url("/pay")},
        {"action": "click", "selector": "#pay"},
        {"action": "extract", "selector": "#receipt", "name": "receipt"},
    ]


@dataclass
class Timing:
    total: float  # seconds
    setup: float  # before the first step: queueing + context (Twin), new_context + new_page (plain)
    steps: list[float]  # each step's own time
    gaps: float  # between steps (Twin: bookkeeping + checkpoint); 0 for plain
    tail: float  # after the last step (Twin: -> finished_at)
    outputs: dict[str, str]


def plain(browser: Any, program: list[dict[str, Any]]) -> Timing:
    """The same steps as an ordinary Playwright script (bench.harness.plain_run)."""
    run = plain_run(browser, program)
    return Timing(run.total, run.setup, run.steps, 0.0, 0.0, run.outputs)


def stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def twin(bench: Bench, program: list[dict[str, Any]]) -> tuple[Timing, float]:
    """(server-side timing, client seconds) of one run."""
    c0 = time.perf_counter()
    run = bench.create_run(program, wait=60, goal="executor overhead")
    client = time.perf_counter() - c0
    if run["status"] != "completed":
        raise RuntimeError(
            f"run {run['id']} is {run['status']}: {run.get('error')} {run.get('pending_step')}"
        )
    started = [stamp(s["started_at"]) for s in run["steps"]]
    finished = [stamp(s["finished_at"]) for s in run["steps"]]
    created, done = stamp(run["created_at"]), stamp(run["finished_at"])
    timing = Timing(
        total=done - created,
        setup=started[0] - created,
        steps=[f - s for s, f in zip(started, finished, strict=True)],
        gaps=sum(started[i + 1] - finished[i] for i in range(len(started) - 1)),
        tail=done - finished[-1],
        outputs=dict(run["outputs"]),
    )
    return timing, client


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=9, help="repetitions of each (default 9)")
    args = parser.parse_args()

    with (
        Bench("Twin benchmark: executor overhead (Twin run vs. plain Playwright)") as bench,
        own_chromium() as endpoint,
    ):
        program = steps(bench)
        state: dict[str, Any] = {}

        def connect(pw: Any) -> None:
            state["browser"] = pw.chromium.connect_over_cdp(endpoint)

        def run_plain(_pw: Any) -> Timing:
            return plain(state["browser"], program)

        bench.in_browser(connect)
        bench.warm_up(program)
        bench.in_browser(run_plain)  # warm-up of the plain side
        bench.site.reset()
        rows = []
        twins: list[Timing] = []
        plains: list[Timing] = []
        clients: list[float] = []
        for rep in range(args.reps):
            bench.say(f"repetition {rep + 1}/{args.reps}")
            timing, client = twin(bench, program)
            base = bench.in_browser(run_plain)
            if timing.outputs.get(
                "submitted"
            ) != "Submitted 3: overhead" or base.outputs != timing.outputs | {
                "clicks": base.outputs.get("clicks", ""),
                "receipt": base.outputs.get("receipt", ""),
            }:
                raise RuntimeError(f"the two did not do the same thing: {timing.outputs} vs {base.outputs}")
            twins.append(timing)
            plains.append(base)
            clients.append(client)
            rows.append(
                [
                    rep + 1,
                    ms(timing.total),
                    ms(client),
                    ms(base.total),
                    f"{timing.total / base.total:.2f}x",
                    f"{client / base.total:.2f}x",
                ]
            )

        bench.header(
            f"the same 20 steps (goto/fill/click/assert_text/extract on local fixture pages), {args.reps}\n"
            "repetitions each, alternating, both warm. Twin = POST /api/runs?wait=60 -> completed;\n"
            "plain = Playwright over CDP to an already-running Chromium, new_context() -> last step."
        )
        print(table(["rep", "Twin server", "Twin client", "plain", "server/plain", "client/plain"], rows))
        print()
        srv, cli, pln = median([t.total for t in twins]), median(clients), median([p.total for p in plains])
        print(
            table(
                ["median (ms)", "Twin", "plain", "Twin / plain", "per step overhead"],
                [
                    [
                        "server: created_at -> finished_at",
                        ms(srv),
                        ms(pln),
                        f"{srv / pln:.2f}x",
                        ms((srv - pln) / 20),
                    ],
                    [
                        "client: POST ?wait=60 answered",
                        ms(cli),
                        ms(pln),
                        f"{cli / pln:.2f}x",
                        ms((cli - pln) / 20),
                    ],
                ],
            )
        )
        print()
        print("where the time goes (medians over repetitions, ms):")
        print(
            table(
                ["part", "Twin", "plain"],
                [
                    [
                        "before step 1 (Twin: queue + dispatch + new context; plain: new_context + new_page)",
                        ms(median([t.setup for t in twins])),
                        ms(median([p.setup for p in plains])),
                    ],
                    [
                        "inside the 20 steps (sum of step started -> finished)",
                        ms(median([sum(t.steps) for t in twins])),
                        ms(median([sum(p.steps) for p in plains])),
                    ],
                    [
                        "between steps (Twin: checkpoint + lease + answers + state writes), sum of 19",
                        ms(median([t.gaps for t in twins])),
                        "0",
                    ],
                    ["after step 20 (-> run finished_at)", ms(median([t.tail for t in twins])), "0"],
                ],
            )
        )
        print()
        by_action: dict[str, tuple[list[float], list[float]]] = {}
        for t, p in zip(twins, plains, strict=True):
            for step, a, b in zip(program, t.steps, p.steps, strict=True):
                pair = by_action.setdefault(step["action"], ([], []))
                pair[0].append(a)
                pair[1].append(b)
        print(
            table(
                ["one step, by action (ms)", "n/run", "Twin median", "plain median"],
                [
                    [action, len(a) // len(twins), ms(median(a)), ms(median(b))]
                    for action, (a, b) in by_action.items()
                ],
            )
        )
        print()
        print(f"target: Twin / plain <= {TARGET_RATIO}x")
        print(f"  server: {srv / pln:.2f}x  {verdict(srv / pln <= TARGET_RATIO)}")
        print(f"  client: {cli / pln:.2f}x  {verdict(cli / pln <= TARGET_RATIO)}")
        bench.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
