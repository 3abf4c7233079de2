from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from runs.audit import CHECKPOINT_STORAGE, audit_checkpoint_export, checkpoint_public_key


class Command(BaseCommand):
    help = (
        "Export every run's audit head (run, seq, hash), signed, outside the database: to the "
        f"'{CHECKPOINT_STORAGE}' storage (default var/audit/), or to --output PATH. "
        "verifyaudit then reports a trail rewritten after it, even by someone holding the key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", help="write the checkpoint to this file instead of the audit storage")
        parser.add_argument(
            "--public-key",
            action="store_true",
            help="print the checkpoints' Ed25519 public key (hex) and write nothing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["public_key"]:
            self.stdout.write(checkpoint_public_key())
            return
        where = audit_checkpoint_export(output=options["output"])
        self.stdout.write(f"checkpoint written: {where}")
