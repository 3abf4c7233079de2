"""Signed checkpoints of the audit heads, kept outside the database.

Someone who holds the master key can recompute a whole chain; the heads exported (signed) by
``manage.py auditcheckpoint`` are what such a rewrite no longer matches, and ``verifyaudit``
compares with the newest of them.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from approvals.models import Approval
from approvals.services import Decision, approval_decide
from runs.audit import audit_checkpoint_export, checkpoint_build, checkpoint_storage, digest_of
from runs.events import record_event
from runs.models import Run, RunEvent
from runs.tasks import audit_checkpoint_task
from tests.conftest import Persona
from tests.test_audit_trail import verify
from tests.test_state_machine import paused_run

pytestmark = pytest.mark.usefixtures("private_urls")


def checkpoint(*args: str) -> str:
    out = io.StringIO()
    call_command("auditcheckpoint", *args, stdout=out)
    return out.getvalue()


def sql(statement: str, params: list[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def rechain_with_the_key(run: Run) -> None:
    """What someone holding the master key can do: make the chain whole again after an edit."""
    prev = ""
    for event in RunEvent.objects.filter(run=run).order_by("seq"):
        digest = digest_of(event, prev_hash=prev)
        sql(
            f"UPDATE {RunEvent._meta.db_table} SET prev_hash = %s, hash = %s WHERE id = %s",
            [prev, digest, event.pk],
        )
        prev = digest
    last = RunEvent.objects.filter(run=run).order_by("seq").last()
    Run.objects.filter(pk=run.pk).update(audit_seq=last.seq if last else 0, audit_head=prev)


def decided(alice: Persona) -> tuple[Run, Approval]:
    run, approval = paused_run(alice.tenant, alice.user)
    approval_decide(run=run, decision=Decision(approve=True), actor=alice.user)
    return run, approval


def test_the_checkpoint_holds_every_head_signed_and_verifyaudit_compares_with_it(alice: Persona) -> None:
    run, _ = decided(alice)
    empty = Run.objects.create(tenant=alice.tenant, program=[], created_by=alice.user)  # no events yet

    out = checkpoint()

    storage = checkpoint_storage()
    (name,) = storage.listdir("")[1]
    assert out.strip() == f"checkpoint written: {name}"
    written = json.loads(storage.open(name).read())
    head = Run.objects.get(pk=run.pk)
    assert written["runs"] == [
        {"run": str(run.pk), "tenant": alice.tenant.pk, "seq": head.audit_seq, "hash": head.audit_head}
    ]
    assert str(empty.pk) not in json.dumps(written)
    assert written["signature"] and written["digest"] and written["created_at"]
    code, out = verify()
    assert code == 0, out
    assert f"compared with the checkpoint of {written['created_at']} ({name})" in out
    assert "every trail is intact" in out


def test_a_trail_rewritten_with_the_key_after_the_checkpoint_is_reported(
    alice: Persona, bob: Persona
) -> None:
    run, approval = decided(alice)
    other, _ = decided(alice)
    checkpoint()

    # Someone with the database AND the master key says bob decided, and recomputes the chain.
    Approval.objects.filter(pk=approval.pk).update(decided_by=bob.user)
    event = RunEvent.objects.get(run=run, type="approval.decided")
    sql(
        f"UPDATE {RunEvent._meta.db_table} SET data = %s, actor_id = %s WHERE id = %s",
        [json.dumps({**event.data, "decided_by": "bob"}), bob.user.pk, event.pk],
    )
    rechain_with_the_key(run)
    assert verify("--no-checkpoint")[0] == 0  # the chain alone cannot tell: it was recomputed

    code, out = verify()

    assert code == 1, out
    last = RunEvent.objects.filter(run=run).order_by("seq").last()
    assert last is not None
    assert (
        f"BREAK run {run.pk}, event #{last.seq} (id {last.pk}): differs from the checkpoint of" in out
        and "(the trail was rewritten after the checkpoint)" in out
    )
    assert str(other.pk) not in out
    assert "1 runs have a broken trail" in out


def test_a_head_that_moved_backwards_is_reported(alice: Persona) -> None:
    run, _ = decided(alice)
    checkpoint()
    events = list(RunEvent.objects.filter(run=run).order_by("seq"))
    for event in events[-2:]:
        sql(f"DELETE FROM {RunEvent._meta.db_table} WHERE id = %s", [event.pk])
    rechain_with_the_key(run)
    assert verify("--no-checkpoint")[0] == 0

    code, out = verify()

    assert code == 1, out
    assert f"BREAK run {run.pk}: the checkpoint of" in out
    assert f"recorded its trail up to event #{events[-1].seq}, which is no longer there" in out


def test_a_run_missing_from_the_database_is_reported(alice: Persona, tmp_path: Path) -> None:
    run, _ = decided(alice)
    gone = "0b5e3c3a-5f2b-4a52-9d57-6c0e7e0f6a11"
    head = Run.objects.get(pk=run.pk)
    signed = checkpoint_build(
        [(run.pk, alice.tenant.pk, head.audit_seq, head.audit_head), (gone, alice.tenant.pk, 4, "ab" * 32)],
        at=timezone.now(),
    )
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(signed))

    code, out = verify("--checkpoint", str(path))

    assert code == 1, out
    assert f"BREAK run {gone}: missing from the database, but the checkpoint of" in out
    assert "has its trail up to event #4 (deleted?)" in out
    assert f"BREAK run {run.pk}" not in out


def test_an_edited_or_foreign_checkpoint_is_not_trusted(alice: Persona, tmp_path: Path) -> None:
    decided(alice)
    path = tmp_path / "checkpoint.json"
    assert checkpoint("--output", str(path)).strip() == f"checkpoint written: {path}"
    assert checkpoint_storage().listdir("")[1] == []  # --output writes only the file
    assert verify("--checkpoint", str(path))[0] == 0

    edited = json.loads(path.read_text())
    edited["runs"][0]["seq"] += 5  # e.g. to hide that events were removed
    path.write_text(json.dumps(edited))
    code, out = verify("--checkpoint", str(path))
    assert code == 1, out
    assert f"BREAK checkpoint {path}: its signature does not verify" in out
    assert "the checkpoint cannot be trusted" in out

    with pytest.MonkeyPatch.context() as patch:  # signed under another master key
        patch.setattr(settings, "TWIN_MASTER_KEY", "another master key, 32 characters")
        from vault import crypto

        crypto._derived_key.cache_clear()
        try:
            foreign = checkpoint_build([], at=timezone.now())
        finally:
            crypto._derived_key.cache_clear()
    path.write_text(json.dumps(foreign))
    assert verify("--checkpoint", str(path))[0] == 1


def test_runs_created_or_grown_after_the_checkpoint_are_fine_and_the_newest_checkpoint_is_used(
    alice: Persona, carol: Persona
) -> None:
    run, _ = paused_run(alice.tenant, alice.user)
    old = audit_checkpoint_export(at=timezone.now() - timedelta(days=1))
    approval_decide(run=run, decision=Decision(approve=True), actor=alice.user)  # grows the trail
    newer = audit_checkpoint_export()
    later, _ = paused_run(alice.tenant, alice.user)
    elsewhere, _ = paused_run(carol.tenant, carol.user)
    record_event(run, "test.note", data={"after": "the checkpoint"})

    code, out = verify()
    assert code == 0, out
    assert f"({newer})" in out and f"({old})" not in out

    # A tenant's check leaves out the other tenants' heads (and runs).
    sql(f"DELETE FROM {RunEvent._meta.db_table} WHERE run_id = %s", [elsewhere.pk.hex])
    code, out = verify("--tenant", alice.tenant.slug)
    assert code == 0, out
    assert str(elsewhere.pk) not in out and str(later.pk) not in out


def test_beat_writes_a_checkpoint_every_day(alice: Persona) -> None:
    decided(alice)
    entry: dict[str, Any] = settings.CELERY_BEAT_SCHEDULE["audit-checkpoint"]
    assert entry["task"] == "runs.tasks.audit_checkpoint_task"
    now = timezone.now()
    assert entry["schedule"].remaining_estimate(now - timedelta(days=1)) <= timedelta(0)  # due daily

    name = audit_checkpoint_task()

    assert checkpoint_storage().listdir("")[1] == [name]
    assert verify()[0] == 0
