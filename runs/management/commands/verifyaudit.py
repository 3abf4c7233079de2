from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.audit import verify_run
from runs.models import Run, RunEvent


class Command(BaseCommand):
    help = (
        "Check every run's event trail against its hash chain; report each break "
        "(an event edited, removed or inserted behind the application's back). Exits 1 on a break."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="only this tenant's runs (slug)")
        parser.add_argument("--run", help="only this run (id)")

    def handle(self, *args: Any, **options: Any) -> None:
        runs = Run.objects.order_by("created_at", "pk")
        if options["tenant"]:
            runs = runs.filter(tenant__slug=options["tenant"])
        if options["run"]:
            try:
                runs = runs.filter(pk=uuid.UUID(options["run"]))
            except ValueError:
                raise CommandError(f"{options['run']!r} is not a run id") from None
        checked = events = broken = 0
        for run_id, head_seq, head_hash in runs.values_list("pk", "audit_seq", "audit_head").iterator():
            trail = RunEvent.objects.filter(run_id=run_id).order_by("seq", "id")
            count = 0

            def counted(rows: Any) -> Any:
                nonlocal count
                for row in rows:
                    count += 1
                    yield row

            breaks = list(verify_run(run_id, head_seq, head_hash, counted(trail.iterator())))
            checked += 1
            events += count
            if breaks:
                broken += 1
                for problem in breaks:
                    self.stdout.write(f"BREAK {problem}")
        if options["run"] and not checked:
            raise CommandError(f"no run {options['run']}")
        summary = f"{checked} runs, {events} events checked: "
        if broken:
            self.stdout.write(summary + f"{broken} runs have a broken trail.")
            raise SystemExit(1)
        self.stdout.write(summary + "every trail is intact.")
