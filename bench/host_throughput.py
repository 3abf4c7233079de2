"""Issue 14: runs a worker host finishes per minute, the design before it against the new one.

Each design gets a throwaway Twin of its own (bench.harness: SQLite, Redis, Daphne, the fixture
site, real Celery workers, the host Chromium) and the same work, measured in the same invocation:

* ``throughput`` — ``--runs`` (100) runs of 6 steps (goto, fill, click that submits and
  navigates, wait_for, extract, goto) against fixture pages that answer after ``--latency``
  (300) ms, all POSTed at once: runs/minute (first POST to last completion), p95 time from POST
  to completed, CPU seconds per run (the run workers, their drivers, the host Chromium and its
  proxy), peak memory (PSS of the same), and how busy the machine's CPUs were meanwhile — the
  limit is CPU when they were busy throughout, memory when memory ran short, slots otherwise;
* ``gate`` — ``--gate-runs`` (200) runs that each pause at a gated click: runs/second until all
  are paused, CPU seconds per run;
* ``hosts`` — the ``throughput`` runs over two worker hosts on this machine (distinct host ids,
  browsers, queues; the new design): how they split, and the total.

Designs: ``prefork`` is the worker before issue 14 (a process per run, ``-c 2``: one sync
Playwright driver each); ``threads`` is the product's (one process, a thread per active run over
one Playwright loop: engine.bridge), at ``--concurrency`` (default TWIN_HOST_ACTIVE_RUNS's).

Usage:  .venv/bin/python bench/host_throughput.py [--runs 100] [--latency 300] [--parts throughput,gate,hosts]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import MIB, Bench, p95, run_in_threads, table


def six_steps(bench: Bench, latency: int) -> list[dict[str, Any]]:
    url = bench.site.url(f"/slow-form?ms={latency}")
    return [
        {"action": "goto", "url": url},
        {"action": "fill", "selector": "#q", "value": "hello"},
        {"action": "click", "selector": "#go"},
        {"action": "wait_for", "selector": "#done"},
        {"action": "extract", "selector": "#done", "name": "done"},
        {"action": "goto", "url": url},
    ]


def to_the_gate(bench: Bench) -> list[dict[str, Any]]:
    return [
        {"action": "goto", "url": bench.site.url("/pay")},
        {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay?"}},
    ]


class Meter:
    """CPU seconds and peak PSS of the bench's worker hosts (run workers, drivers, Chromium trees),
    sampled every ``interval`` s (a renderer that lives less than that is missed), and how busy
    the machine's CPUs were."""

    def __init__(self, bench: Bench, interval: float = 0.25) -> None:
        self.bench, self.interval = bench, interval
        self.cpu: dict[int, float] = {}
        self.start_cpu: dict[int, float] = {}
        self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_forever, daemon=True)
        self._machine = psutil.cpu_times()
        self.busy = 0.0

    def _processes(self) -> list[psutil.Process]:
        found = self.bench.worker_processes()
        for host in self.bench.hosts:
            with contextlib.suppress(Exception):
                found += self.bench.chromium_processes(host)
        return found

    def _sample(self, memory: bool) -> None:
        pss = 0
        for process in self._processes():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                self.cpu[process.pid] = times.user + times.system
                self.start_cpu.setdefault(process.pid, self.cpu[process.pid])
                if memory:
                    pss += process.memory_full_info().pss
        self.peak_pss = max(self.peak_pss, pss)

    def _sample_forever(self) -> None:
        n = 0
        while not self._stop.wait(self.interval):
            self._sample(memory=n % 4 == 0)
            n += 1

    def __enter__(self) -> Meter:
        self._sample(memory=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(memory=True)
        now = psutil.cpu_times()
        total = sum(now) - sum(self._machine)
        self.busy = (
            1
            - (
                now.idle
                + getattr(now, "iowait", 0)
                - self._machine.idle
                - getattr(self._machine, "iowait", 0)
            )
            / total
        )

    def cpu_seconds(self) -> float:
        # Processes that existed before the batch count from their start; new ones from zero.
        return sum(self.cpu[pid] - self.start_cpu.get(pid, 0.0) for pid in self.cpu)


@dataclass
class Batch:
    design: str
    runs: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float
    peak_pss: int
    busy: float
    hosts: Counter[str] = field(default_factory=Counter)
    failed: int = 0

    @property
    def per_minute(self) -> float:
        return self.runs / self.seconds * 60

    @property
    def per_second(self) -> float:
        return self.runs / self.seconds


def batch(bench: Bench, design: str, count: int, steps: list[dict[str, Any]], *, until: str) -> Batch:
    """POST ``count`` runs at once (16 client threads) and wait until each is ``until``."""
    from runs.models import Run, RunEvent

    bench.site.reset()
    with Meter(bench) as meter:
        started = time.time()
        ids = run_in_threads(lambda _: str(bench.create_run(steps)["id"]), count, threads=16)
        deadline = time.monotonic() + 60 + count * 6
        ended = {"failed", "cancelled", "rejected", "expired", "completed", "awaiting_approval"}
        while Run.objects.filter(pk__in=ids).exclude(status__in=ended).exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{design}: runs still going after {deadline} s")
            time.sleep(0.2)
    runs = list(Run.objects.filter(pk__in=ids))
    failed = sum(1 for run in runs if run.status != until)
    if until == "completed":
        finished = {str(run.pk): run.finished_at.timestamp() for run in runs if run.finished_at}
    else:
        rows = RunEvent.objects.filter(run_id__in=ids, type="run.awaiting_approval").values_list(
            "run_id", "created_at"
        )
        finished = {str(run_id): at.timestamp() for run_id, at in rows}
    created = {str(run.pk): run.created_at.timestamp() for run in runs}
    latencies = [finished[i] - created[i] for i in finished]
    last = max(finished.values(), default=time.time())
    return Batch(
        design=design,
        runs=count,
        seconds=last - started,
        latencies=latencies,
        cpu_seconds=meter.cpu_seconds(),
        peak_pss=meter.peak_pss,
        busy=meter.busy,
        hosts=Counter(run.host for run in runs),
        failed=failed,
    )


def designs(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    threads = {"pool": "threads"}
    if args.concurrency:
        threads["concurrency"] = args.concurrency
    return [("prefork -c 2 (before)", {"pool": "prefork", "concurrency": 2}), ("threads (now)", threads)]


def measure(args: argparse.Namespace, part: str, name: str, options: dict[str, Any]) -> Batch:
    hosts = 2 if part == "hosts" else 1
    with Bench(f"host throughput: {part}, {name}", quiet=args.quiet, hosts=hosts, **options) as bench:
        bench.warm_up()
        label = f"{name} -c {bench.concurrency}" if "threads" in name else name
        if hosts > 1:
            label += f", {hosts} hosts"
        if part == "gate":
            return batch(bench, label, args.gate_runs, to_the_gate(bench), until="awaiting_approval")
        return batch(bench, label, args.runs, six_steps(bench, args.latency), until="completed")


def report(part: str, batches: list[Batch], args: argparse.Namespace) -> None:
    cores = psutil.cpu_count() or 1
    base = batches[0]
    if part == "gate":
        print(f"{args.gate_runs} runs to their first gate (goto /pay, gated click), POSTed at once:")
        headers = [
            "design",
            "runs/s",
            "x before",
            "p95 s to gate",
            "CPU s/run",
            "peak MB",
            "CPU busy",
            "failed",
        ]
        rows = [
            [
                b.design,
                f"{b.per_second:.2f}",
                f"{b.per_second / base.per_second:.2f}x",
                f"{p95(b.latencies):.1f}",
                f"{b.cpu_seconds / b.runs:.2f}",
                f"{b.peak_pss / MIB:.0f}",
                f"{b.busy:.0%}",
                str(b.failed),
            ]
            for b in batches
        ]
    else:
        print(f"{args.runs} runs of 6 steps, pages answering after {args.latency} ms, POSTed at once:")
        headers = [
            "design",
            "runs/min",
            "x before",
            "p95 s",
            "CPU s/run",
            "peak MB",
            "CPU busy",
            "hosts",
            "failed",
        ]
        rows = [
            [
                b.design,
                f"{b.per_minute:.1f}",
                f"{b.per_minute / base.per_minute:.2f}x",
                f"{p95(b.latencies):.1f}",
                f"{b.cpu_seconds / b.runs:.2f}",
                f"{b.peak_pss / MIB:.0f}",
                f"{b.busy:.0%}",
                " / ".join(f"{n}" for _, n in sorted(b.hosts.items())),
                str(b.failed),
            ]
            for b in batches
        ]
    print(table(headers, rows))
    last = batches[-1]
    limit = "CPU" if last.busy >= 0.85 else "not CPU (slots or waiting)"
    print(
        f"the newest row kept {cores} CPUs {last.busy:.0%} busy: the limit is {limit}; "
        f"memory available at the end {psutil.virtual_memory().available / MIB:.0f} MB"
    )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--gate-runs", type=int, default=200)
    parser.add_argument("--latency", type=int, default=300, help="ms each fixture page takes to answer")
    parser.add_argument(
        "--concurrency", type=int, default=0, help="the new design's (default: the product's)"
    )
    parser.add_argument("--parts", default="throughput,gate,hosts")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    print(f"== host throughput (issue 14) == load average at start {psutil.getloadavg()}")
    print(f"command: {' '.join(sys.argv)}")
    print()
    for part in parts:
        if part == "hosts":
            threads = designs(args)[1]
            batches = [measure(args, "throughput", *threads), measure(args, "hosts", *threads)]
        else:
            batches = [measure(args, part, name, options) for name, options in designs(args)]
        report(part, batches, args)
    print(f"load average at end {psutil.getloadavg()}")


if __name__ == "__main__":
    main()
