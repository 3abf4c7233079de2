"""Re-chain every run's trail with the keyed digest (HMAC-SHA256 keyed from the master key).

Each run's chain is checked first, as it was written (plain SHA-256, or already keyed by a
process that ran the new code): only an intact chain is re-keyed. A chain that was already
broken is left exactly as it is, so ``verifyaudit`` keeps reporting it instead of this
migration laundering the tampering into a valid-looking keyed chain.

Events are append-only at the ORM level: the rows are rewritten with raw SQL.
"""

import logging
from collections.abc import Callable
from typing import Any

from django.db import migrations

log = logging.getLogger("runs.audit")


def _rechain(
    apps: Any, schema_editor: Any, *, accepts: list[Callable[..., str]], write: Callable[..., str]
) -> None:
    from runs.audit import GENESIS, event_content

    Run = apps.get_model("runs", "Run")
    RunEvent = apps.get_model("runs", "RunEvent")
    connection = schema_editor.connection
    quote = connection.ops.quote_name
    events_table = quote(RunEvent._meta.db_table)
    left = []
    for run_id, head_seq, head_hash in Run.objects.values_list("pk", "audit_seq", "audit_head").iterator():
        trail = list(RunEvent.objects.filter(run_id=run_id).order_by("seq", "id"))
        expected_seq, prev, intact = 1, GENESIS, True
        for event in trail:
            content = event_content(event)
            if (
                event.seq != expected_seq
                or event.prev_hash != prev
                or not any(digest(**content) == event.hash for digest in accepts)
            ):
                intact = False
                break
            expected_seq, prev = event.seq + 1, event.hash
        if not intact or expected_seq - 1 != head_seq or prev != head_hash:
            left.append(str(run_id))
            continue
        prev = GENESIS
        with connection.cursor() as cursor:
            for event in trail:
                digest = write(**event_content(event, prev_hash=prev))
                cursor.execute(
                    f"UPDATE {events_table} SET prev_hash = %s, hash = %s WHERE id = %s",
                    [prev, digest, event.pk],
                )
                prev = digest
        Run.objects.filter(pk=run_id).update(audit_head=prev)  # runs are not append-only
    if left:
        log.warning(
            "%d run trails were already broken and were left as they are (verifyaudit reports them): %s",
            len(left),
            ", ".join(left),
        )


def key_the_chains(apps: Any, schema_editor: Any) -> None:
    from runs.audit import event_digest, unkeyed_digest

    _rechain(apps, schema_editor, accepts=[unkeyed_digest, event_digest], write=event_digest)


def unkey_the_chains(apps: Any, schema_editor: Any) -> None:
    from runs.audit import event_digest, unkeyed_digest

    _rechain(apps, schema_editor, accepts=[event_digest, unkeyed_digest], write=unkeyed_digest)


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0005_run_record_video"),
    ]

    operations = [
        migrations.RunPython(key_the_chains, unkey_the_chains),
    ]
