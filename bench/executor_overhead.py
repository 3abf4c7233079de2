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
new_context() until the last step returned. Twin runs twice a repetition: with the session video
(the default) and without it (``record_video: false``), so the video's share shows apart; a
recorded run's video is made (by the worker) before the next run starts. All warm
(warm-up first); in each repetition the three take turns going first.

Targets (issue 14): Twin's own work between steps <= 5 ms a step; Twin without the video / plain
<= 1.10x (the video has its own target, bench/video_overhead.py).

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

from bench.harness import Bench, median, ms, own_chromium, plain_run, recording_of, table, verdict

TARGET_RATIO = 1.1
TARGET_GAP_MS = 5.0


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


def twin(bench: Bench, program: list[dict[str, Any]], *, video: bool = True) -> tuple[Timing, float]:
    """(server-side timing, client seconds) of one run."""
    c0 = time.perf_counter()
    run = bench.create_run(program, wait=60, goal="executor overhead", record_video=video)
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
    if video:
        # Made by a worker after the run: the next run measured does not share the CPU with it.
        recording_of(run["id"])
    return timing, client


VARIANTS = ("Twin", "Twin, no video", "plain")


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
        twin(bench, program, video=False)
        bench.in_browser(run_plain)  # warm-up of the plain side
        bench.site.reset()
        found: dict[str, list[Timing]] = {name: [] for name in VARIANTS}
        clients: dict[str, list[float]] = {name: [] for name in VARIANTS[:2]}
        for rep in range(args.reps):
            bench.say(f"repetition {rep + 1}/{args.reps}")
            # Each variant goes first, second and third equally often (what runs before matters:
            # a recorded run's video is encoded by the worker after it).
            order = VARIANTS[rep % 3 :] + VARIANTS[: rep % 3]
            outputs = []
            for name in order:
                if name == "plain":
                    timing = bench.in_browser(run_plain)
                else:
                    timing, client = twin(bench, program, video=name == "Twin")
                    clients[name].append(client)
                found[name].append(timing)
                outputs.append(timing.outputs)
            if any(o.get("submitted") != "Submitted 3: overhead" for o in outputs):
                raise RuntimeError(f"the variants did not do the same thing: {outputs}")

        twins, bare, plains = (found[name] for name in VARIANTS)
        bench.header(
            f"the same 20 steps (goto/fill/click/assert_text/extract on local fixture pages), {args.reps}\n"
            "repetitions of each, in turns, all warm. Twin = POST /api/runs?wait=60 -> completed, with\n"
            "the session video (the default) and without it (record_video: false); plain = Playwright\n"
            "over CDP to an already-running Chromium, new_context() -> last step."
        )
        rows = [
            [
                rep + 1,
                ms(twins[rep].total),
                ms(bare[rep].total),
                ms(plains[rep].total),
                f"{twins[rep].total / plains[rep].total:.2f}x",
                f"{bare[rep].total / plains[rep].total:.2f}x",
            ]
            for rep in range(args.reps)
        ]
        print(table(["rep", "Twin", "Twin, no video", "plain", "Twin/plain", "no video/plain"], rows))
        print()
        pln = median([p.total for p in plains])
        summary = []
        for name in VARIANTS[:2]:
            srv, cli = median([t.total for t in found[name]]), median(clients[name])
            summary.append(
                [f"{name}: server, created_at -> finished_at", ms(srv), ms(pln), f"{srv / pln:.2f}x"]
            )
            summary.append([f"{name}: client, POST ?wait=60 answered", ms(cli), ms(pln), f"{cli / pln:.2f}x"])
        print(table(["median (ms)", "Twin", "plain", "Twin / plain"], summary))
        print()
        print("where the time goes (medians over repetitions, ms):")
        print(
            table(
                ["part", *VARIANTS],
                [
                    [
                        "before step 1 (Twin: queue + dispatch + new context; plain: new_context + new_page)",
                        *(ms(median([t.setup for t in found[name]])) for name in VARIANTS),
                    ],
                    [
                        "inside the 20 steps (sum of step started -> finished)",
                        *(ms(median([sum(t.steps) for t in found[name]])) for name in VARIANTS),
                    ],
                    [
                        "between steps (Twin: lease + state writes + events + looks), sum of 19",
                        ms(median([t.gaps for t in twins])),
                        ms(median([t.gaps for t in bare])),
                        "0",
                    ],
                    [
                        "after step 20 (-> run finished_at)",
                        ms(median([t.tail for t in twins])),
                        ms(median([t.tail for t in bare])),
                        "0",
                    ],
                ],
            )
        )
        print()
        by_action: dict[str, dict[str, list[float]]] = {}
        for name in VARIANTS:
            for timing in found[name]:
                for step, took in zip(program, timing.steps, strict=True):
                    by_action.setdefault(step["action"], {n: [] for n in VARIANTS})[name].append(took)
        print(
            table(
                ["one step, by action (ms)", "n/run", *(f"{name} median" for name in VARIANTS)],
                [
                    [action, len(times["plain"]) // len(plains), *(ms(median(times[n])) for n in VARIANTS)]
                    for action, times in by_action.items()
                ],
            )
        )
        print()
        gap = median([t.gaps for t in bare]) / (len(program) - 1)
        ratio_bare = median([t.total for t in bare]) / pln
        ratio = median([t.total for t in twins]) / pln
        print(f"targets (issue 14): Twin's own work between steps <= {TARGET_GAP_MS:g} ms a step;")
        print(
            f"  Twin without the session video / plain <= {TARGET_RATIO}x"
            " (the video's own cost: bench/video_overhead.py)"
        )
        print(f"  between steps: {gap * 1000:.1f} ms a step  {verdict(gap * 1000 <= TARGET_GAP_MS)}")
        print(f"  no video / plain (server): {ratio_bare:.2f}x  {verdict(ratio_bare <= TARGET_RATIO)}")
        print(
            f"  with video / plain (server): {ratio:.2f}x"
            f" (the session video's share: {ratio - ratio_bare:+.2f}x)"
        )
        bench.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
