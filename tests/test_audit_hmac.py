"""The audit chain is keyed: someone who can rewrite the database but does not hold the master
key cannot edit a decision and recompute the chain to hide it.

Finding 7 of issue 9: editing ``decided_by`` and recomputing the (unkeyed SHA-256) chain made
``verifyaudit`` report every trail intact.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from approvals.models import Approval
from runs.models import Run, RunEvent
from tests.conftest import Persona
from tests.test_audit_trail import every_stored_value, verify
from tests.test_state_machine import paused_run

pytestmark = pytest.mark.usefixtures("private_urls")


def sql(statement: str, params: list[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def attackers_digest(event: RunEvent, prev: str) -> str:
    """What someone with the database and the source, but not the master key, can compute
    (the unkeyed SHA-256 the chain used before it was keyed)."""
    body = {
        "prev": prev,
        "run": str(event.run_id),
        "tenant": event.tenant_id,
        "seq": event.seq,
        "type": event.type,
        "step": event.step_index,
        "actor": event.actor_id,
        "data": json.loads(json.dumps(event.data, default=str)),
        "at": event.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def rewrite_decision(run: Run, approval: Approval, *, to: Any) -> RunEvent:
    """Say ``to`` decided the pause: the approval row, the event, and the whole chain after it."""
    Approval.objects.filter(pk=approval.pk).update(decided_by=to)
    decided = RunEvent.objects.get(run=run, type="approval.decided")
    data = {**decided.data, "decided_by": to.username}
    sql(
        f"UPDATE {RunEvent._meta.db_table} SET data = %s, actor_id = %s WHERE id = %s",
        [json.dumps(data), to.pk, decided.pk],
    )
    prev = ""
    for event in RunEvent.objects.filter(run=run).order_by("seq"):
        digest = attackers_digest(event, prev)
        sql(
            f"UPDATE {RunEvent._meta.db_table} SET prev_hash = %s, hash = %s WHERE id = %s",
            [prev, digest, event.pk],
        )
        prev = digest
    Run.objects.filter(pk=run.pk).update(audit_head=prev)
    return decided


def test_a_decision_rewritten_and_rechained_without_the_key_is_reported(alice: Persona, bob: Persona) -> None:
    run, approval = paused_run(alice.tenant, alice.user)
    other, _ = paused_run(alice.tenant, alice.user)
    approved = alice.post(f"/api/runs/{run.pk}/approve", {"note": "checked"})
    assert approved.status_code == 202, approved.content
    assert verify()[0] == 0

    decided = rewrite_decision(run, approval, to=bob.user)
    approval.refresh_from_db()
    assert approval.decided_by == bob.user  # the forgery is in place ...
    assert RunEvent.objects.get(pk=decided.pk).data["decided_by"] == "bob"

    code, out = verify()  # ... and it is reported

    assert code == 1, out
    assert f"BREAK run {run.pk}, event #1 (id " in out
    assert f"BREAK run {run.pk}, event #{decided.seq} (id {decided.pk}): its content was changed" in out
    assert str(other.pk) not in out
    assert "1 runs have a broken trail" in out


def test_the_chain_key_is_in_no_table(alice: Persona) -> None:
    from runs.audit import CHAIN_KEY_PURPOSE, chain_key
    from vault.crypto import _master_key

    run, _ = paused_run(alice.tenant, alice.user)
    stored = every_stored_value()

    assert Run.objects.get(pk=run.pk).audit_seq > 0
    assert chain_key().hex() not in stored
    assert _master_key().decode() not in stored
    assert CHAIN_KEY_PURPOSE == "audit-chain"


def test_a_chain_checked_with_another_master_key_does_not_verify(alice: Persona) -> None:
    from runs.audit import verify_run
    from vault.crypto import derived_key

    run, _ = paused_run(alice.tenant, alice.user)
    head = Run.objects.get(pk=run.pk)
    events = list(RunEvent.objects.filter(run=run).order_by("seq"))

    assert list(verify_run(run.pk, head.audit_seq, head.audit_head, events)) == []
    other_key = derived_key("audit-chain", master=b"another master key, 32 characters")
    breaks = list(verify_run(run.pk, head.audit_seq, head.audit_head, events, key=other_key))
    assert [b.seq for b in breaks] == [e.seq for e in events]


# -- changing the master key ---------------------------------------------------------------------
@pytest.fixture
def new_master_key(settings: Any, tmp_path: Any) -> Any:
    """Switch TWIN_MASTER_KEY; return the file holding the old one (as an operator would keep it)."""
    from vault import crypto

    old = tmp_path / "old-master.key"
    old.write_text(crypto._master_key().decode() + "\n")

    def switch() -> Any:
        settings.TWIN_MASTER_KEY = "the new master key, rotated today"
        crypto._derived_key.cache_clear()
        crypto._fernet.cache_clear()
        return old

    yield switch
    crypto._derived_key.cache_clear()
    crypto._fernet.cache_clear()


def test_after_a_master_key_change_verifyaudit_re_keys_intact_trails_from_the_old_key(
    alice: Persona, new_master_key: Any
) -> None:
    run, _ = paused_run(alice.tenant, alice.user)
    alice.post(f"/api/runs/{run.pk}/approve")
    call_command("auditcheckpoint", stdout=io.StringIO())
    events = RunEvent.objects.filter(run=run).count()

    old_key_file = new_master_key()
    code, out = verify()
    assert code == 1  # under the new key nothing verifies: not the chain, not the checkpoint
    assert "its signature does not verify" in out

    code, out = verify("--rekey-from", str(old_key_file))

    assert code == 0, out
    assert "every trail is intact" in out
    assert f"re-keyed {events} events under the current master key" in out
    code, out = verify()
    assert code == 0, out
    assert "compared with the checkpoint of" in out


def test_a_broken_trail_is_not_re_keyed(alice: Persona, bob: Persona, new_master_key: Any) -> None:
    run, approval = paused_run(alice.tenant, alice.user)
    alice.post(f"/api/runs/{run.pk}/approve")
    rewrite_decision(run, approval, to=bob.user)  # without the key
    hashes = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("hash", flat=True))

    code, out = verify("--no-checkpoint", "--rekey-from", str(new_master_key()))

    assert code == 1, out
    assert f"BREAK run {run.pk}" in out
    assert "Nothing was re-keyed" in out
    assert list(RunEvent.objects.filter(run=run).order_by("seq").values_list("hash", flat=True)) == hashes
