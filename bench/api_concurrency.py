"""The API under 200 concurrent clients: one web process against serve's default web tier.

Twin is served exactly as ``make run`` serves it (``manage.py serve``: web processes, run worker,
webhook worker, beat, and a Redis of its own on a free port, started by serve because none answers
there), once with ``--web-processes 1`` (the web tier before issue 9) and once with the default
(``TWIN_WEB_PROCESSES``, else one per core, 2 to 4). Each has its own temporary ``TWIN_VAR_DIR``
(SQLite) and host id; the fixture site (tests/site/server.py) runs in this process on 127.0.0.1.

For each configuration: 3 runs are started and left paused (so the lists and the inbox have
something in them), then ``--clients`` clients (default 200), each with its own connection
(httpx.AsyncClient, no connection sharing), all at once, send ``--requests`` requests (default 3)
one after the other to one endpoint, endpoint after endpoint:

  GET  /api/runs                          the tenant's runs
  GET  /api/runs/{id}                     one paused run
  GET  /api/approvals?status=pending      the inbox
  POST /api/runs                          a tiny program that pauses: goto /pay, gated click
                                          (one request per client: each run opens a page)

Reported per endpoint: requests, errors (non-2xx or a timeout of ``--timeout`` s), p50 and p95
latency (nearest rank, every request of every client), and the p95 ratio one process / default.
Bounded: each endpoint's phase stops after ``--phase-limit`` seconds (default 180; unfinished requests count
as errors). The load generator runs in this process, on the same cores as the server.

Usage:  .venv/bin/python bench/api_concurrency.py [--clients 200] [--requests 3] [--web-processes N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import _free_port, command_line, loadavg, median, ms, p95, table
from tests.site.server import FixtureSite

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    wall: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies) + self.errors


class Served:
    """``manage.py serve`` in a subprocess with its own var dir, host id and Redis."""

    def __init__(self, web_processes: int | None) -> None:
        self.web_processes = web_processes
        self.tmp = Path(tempfile.mkdtemp(prefix="twin-bench-api-"))
        self.port, self.redis_port = _free_port(), _free_port()
        self.log = self.tmp / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.token = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Served:
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)
        env.update(
            TWIN_VAR_DIR=str(self.tmp / "var"),
            TWIN_HOST_ID=f"bench-api-{secrets.token_hex(3)}",
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            TWIN_ALLOW_PRIVATE_URLS="1",
            DJANGO_SETTINGS_MODULE="twin_site.settings",
            PYTHONUNBUFFERED="1",
        )
        command = [sys.executable, "manage.py", "serve", "--port", str(self.port)]
        if self.web_processes:
            command += ["--web-processes", str(self.web_processes)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 120
        while True:
            text = self.log.read_text(errors="replace")
            found = re.search(r"API token:\s+(\S+)", text)
            self.token = found.group(1) if found else ""
            if self.token and re.search(r"celery@\S+ ready\.", text) and self._answers():
                self.web_count = len(re.findall(r"serve\s+\| web\.\d+ started", text))
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"serve did not start:\n{text[-3000:]}")
            time.sleep(0.3)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.base}/api/runs", headers=self.headers, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def pausing_program(site: FixtureSite) -> dict[str, Any]:
    return {
        "goal": "bench",
        "steps": [
            {"action": "goto", "url": site.url("/pay")},
            {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay $42?"}},
        ],
    }


async def hammer(
    served: Served, phase: Phase, *, method: str, path: str, body: Any, clients: int, requests: int, args: Any
) -> None:
    async def client() -> None:
        async with httpx.AsyncClient(
            base_url=served.base, headers=served.headers, timeout=args.timeout
        ) as http:
            for _ in range(requests):
                started = time.perf_counter()
                try:
                    response = await http.request(method, path, json=body)
                    ok = 200 <= response.status_code < 300
                except httpx.HTTPError:
                    ok = False
                if ok:
                    phase.latencies.append(time.perf_counter() - started)
                else:
                    phase.errors += 1

    started = time.perf_counter()
    tasks = [asyncio.ensure_future(client()) for _ in range(clients)]
    _, pending = await asyncio.wait(tasks, timeout=args.phase_limit)
    for task in pending:
        task.cancel()
    phase.wall = time.perf_counter() - started
    phase.errors += clients * requests - phase.requests  # what never finished in the phase's time


def measure(web_processes: int | None, site: FixtureSite, args: Any) -> tuple[int, list[Phase]]:
    with Served(web_processes) as served:
        program = pausing_program(site)
        run_ids = []
        for _ in range(3):
            created = httpx.post(
                f"{served.base}/api/runs?wait=60", json=program, headers=served.headers, timeout=90
            )
            created.raise_for_status()
            run_ids.append(created.json()["id"])
        endpoints = [
            ("GET /api/runs", "GET", "/api/runs", None, args.requests),
            ("GET /api/runs/{id}", "GET", f"/api/runs/{run_ids[0]}", None, args.requests),
            (
                "GET /api/approvals?status=pending",
                "GET",
                "/api/approvals?status=pending",
                None,
                args.requests,
            ),
            ("POST /api/runs", "POST", "/api/runs", program, 1),
        ]
        phases = []
        for name, method, path, body, requests in endpoints:
            phase = Phase(name)
            asyncio.run(
                hammer(
                    served,
                    phase,
                    method=method,
                    path=path,
                    body=body,
                    clients=args.clients,
                    requests=requests,
                    args=args,
                )
            )
            phases.append(phase)
            print(
                f"  {served.web_count} web process(es)  {name:<34} {phase.requests} requests, "
                f"{phase.errors} errors, p95 {ms(p95(phase.latencies))} ms, {phase.wall:.1f} s",
                flush=True,
            )
        return served.web_count, phases


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=3, help="per client, GET endpoints")
    parser.add_argument("--web-processes", type=int, default=None, help="the 'after' tier (default: serve's)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--phase-limit", type=float, default=180.0, help="seconds per endpoint")
    args = parser.parse_args()

    print(f"# API latency under {args.clients} concurrent clients: one web process vs serve's default")
    print(f"command: {command_line()}")
    print(f"cores: {os.cpu_count()}, load average at start: {loadavg()}", flush=True)
    with FixtureSite() as site:
        _, before = measure(1, site, args)
        after_count, after = measure(args.web_processes, site, args)

    rows = []
    for one, many in zip(before, after, strict=True):
        ratio = p95(one.latencies) / p95(many.latencies) if many.latencies else float("nan")
        rows.append(
            [
                one.name,
                f"{one.requests}",
                f"{one.errors} / {many.errors}",
                f"{ms(median(one.latencies))} / {ms(p95(one.latencies))}",
                f"{ms(median(many.latencies))} / {ms(p95(many.latencies))}",
                f"{ratio:.2f}x",
            ]
        )
    print()
    print(
        table(
            [
                "endpoint",
                "requests",
                "errors 1 / N",
                "1 process p50 / p95 ms",
                f"{after_count} processes p50 / p95 ms",
                "p95 1 / N",
            ],
            rows,
        )
    )
    print(f"load average at end: {loadavg()}")
    return 0 if all(p.errors == 0 for p in before + after) else 1


if __name__ == "__main__":
    sys.exit(main())
