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
  browsers, queues; the new design): how they split, and the total;
* ``waiting`` — runs that mostly wait: ``--waiting-runs`` (48) of the same 6 steps against pages
  answering after ``--waiting-latency`` (3000) ms, as a slow site (or the agent's model) makes
  them; before, and now with 8 and 32 runs at a time;
* ``skills`` — the 20-step skill of bench/skill_replay.py (compiled from its hand-written run),
  ``--skill-runs`` (24) replays at once with 2, 4 and 8 runs at a time (the new design): runs per
  minute, and memory per run (peak PSS during the replays less the PSS before, per run at once).

Designs: ``prefork`` is the worker before issue 14 (a process per run, ``-c 2``: one sync
Playwright driver each); ``threads`` is the product's (one process, a thread per active run over
one Playwright loop: engine.bridge), at ``--concurrency`` (default TWIN_HOST_ACTIVE_RUNS's).

Usage:  .venv/bin/python bench/host_throughput.py [--runs 100] [--latency 300] [--parts throughput,gate,hosts]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
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
        self.kind: dict[int, str] = {}
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
                if process.pid not in self.kind:
                    self.kind[process.pid] = kind_of(process)
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

    def cpu_by_kind(self) -> dict[str, float]:
        spent: dict[str, float] = {}
        for pid, seconds in self.cpu.items():
            kind = self.kind.get(pid, "other")
            spent[kind] = spent.get(kind, 0.0) + seconds - self.start_cpu.get(pid, 0.0)
        return spent


def kind_of(process: psutil.Process) -> str:
    """Which part of a worker host a process is, for the CPU breakdown."""
    command = " ".join(process.cmdline())
    if "engine.egress" in command:
        return "egress proxy"
    if "celery" in command:
        return "worker (Python)"
    if "node" in process.name() or "playwright" in command:
        return "Playwright driver"
    if "--type=renderer" in command:
        return "Chromium renderers"
    if "--type=" in command:
        return "Chromium other"
    return "Chromium browser"


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
    baseline_pss: int = 0
    concurrency: int = 0
    cpu_by_kind: dict[str, float] = field(default_factory=dict)

    @property
    def per_minute(self) -> float:
        return self.runs / self.seconds * 60

    @property
    def per_second(self) -> float:
        return self.runs / self.seconds


def post(bench: Bench, body: dict[str, Any]) -> str:
    assert bench.http is not None
    response = bench.http.post("/api/runs", json=body)
    if response.status_code != 201:
        raise RuntimeError(f"POST /api/runs: {response.status_code} {response.text[:500]}")
    return str(response.json()["id"])


def batch(bench: Bench, design: str, count: int, body: dict[str, Any], *, until: str) -> Batch:
    """POST ``count`` runs at once (16 client threads) and wait until each is ``until``."""
    from runs.models import Run, RunEvent

    bench.site.reset()
    with Meter(bench) as meter:
        before = meter.peak_pss
        started = time.time()
        ids = run_in_threads(lambda _: post(bench, body), count, threads=16)
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
        baseline_pss=before,
        cpu_by_kind=meter.cpu_by_kind(),
    )


