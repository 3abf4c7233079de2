"""Run Twin's benchmarks one after the other (``make bench`` calls this).

Each benchmark starts and stops its own throwaway Twin (bench/harness.py) and prints its own table;
this prints them in sequence, then how long each took and whether it ran to the end.

Usage:  .venv/bin/python bench/run_all.py [NAME ...] [--with-parked-memory]
        NAME is one of: resume_latency, resume_vs_replay, executor_overhead, parked_runs,
        dashboard_pages (PostgreSQL at 127.0.0.1:5432), live_latency, video_overhead,
        webhook_latency, api_concurrency, skill_replay, agent_replay
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
BENCHMARKS = [
    "resume_latency",
    "resume_vs_replay",
    "executor_overhead",
    "parked_runs",
    "dashboard_pages",
    "live_latency",
    "video_overhead",
    "webhook_latency",
    "api_concurrency",
    "skill_replay",
    "agent_replay",
]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    parser.add_argument(
        "--with-parked-memory", action="store_true", help="also run bench/parked_memory.py (Chromium only)"
    )
    args = parser.parse_args()
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}")
    names = list(args.names) or list(BENCHMARKS)
    if args.with_parked_memory:
        names.append("parked_memory")

    results: list[tuple[str, int, float]] = []
    for name in names:
        script = BENCH_DIR / f"{name}.py"
        print(f"\n### {name}  (load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(script)], cwd=ROOT)
        results.append((name, code, time.perf_counter() - started))

    print("\n### summary")
    width = max(len(name) for name, _, _ in results)
    for name, code, elapsed in results:
        print(f"{name:<{width}}  {elapsed:6.1f} s  {'ok' if code == 0 else f'FAILED (exit {code})'}")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
