"""Events written before the trail was chained are numbered and chained by the migrations.

0004 numbered and chained them with plain SHA-256; 0006 checks each chain and re-keys it
(HMAC keyed from the master key), leaving a chain that was already broken as it was.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from runs.audit import digest_of, unkeyed_digest

BEFORE = [("runs", "0003_backfill_step_total"), ("tenants", "0002_tenant_four_eyes")]
AFTER = [("runs", "0006_audit_chain_keyed"), ("tenants", "0003_auditor_role")]


def migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_the_migration_chains_existing_events_and_verifyaudit_accepts_them() -> None:
    old = migrate(BEFORE)
    tenant = old.get_model("tenants", "Tenant").objects.create(slug="legacy", name="Legacy")
    Run = old.get_model("runs", "Run")
    Event = old.get_model("runs", "RunEvent")
    start = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    runs = []
    for n in range(2):
        run = Run.objects.create(tenant=tenant, program=[{"action": "goto", "url": "https://a.example"}])
        for i, type in enumerate(["run.running", "step.started", "step.finished", "run.completed"]):
            event = Event.objects.create(run=run, tenant=tenant, type=type, data={"n": n, "i": i})
            Event.objects.filter(pk=event.pk).update(created_at=start + timedelta(seconds=i))
        runs.append(run.pk)

    try:
        new = migrate(AFTER)
        NewRun = new.get_model("runs", "Run")
        for run_id in runs:
            trail = list(new.get_model("runs", "RunEvent").objects.filter(run_id=run_id).order_by("seq"))
            assert [e.seq for e in trail] == [1, 2, 3, 4]
            assert [e.type for e in trail] == [
                "run.running",
                "step.started",
                "step.finished",
                "run.completed",
            ]
            assert trail[0].prev_hash == "" and all(e.hash for e in trail)
            assert all(e.hash == digest_of(e) != unkeyed_digest(**content(e)) for e in trail)
            assert NewRun.objects.get(pk=run_id).audit_seq == 4
        out = io.StringIO()
        call_command("verifyaudit", stdout=out)
        assert "8 events checked: every trail is intact" in out.getvalue()
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def content(event: Any) -> dict[str, Any]:
    from runs.audit import event_content

    return event_content(event)


@pytest.mark.django_db(transaction=True)
def test_a_chain_broken_before_the_re_keying_stays_broken() -> None:
    old = migrate(BEFORE)
    tenant = old.get_model("tenants", "Tenant").objects.create(slug="legacy", name="Legacy")
    Run = old.get_model("runs", "Run")
    Event = old.get_model("runs", "RunEvent")
    run_ids = []
    for _ in range(2):
        run = Run.objects.create(tenant=tenant, program=[{"action": "goto", "url": "https://a.example"}])
        for i, type in enumerate(["run.running", "approval.decided", "run.completed"]):
            Event.objects.create(run=run, tenant=tenant, type=type, data={"decided_by": "alice", "i": i})
        run_ids.append(run.pk)

    try:
        unkeyed = migrate([("runs", "0005_run_record_video"), ("tenants", "0003_auditor_role")])
        # Someone edits an event of the first run while the chain is still plain SHA-256 ...
        edited = unkeyed.get_model("runs", "RunEvent").objects.get(run_id=run_ids[0], seq=2)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {edited._meta.db_table} SET data = %s WHERE id = %s",
                ['{"decided_by": "mallory", "i": 1}', edited.pk],
            )
        # ... and the re-keying must not turn it into a valid keyed chain.
        migrate(AFTER)
        out = io.StringIO()
        with pytest.raises(SystemExit) as exit:
            call_command("verifyaudit", "--no-checkpoint", stdout=out)
        assert exit.value.code == 1
        assert f"BREAK run {run_ids[0]}, event #2 (id {edited.pk}): its content was changed" in out.getvalue()
        assert str(run_ids[1]) not in out.getvalue()
        assert "1 runs have a broken trail" in out.getvalue()
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
