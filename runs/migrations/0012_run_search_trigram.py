"""Trigram indexes for the runs list's search (goal and start URL, any case, anywhere).

PostgreSQL only, and only where the pg_trgm extension can be had (it is a trusted extension
from PostgreSQL 13: the database's owner may create it). Without it the search still works, by
reading the tenant's runs (docs/decisions.md, "timeline"). SQLite has no such index.
"""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError, migrations, transaction

INDEXES = {
    "run_goal_search": "goal",
    "run_url_search": "url",
}


def forwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):  # a savepoint
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError:
        return  # not allowed here: the search reads the runs instead
    for name, column in INDEXES.items():
        # Django's icontains is UPPER(column) LIKE UPPER(%s): the index is on that expression.
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON runs_run USING gin (UPPER({column}) gin_trgm_ops)"
        )


def backwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("runs", "0011_run_plan_step_planned")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