def designs(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    threads = {"pool": "threads"}
    if args.concurrency:
        threads["concurrency"] = args.concurrency
    return [("prefork -c 2 (before)", {"pool": "prefork", "concurrency": 2}), ("threads (now)", threads)]


def measure(args: argparse.Namespace, part: str, name: str, options: dict[str, Any]) -> Batch:
    """One design's batch, in a process of its own (a Bench's Django is set up once per process)."""
    spec = {"args": vars(args), "part": part, "name": name, "options": options}
    command = [sys.executable, __file__, "--child", json.dumps(spec)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{part}, {name}: the measuring process failed ({done.returncode})")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["hosts"] = Counter(result["hosts"])
    return Batch(**result)


def child(spec: dict[str, Any]) -> None:
    args = argparse.Namespace(**spec["args"])
    part, name, options = spec["part"], spec["name"], dict(spec["options"])
    video = options.pop("video", True)
    hosts = 2 if part == "hosts" else 1
    with Bench(f"host throughput: {part}, {name}", quiet=args.quiet, hosts=hosts, **options) as bench:
        bench.warm_up()
        label = f"{name} -c {bench.concurrency}" if "threads" in name else name
        if hosts > 1:
            label += f", {hosts} hosts"
        body: dict[str, Any]
        if part == "gate":
            body = {"goal": "bench", "steps": to_the_gate(bench)}
            result = batch(bench, label, args.gate_runs, body, until="awaiting_approval")
        elif part == "skills":
            from bench.skill_replay import NAME, SLUG, Replay

            Replay(bench, "", video=True).compile()
            body = {"skill": SLUG, "params": {"name": NAME}}
            result = batch(bench, label, args.skill_runs, body, until="completed")
        else:
            body = {"goal": "bench", "steps": six_steps(bench, args.latency), "record_video": video}
            result = batch(bench, label, args.runs, body, until="completed")
        result.concurrency = bench.concurrency
    print(json.dumps({**result.__dict__, "hosts": dict(result.hosts)}))


def report(part: str, batches: list[Batch], args: argparse.Namespace) -> None:
    cores = psutil.cpu_count() or 1
    base = batches[0]
    if part == "skills":
        print(f"{args.skill_runs} replays of a 20-step skill (bench/skill_replay.py's) POSTed at once:")
        headers = ["runs at once", "runs/min", "x 2 at once", "p95 s", "CPU s/run", "MB per run", "CPU busy"]
        rows = [
            [
                str(b.concurrency),
                f"{b.per_minute:.1f}",
                f"{b.per_minute / base.per_minute:.2f}x",
                f"{p95(b.latencies):.1f}",
                f"{b.cpu_seconds / b.runs:.2f}",
                f"{(b.peak_pss - b.baseline_pss) / MIB / max(1, b.concurrency):.0f}",
                f"{b.busy:.0%}",
            ]
            for b in batches
        ]
    elif part == "gate":
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
    kinds = sorted(
        {kind for b in batches for kind in b.cpu_by_kind}, key=lambda k: -batches[-1].cpu_by_kind.get(k, 0)
    )
    print("CPU seconds per run, by process:")
    print(
        table(
            ["design", *kinds],
            [[b.design, *(f"{b.cpu_by_kind.get(k, 0) / b.runs:.2f}" for k in kinds)] for b in batches],
        )
    )
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
    parser.add_argument("--skill-runs", type=int, default=24)
    parser.add_argument("--waiting-runs", type=int, default=48)
    parser.add_argument("--waiting-latency", type=int, default=3000)
    parser.add_argument("--latency", type=int, default=300, help="ms each fixture page takes to answer")
    parser.add_argument(
        "--concurrency", type=int, default=0, help="the new design's (default: the product's)"
    )
    parser.add_argument("--parts", default="throughput,waiting,gate,hosts,skills")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    print(f"== host throughput (issue 14) == load average at start {psutil.getloadavg()}")
    print(f"command: {' '.join(sys.argv)}")
    print()
    for part in parts:
        if part == "throughput":
            # (what the session video costs of it: the same runs, not recorded)
            silent = {**designs(args)[1][1], "video": False}
            batches = [measure(args, part, *design) for design in designs(args)]
            batches.append(measure(args, part, "threads, no video", silent))
        elif part == "waiting":
            slow = argparse.Namespace(
                **{**vars(args), "runs": args.waiting_runs, "latency": args.waiting_latency}
            )
            batches = [measure(slow, "throughput", *designs(args)[0])]
            batches += [
                measure(slow, "throughput", "threads", {"pool": "threads", "concurrency": n}) for n in (8, 32)
            ]
            report("throughput", batches, slow)
            continue
        elif part == "skills":
            batches = [
                measure(args, "skills", "threads", {"pool": "threads", "concurrency": n}) for n in (2, 4, 8)
            ]
        elif part == "hosts":
            threads = designs(args)[1]
            batches = [measure(args, "throughput", *threads), measure(args, "hosts", *threads)]
        else:
            batches = [measure(args, part, name, options) for name, options in designs(args)]
        report(part, batches, args)
    print(f"load average at end {psutil.getloadavg()}")


if __name__ == "__main__":
    main()
