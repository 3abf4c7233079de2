"""``manage.py serve`` (``make run``) as an operator sees it: real processes, loopback only.

Each served Twin has its own ``TWIN_VAR_DIR`` (SQLite, the host's browser.json), its own host id,
and its own Redis on a free port (started by serve itself, as ``make run`` does when none answers),
so it never meets the test session's worker or another Twin on this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import wait_until
from tests.site.server import FixtureSite

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Served:
    """``manage.py serve --port P`` in a subprocess, with its output in ``var_dir/serve.log``."""

    def __init__(
        self, var_dir: Path, *, web_processes: int | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.var_dir = var_dir
        self.extra_env = env or {}
        self.port, self.redis_port = free_port(), free_port()
        self.host_id = f"pytest-serve-{secrets.token_hex(3)}"
        self.log = var_dir / "serve.log"
        self.web_processes = web_processes
        self.process: subprocess.Popen[bytes] | None = None
        self.token = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment of this Twin's processes (and of a ``manage.py`` command run beside it)."""
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)  # SQLite in its own var dir, whatever the session uses
        env.update(
            TWIN_VAR_DIR=str(self.var_dir),
            TWIN_HOST_ID=self.host_id,
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            TWIN_ALLOW_PRIVATE_URLS="1",
            DJANGO_SETTINGS_MODULE="tests.serve_app",
            PYTHONUNBUFFERED="1",
            PORT=str(self.port),
        )
        env.update(self.extra_env)
        return env

    def manage(self, *args: str) -> str:
        """``manage.py ARGS`` beside this Twin (its var dir, its database), as ``make token`` runs it."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout

    def start(self) -> Served:
        env = self.env()
        command = [sys.executable, "manage.py", "serve", "--port", str(self.port)]
        if self.web_processes:
            command += ["--web-processes", str(self.web_processes)]
        self.var_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 240  # a loaded machine starts 6 Djangos slowly
        while True:
            output = self.output()
            found = re.search(r"API token:\s+(\S+)", output)
            if found:
                self.token = found.group(1)
            ready = self.token and self.run_worker_ready_count() >= 1 and self.answers()
            if ready and len(self.web_pids()) == (self.web_processes or 2):
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()  # whatever did start (the host browser too) must not outlive the test
                raise RuntimeError(f"serve did not start:\n{output[-4000:]}")
            time.sleep(0.2)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def run_worker_ready_count(self) -> int:
        # The run worker is ``celery@<host>``; the webhook worker is ``webhooks@<host>``.
        return len(re.findall(r"\| .*celery@\S+ ready\.", self.output()))

    def answers(self) -> bool:
        try:
            return self.get("/api/runs", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def client(self, timeout: float = 60) -> httpx.Client:
        # No keep-alive: every request is a new connection, accepted by whichever web process is free.
        return httpx.Client(
            base_url=self.base,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=timeout,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def wait_status(self, run_id: str, *statuses: str, timeout: float = 240) -> dict[str, Any]:
        """The run once its status is one of ``statuses`` (a loaded machine can be slow)."""
        deadline = time.monotonic() + timeout
        while True:
            run = dict(self.get(f"/api/runs/{run_id}?wait=20").json())
            if run["status"] in statuses or time.monotonic() > deadline:
                return run

    def get(self, path: str, timeout: float = 60) -> httpx.Response:
        with self.client(timeout) as client:
            return client.get(path)

    def post(self, path: str, body: Any = None, timeout: float = 60) -> httpx.Response:
        with self.client(timeout) as client:
            return client.post(path, json=body)

    # -- its processes ----------------------------------------------------------------------------
    def children(self) -> list[psutil.Process]:
        assert self.process is not None
        try:
            return psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []

    def _pids(self, test: Any) -> list[int]:
        pids = []
        for child in self.children():
            with contextlib.suppress(psutil.Error):
                if test(child.cmdline()):
                    pids.append(child.pid)
        return pids

    def web_pids(self) -> list[int]:
        return self._pids(lambda argv: "daphne" in argv)

    def run_worker_pid(self) -> int | None:
        pids = self._pids(lambda argv: "worker" in argv and any(a.startswith("runs,") for a in argv))
        return pids[0] if pids else None

    def event_types(self, run_id: str) -> list[str]:
        with contextlib.closing(sqlite3.connect(self.var_dir / "twin.sqlite3")) as db:
            rows = db.execute(
                "SELECT type FROM runs_runevent WHERE replace(run_id, '-', '') = ? ORDER BY id",
                (run_id.replace("-", ""),),
            ).fetchall()
        return [row[0] for row in rows]

    def browser_state(self) -> dict[str, Any]:
        return dict(json.loads((self.var_dir / "hosts" / self.host_id / "browser.json").read_text()))

    def every_pid(self) -> set[int]:
        """serve, everything under it, and the host browser with its children."""
        pids: set[int] = set()
        assert self.process is not None
        roots = [self.process.pid]
        with contextlib.suppress(OSError, ValueError, KeyError):
            roots.append(int(self.browser_state()["pid"]))
        for pid in roots:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(pid)
                pids |= {pid} | {p.pid for p in process.children(recursive=True)}
        return pids

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def gone(pid: int) -> bool:
    """Not running (a zombie waiting for a reaper counts as gone: it holds nothing)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    twin = Served(tmp_path_factory.mktemp("serve"), web_processes=2).start()
    yield twin
    twin.stop()


