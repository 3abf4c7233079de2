from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.audit import (
    CHAIN_KEY_PURPOSE,
    Checkpoint,
    audit_checkpoint_export,
    audit_rekey_run,
    checkpoint_parse,
    checkpoint_storage,
    latest_checkpoint_name,
    verify_run,
)
from runs.models import Run, RunEvent
from tenants.models import Tenant
from vault.crypto import derived_key


class Tally:
    """Counts the events going through, and keeps the one at the checkpointed ``seq``."""

    def __init__(self, seq: int | None) -> None:
        self.seq, self.count, self.at_seq = seq, 0, list[Any]()

    def through(self, rows: Iterator[Any]) -> Iterator[Any]:
        for row in rows:
            self.count += 1
            if row.seq == self.seq:
                self.at_seq.append(row)
            yield row


class Command(BaseCommand):
    help = (
        "Check every run's event trail against its keyed hash chain, and against the latest signed "
        "checkpoint of the heads (manage.py auditcheckpoint); report each break (an event edited, "
        "removed or inserted behind the application's back, or a trail rewritten after the "
        "checkpoint). Exits 1 on a break."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="only this tenant's runs (slug)")
        parser.add_argument("--run", help="only this run (id)")
        parser.add_argument(
            "--checkpoint",
            help="compare with this checkpoint file instead of the newest in the audit storage",
        )
        parser.add_argument("--no-checkpoint", action="store_true", help="check the chains only")
        parser.add_argument(
            "--rekey-from",
            metavar="OLD_KEY_FILE",
            help="after TWIN_MASTER_KEY was changed: check every trail (and the checkpoint) under the old "
            "master key read from this file, and only if all are intact re-chain them under the current "
            "key and write a fresh checkpoint. Stop web and workers first.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        old_master: bytes | None = None
        if options["rekey_from"]:
            if options["tenant"] or options["run"]:
                raise CommandError("--rekey-from re-keys every trail: it takes no --tenant or --run")
            old_master = self.read_key(options["rekey_from"])
        chain = None if old_master is None else derived_key(CHAIN_KEY_PURPOSE, master=old_master)
        runs = Run.objects.order_by("created_at", "pk")
        tenant_id: int | None = None
        if options["tenant"]:
            runs = runs.filter(tenant__slug=options["tenant"])
            tenant_id = Tenant.objects.filter(slug=options["tenant"]).values_list("pk", flat=True).first()
        only_run: str | None = None
        if options["run"]:
            try:
                only_run = str(uuid.UUID(options["run"]))
            except ValueError:
                raise CommandError(f"{options['run']!r} is not a run id") from None
            runs = runs.filter(pk=only_run)

        checkpoint, checkpoint_broken = self.load_checkpoint(options, master=old_master)
        expected: dict[str, dict[str, Any]] = {}
        if checkpoint is not None:
            expected = {
                run_id: head
                for run_id, head in checkpoint.heads.items()
                if (only_run is None or run_id == only_run)
                and (not options["tenant"] or head.get("tenant") == tenant_id)
            }

        checked = events = 0
        broken: set[str] = set()
        for run_id, head_seq, head_hash in runs.values_list("pk", "audit_seq", "audit_head").iterator():
            trail = RunEvent.objects.filter(run_id=run_id).order_by("seq", "id")
            kept = expected.pop(str(run_id), None)
            tally = Tally(None if kept is None else kept["seq"])
            problems = [
                str(b)
                for b in verify_run(run_id, head_seq, head_hash, tally.through(trail.iterator()), key=chain)
            ]
            if kept is not None and checkpoint is not None:
                problems += self.against_checkpoint(str(run_id), kept, tally.at_seq, checkpoint)
            checked += 1
            events += tally.count
            if problems:
                broken.add(str(run_id))
                for problem in problems:
                    self.stdout.write(f"BREAK {problem}")
        if only_run and not checked and not expected:
            raise CommandError(f"no run {options['run']}")
        source = checkpoint.describe() if checkpoint else ""
        for gone, kept in expected.items():  # in the checkpoint, gone from the database
            broken.add(gone)
            self.stdout.write(
                f"BREAK run {gone}: missing from the database, but {source} "
                f"has its trail up to event #{kept['seq']} (deleted?)"
            )

        if checkpoint is not None:
            self.stdout.write(f"compared with {checkpoint.describe()}")
        elif not options["no_checkpoint"] and not checkpoint_broken:
            self.stdout.write("no checkpoint to compare with yet (manage.py auditcheckpoint writes one)")
        summary = f"{checked} runs, {events} events checked: "
        if broken or checkpoint_broken:
            parts = [f"{len(broken)} runs have a broken trail"] if broken or not checkpoint_broken else []
            if checkpoint_broken:
                parts.append("the checkpoint cannot be trusted")
            self.stdout.write(summary + "; ".join(parts) + ".")
            if old_master is not None:
                self.stdout.write(
                    "Nothing was re-keyed: a broken trail must stay as it is (it is the evidence)."
                )
            raise SystemExit(1)
        self.stdout.write(summary + "every trail is intact.")
        if old_master is not None:
            rekeyed = sum(
                audit_rekey_run(run_id) for run_id in Run.objects.values_list("pk", flat=True).iterator()
            )
            self.stdout.write(f"re-keyed {rekeyed} events under the current master key")
            self.stdout.write(f"checkpoint written: {audit_checkpoint_export()}")

    @staticmethod
    def read_key(path: str) -> bytes:
        try:
            key = Path(path).read_text().strip()
        except OSError as exc:
            raise CommandError(f"cannot read the old master key from {path}: {exc.strerror}") from None
        if len(key) < 16:
            raise CommandError(f"{path} does not hold a master key (at least 16 characters)")
        return key.encode()

    def load_checkpoint(
        self, options: dict[str, Any], *, master: bytes | None = None
    ) -> tuple[Checkpoint | None, bool]:
        """The checkpoint to compare with, and whether one was there but cannot be trusted."""
        if options["no_checkpoint"]:
            return None, False
        if options["checkpoint"]:
            path = Path(options["checkpoint"])
            try:
                name, raw = str(path), path.read_bytes()
            except OSError as exc:
                raise CommandError(f"cannot read the checkpoint {path}: {exc.strerror}") from None
        else:
            latest = latest_checkpoint_name()
            if latest is None:
                return None, False
            with checkpoint_storage().open(latest, "rb") as fh:
                name, raw = latest, fh.read()
        try:
            return checkpoint_parse(name, raw, master=master), False
        except ValueError as exc:
            self.stdout.write(f"BREAK checkpoint {name}: {exc}")
            return None, True

    @staticmethod
    def against_checkpoint(
        run_id: str, kept: dict[str, Any], found: list[Any], checkpoint: Checkpoint
    ) -> list[str]:
        if not found:
            return [
                f"run {run_id}: {checkpoint.describe()} recorded its trail up to event #{kept['seq']}, "
                "which is no longer there (the head moved backwards: events removed?)"
            ]
        event = found[0]
        if event.hash != kept["hash"]:
            return [
                f"run {run_id}, event #{event.seq} (id {event.pk}): differs from {checkpoint.describe()} "
                "(the trail was rewritten after the checkpoint)"
            ]
        return []
