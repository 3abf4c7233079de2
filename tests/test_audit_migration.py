"""Events written before the trail was chained are numbered and chained by the migration."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("runs", "0003_backfill_step_total"), ("tenants", "0002_tenant_four_eyes")]
AFTER = [("runs", "0004_audit_trail_and_video"), ("tenants", "0003_auditor_role")]


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
            assert NewRun.objects.get(pk=run_id).audit_seq == 4
        out = io.StringIO()
        call_command("verifyaudit", stdout=out)
        assert "8 events checked: every trail is intact" in out.getvalue()
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
