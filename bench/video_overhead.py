"""Session video cost: a 20-step run with and without recording, and a minute of busy video.

1. Overhead: the 20-step program of bench/executor_overhead.py, as runs alternately started with
   ``record_video`` true and false (same server, same worker, warm), measured as the run's
   created_at -> finished_at (the server's view) and as the client's wall time of
   ``POST /api/runs?wait=60``. CPU: user+system seconds of the worker's and the host Chromium's
   process trees during each run. Before the next run starts, the recorded one's video is made
   (its encoding CPU is reported apart, from ``Recording.encode_seconds``).
   Target: recording adds at most 15 % to the median run time.
2. A busy page: a run that waits on an animated page for ``--busy`` seconds (every frame changes),
   recorded; reported per minute of video: file size, frames, encoding CPU, and the CPU the
   worker + Chromium spent while recording compared with the same run unrecorded.

Usage:  .venv/bin/python bench/video_overhead.py [--reps N] [--busy SECONDS]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from bench.executor_overhead import stamp, steps
from bench.harness import Bench, median, ms, recording_of, table, verdict

TARGET_OVERHEAD = 0.15


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.Error:
            pass
    return total


def trees(bench: Bench) -> list[psutil.Process]:
    root = psutil.Process(int(bench.host_browser()["pid"]))
    return [*bench.worker_processes(), root, *root.children(recursive=True)]


def start(
    bench: Bench, program: list[dict[str, Any]], *, record: bool, goal: str
) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    response = bench._api().post(
        "/api/runs?wait=60", json={"goal": goal, "steps": program, "record_video": record}
    )
    wall = time.perf_counter() - t0
    if response.status_code != 201 or response.json()["status"] != "completed":
        raise RuntimeError(f"run did not complete: {response.status_code} {response.text[:300]}")
    return dict(response.json()), wall


def measure(bench: Bench, program: list[dict[str, Any]], *, record: bool, goal: str) -> dict[str, Any]:
    processes = trees(bench)
    before = cpu_seconds(processes)
    run, wall = start(bench, program, record=record, goal=goal)
    cpu = cpu_seconds(processes) - before
    server = stamp(run["finished_at"]) - stamp(run["created_at"])
    result = {"server": server, "wall": wall, "cpu": cpu, "recording": None}
    if record:
        result["recording"] = recording_of(run["id"])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=8, help="runs of each kind (alternating)")
    parser.add_argument("--busy", type=float, default=10.0, help="seconds on the animated page")
    args = parser.parse_args()

    with Bench("Session video: recording overhead and cost") as bench:
        program = steps(bench)
        bench.header(f"{args.reps} recorded + {args.reps} unrecorded runs of 20 steps, alternating")
        bench.warm_up(program)
        for record in (True, False):  # warm both paths (the first video's encoder start-up)
            measure(bench, program, record=record, goal="warm")
        on: list[dict[str, Any]] = []
        off: list[dict[str, Any]] = []
        for rep in range(args.reps):
            order = (True, False) if rep % 2 == 0 else (False, True)
            for record in order:
                (on if record else off).append(measure(bench, program, record=record, goal="overhead"))
            bench.say(f"rep {rep + 1}/{args.reps}")

        def med(rows: list[dict[str, Any]], key: str) -> float:
            return median([row[key] for row in rows])

        overhead = med(on, "server") / med(off, "server") - 1
        wall_overhead = med(on, "wall") / med(off, "wall") - 1
        print(
            table(
                ["", "recorded", "not recorded", "recorded / not"],
                [
                    [
                        "median run (created → finished)",
                        ms(med(on, "server")),
                        ms(med(off, "server")),
                        f"{1 + overhead:.3f}x",
                    ],
                    [
                        "median client wall time",
                        ms(med(on, "wall")),
                        ms(med(off, "wall")),
                        f"{1 + wall_overhead:.3f}x",
                    ],
                    [
                        "median CPU, worker + Chromium",
                        f"{med(on, 'cpu'):.2f} s",
                        f"{med(off, 'cpu'):.2f} s",
                        f"{med(on, 'cpu') / max(med(off, 'cpu'), 1e-9):.2f}x",
                    ],
                ],
            )
        )
        recs = [row["recording"] for row in on]
        print(
            f"\nvideo of a 20-step run: median {median([r.duration for r in recs]):.2f} s, "
            f"{median([r.frames for r in recs]):.0f} frames, "
            f"{median([r.size for r in recs]) / 1024:.0f} KiB, "
            f"encoded in {median([r.encode_seconds for r in recs]):.2f} CPU s (after the run, by a worker)"
        )
        print(
            f"recording overhead on the run: {overhead * 100:+.1f} % "
            f"(target ≤ {TARGET_OVERHEAD * 100:.0f} %) "
            f"{verdict(overhead <= TARGET_OVERHEAD)}"
        )

        busy = [
            {"action": "goto", "url": bench.site.url(f"/later?ms={int(args.busy * 1000)}&anim=1")},
            {"action": "wait_for", "selector": "#late", "timeout": args.busy + 20},
        ]
        bench.header(f"a busy page: {args.busy:g} s of animation, recorded and not")
        busy_on = measure(bench, busy, record=True, goal="busy")
        busy_off = measure(bench, busy, record=False, goal="busy")
        rec = busy_on["recording"]
        per_minute = 60 / max(rec.duration, 1e-9)
        print(
            table(
                ["per minute of busy video", "value"],
                [
                    ["file size (VP8 WebM)", f"{rec.size * per_minute / 1e6:.1f} MB"],
                    ["frames kept", f"{rec.frames * per_minute:.0f} ({rec.frames / rec.duration:.1f} fps)"],
                    ["encoding CPU (after the run)", f"{rec.encode_seconds * per_minute:.1f} s"],
                    [
                        "worker + Chromium CPU while recording",
                        f"{busy_on['cpu'] * per_minute:.1f} s "
                        f"(unrecorded: {busy_off['cpu'] * per_minute:.1f} s)",
                    ],
                    ["run time, recorded / not", f"{busy_on['server'] / busy_off['server']:.3f}x"],
                ],
            )
        )
        bench.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