@pytest.fixture
def fixture_site() -> Iterator[FixtureSite]:
    with FixtureSite() as site:
        yield site


def pay_program(site: FixtureSite) -> dict[str, Any]:
    return {
        "goal": "pay",
        "steps": [
            {"action": "goto", "url": site.url("/pay")},
            {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay $42?"}},
            {"action": "assert_text", "text": "Payment complete"},
        ],
    }


def test_a_killed_worker_is_restarted_alone_and_the_paused_run_resumes_in_place(
    served: Served, fixture_site: FixtureSite
) -> None:
    created = served.post("/api/runs", pay_program(fixture_site))
    assert created.status_code == 201, created.text
    run = served.wait_status(created.json()["id"], "awaiting_approval", "failed")
    assert run["status"] == "awaiting_approval", run
    browser_before = served.browser_state()
    web_before = sorted(served.web_pids())
    worker = served.run_worker_pid()
    assert worker is not None

    os.kill(worker, signal.SIGKILL)

    # serve restarts the worker and nothing else: same web processes, same host browser.
    new_worker = wait_until(
        lambda: (pid := served.run_worker_pid()) and pid != worker and pid, timeout=30, what="a new worker"
    )
    assert served.process is not None and served.process.poll() is None
    for _ in range(5):
        assert served.get("/api/runs", timeout=30).status_code == 200
    wait_until(lambda: served.run_worker_ready_count() >= 2, timeout=180, what="the new worker ready")
    assert sorted(served.web_pids()) == web_before
    assert served.browser_state() == browser_before
    assert not gone(int(browser_before["pid"]))
    assert "worker was killed by SIGKILL" in served.output()
    assert new_worker == served.run_worker_pid()

    approved = served.post(f"/api/runs/{run['id']}/approve")
    assert approved.status_code == 202, approved.text
    done = served.wait_status(run["id"], "completed", "failed", "awaiting_approval")
    assert done["status"] == "completed", done
    assert fixture_site.count("payment") == 1
    events = served.event_types(run["id"])
    assert "run.resumed_in_place" in events
    assert "run.restored_from_checkpoint" not in events


def test_a_killed_web_process_is_restarted_and_requests_keep_being_answered(served: Served) -> None:
    web = served.web_pids()
    assert len(web) == 2
    listening_lines = served.output().count("daphne.server: Listening on")

    os.kill(web[0], signal.SIGKILL)

    # The other process answers while the dead one restarts.
    statuses = [served.get("/api/runs", timeout=15).status_code for _ in range(10)]
    assert statuses == [200] * 10
    wait_until(
        lambda: len(pids := served.web_pids()) == 2 and web[0] not in pids,
        timeout=30,
        what="the web process restarted",
    )
    assert re.search(r"web\.\d was killed by SIGKILL", served.output())
    # The replacement accepts on the same socket: once it listens, kill the other original too;
    # requests are still answered (by the replacement, and by the second one once it is up).
    wait_until(
        lambda: served.output().count("daphne.server: Listening on") > listening_lines,
        timeout=120,
        what="the replacement listening",
    )
    os.kill(web[1], signal.SIGKILL)
    assert [served.get("/api/runs", timeout=15).status_code for _ in range(5)] == [200] * 5
    wait_until(
        lambda: served.output().count("daphne.server: Listening on") > listening_lines + 1,
        timeout=120,
        what="the second replacement listening",
    )
    assert web[1] not in served.web_pids() and len(served.web_pids()) == 2


def _dashboard_session(twin: Served) -> str:
    """The session cookie of the demo owner, signed in through the dashboard's login form."""
    found = re.search(r"dashboard login:\s+(\S+) / (\S+)", twin.output())
    assert found, "serve printed no demo login"
    with httpx.Client(base_url=twin.base, timeout=30) as client:
        form = client.get("/login/")
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert csrf, form.text[:500]
        signed_in = client.post(
            "/login/",
            data={
                "username": found.group(1),
                "password": found.group(2),
                "csrfmiddlewaretoken": csrf.group(1),
            },
            headers={"Referer": f"{twin.base}/login/"},
        )
        assert signed_in.status_code == 302, signed_in.text[:500]
        return str(client.cookies["sessionid"])


def test_live_events_reach_websockets_on_every_web_process(served: Served, fixture_site: FixtureSite) -> None:
    from websockets.sync.client import connect

    session = _dashboard_session(served)
    sockets: list[Any] = []
    with contextlib.ExitStack() as stack:
        # Connections until both processes hold at least one (each logs its WSCONNECT). Both accept
        # on one socket, and the one that accepted last is often first again (a CI run gave all 20
        # to one): after a few, each is made while a request holds whichever process takes it, so
        # the other accepts the connection — and the process that takes every connection takes
        # the hold too.
        accepted_by: set[str] = set()
        for attempt in range(20):
            holding = None
            if attempt >= 3:
                holding = threading.Thread(target=served.get, args=("/_test/hold?seconds=2",), daemon=True)
                holding.start()
                time.sleep(0.5)  # the hold is being served
            sockets.append(
                stack.enter_context(
                    connect(
                        f"ws://127.0.0.1:{served.port}/ws/events/",
                        additional_headers={"Cookie": f"sessionid={session}", "Origin": served.base},
                        open_timeout=15,
                    )
                )
            )
            if holding is not None:
                holding.join()
            accepted_by = set(re.findall(r"(web\.\d+)\s+\| .*WSCONNECT /ws/events/", served.output()))
            if len(accepted_by) >= 2 and len(sockets) >= 2:
                break
        assert len(accepted_by) >= 2, accepted_by

        created = served.post("/api/runs", pay_program(fixture_site))
        assert created.status_code == 201
        run_id = created.json()["id"]

        # The worker's events fan out through Redis to the consumers of every process.
        for ws in sockets:
            deadline = time.monotonic() + 90
            while True:
                message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
                if run_id in json.dumps(message):
                    break
        assert served.post(f"/api/runs/{run_id}/cancel").status_code == 200


def _timed_get(twin: Served, path: str, results: dict[str, float], key: str) -> None:
    started = time.perf_counter()
    response = twin.get(path)
    assert response.status_code == 200, response.text
    results[key] = time.perf_counter() - started


def _fast_latencies_while_one_request_holds_a_process(twin: Served, hold: float) -> list[float]:
    """Latencies of three GET /api/runs sent one after the other while ``/_test/hold`` runs."""
    results: dict[str, float] = {}
    slow = threading.Thread(target=_timed_get, args=(twin, f"/_test/hold?seconds={hold}", results, "slow"))
    slow.start()
    time.sleep(0.5)  # the slow request is being served
    fast = []
    for _ in range(3):
        started = time.perf_counter()
        assert twin.get("/api/runs").status_code == 200
        fast.append(time.perf_counter() - started)
    slow.join()
    assert results["slow"] >= hold / 3  # sized by a timed call: roughly `hold`
    return fast


def _unloaded_latency(twin: Served) -> float:
    """GET /api/runs with nothing held: what "promptly" means on this machine right now."""
    latencies = []
    for _ in range(3):
        started = time.perf_counter()
        assert twin.get("/api/runs").status_code == 200
        latencies.append(time.perf_counter() - started)
    return sorted(latencies)[1]


def test_a_request_holding_one_web_process_does_not_delay_another(served: Served, tmp_path: Path) -> None:
    # Before: one web process (as serve ran until now). The request queued behind the slow one.
    single = Served(tmp_path / "single", web_processes=1).start()
    try:
        baseline = _unloaded_latency(single)
        serialized = _fast_latencies_while_one_request_holds_a_process(single, hold=8)
    finally:
        single.stop()
    assert serialized[0] > baseline + 2.0, (baseline, serialized)

    # Now: the default two processes; the other one answers at once.
    baseline = _unloaded_latency(served)
    parallel = _fast_latencies_while_one_request_holds_a_process(served, hold=8)
    assert max(parallel) < baseline + 1.0, (baseline, parallel)


def test_sigterm_stops_every_process_and_the_host_browser(served: Served) -> None:
    pids = served.every_pid()
    browser = int(served.browser_state()["pid"])
    assert browser in pids and len(pids) > 8  # serve, 2 web, 2 workers (+pool), beat, redis, Chromium

    assert served.process is not None
    os.kill(served.process.pid, signal.SIGTERM)
    assert served.process.wait(timeout=60) == 0

    wait_until(lambda: all(gone(pid) for pid in pids), timeout=20, what="every process gone")
    assert not listening(served.port)
    assert not listening(served.redis_port)
    assert not (served.var_dir / "hosts" / served.host_id / "browser.json").exists()
