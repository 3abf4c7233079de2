"""``make token``: the demo login and API token that ``make run`` prints, printed again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from tenants.demo import demo_port, demo_setup, demo_url, login_box
from twin_site.env import env_int


class Command(BaseCommand):
    help = "Print the demo login and its API token (the same one make run printed, unless --new)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=env_int("PORT", 8000, minimum=1))
        parser.add_argument("--new", action="store_true", help="revoke the demo token and issue another")
        parser.add_argument("--plain", action="store_true", help="print the token alone, for scripts")

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        login = demo_setup(var_dir=Path(settings.VAR_DIR), new_token=options["new"])
        if options["plain"]:
            self.stdout.write(login.token)
            return
        port = options["port"]
        title = f"Twin's demo login, for http://127.0.0.1:{port}/"
        self.stdout.write(login_box(login, title=title, port=port, demo_url=demo_url(demo_port(port))))
