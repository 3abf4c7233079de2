"""The run's event trail as a keyed hash chain, and its verification.

Each event's hash is an HMAC-SHA256, keyed from the master key, over its content and the
hash of the event before it in the same run; the run row keeps the head (count and last
hash). Editing, removing or inserting an event behind the ORM's back therefore shows as a
break that ``manage.py verifyaudit`` reports, and someone who can rewrite the database but
does not hold the master key cannot recompute the chain to hide it: the key lives in the
environment, never in the database. Against someone who holds the key too, the signed
checkpoints (``runs.checkpoint``) kept outside the database are the outside copy of the heads.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS = ""
# The HKDF label of the chain's key (vault.crypto.derived_key): its own key, so no other use
# of the master key can produce a chain hash.
CHAIN_KEY_PURPOSE = "audit-chain"


def chain_key() -> bytes:
    from vault.crypto import derived_key

    return derived_key(CHAIN_KEY_PURPOSE)


def canonical(value: Any) -> Any:
    """The value as the database gives it back (JSON types only)."""
    return json.loads(json.dumps(value, default=str))


def _event_text(
    *,
    prev_hash: str,
    run_id: Any,
    tenant_id: int,
    seq: int,
    type: str,
    step_index: int | None,
    actor_id: int | None,
    data: Any,
    created_at: datetime,
) -> str:
    moment = created_at.astimezone(UTC).isoformat(timespec="microseconds")
    body = {
        "prev": prev_hash,
        "run": str(run_id),
        "tenant": tenant_id,
        "seq": seq,
        "type": type,
        "step": step_index,
        "actor": actor_id,
        "data": canonical(data),
        "at": moment,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_digest(*, key: bytes | None = None, **content: Any) -> str:
    """The HMAC-SHA256 (hex) of an event's content and the hash before it, keyed ``key``.

    ``content`` is prev_hash, run_id, tenant_id, seq, type, step_index, actor_id, data and
    created_at; ``key`` defaults to the chain key derived from the current master key.
    """
    text = _event_text(**content)
    return hmac.new(chain_key() if key is None else key, text.encode(), hashlib.sha256).hexdigest()


def unkeyed_digest(**content: Any) -> str:
    """The plain SHA-256 the chain used before it was keyed (migration 0004 wrote these).

    Kept only so that migrations can check a chain written that way before re-keying it.
    """
    return hashlib.sha256(_event_text(**content).encode()).hexdigest()


def event_content(event: Any, *, prev_hash: str | None = None) -> dict[str, Any]:
    """What an event's hash covers, from a RunEvent row."""
    return dict(
        prev_hash=event.prev_hash if prev_hash is None else prev_hash,
        run_id=event.run_id,
        tenant_id=event.tenant_id,
        seq=event.seq,
        type=event.type,
        step_index=event.step_index,
        actor_id=event.actor_id,
        data=event.data,
        created_at=event.created_at,
    )


def digest_of(event: Any, *, prev_hash: str | None = None, key: bytes | None = None) -> str:
    """The hash an event (a RunEvent row) should carry."""
    return event_digest(key=key, **event_content(event, prev_hash=prev_hash))


def rechained(events: Iterable[Any], *, key: bytes) -> list[tuple[int, str, str]]:
    """``(event id, prev_hash, hash)`` for a run's events (in ``seq`` order) chained under ``key``.

    For re-keying a chain that was verified first: it does not look at the old hashes.
    """
    rows, prev = [], GENESIS
    for event in events:
        digest = digest_of(event, prev_hash=prev, key=key)
        rows.append((event.pk, prev, digest))
        prev = digest
    return rows


@dataclass(frozen=True)
class Break:
    run_id: str
    seq: int | None
    event_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"run {self.run_id}"
        if self.seq is not None:
            where += f", event #{self.seq}"
        if self.event_id is not None:
            where += f" (id {self.event_id})"
        return f"{where}: {self.problem}"


def verify_run(
    run_id: Any, head_seq: int, head_hash: str, events: Iterable[Any], *, key: bytes | None = None
) -> Iterator[Break]:
    """Every break in one run's chain; ``events`` in ``seq`` order, hashes keyed ``key``."""
    key = chain_key() if key is None else key
    run = str(run_id)
    expected_seq, prev = 1, GENESIS
    for event in events:
        if event.seq != expected_seq:
            last_missing = event.seq - 1
            missing = f"#{expected_seq}" + (f" to #{last_missing}" if last_missing > expected_seq else "")
            problem = (
                f"events {missing} are missing (deleted?)"
                if event.seq > expected_seq
                else f"a second event #{event.seq} (inserted?)"
            )
            yield Break(run, event.seq, event.pk, problem)
        if event.prev_hash != prev:
            yield Break(run, event.seq, event.pk, "does not link to the event before it")
        if not hmac.compare_digest(digest_of(event, key=key), event.hash):
            yield Break(run, event.seq, event.pk, "its content was changed after it was written")
        expected_seq, prev = event.seq + 1, event.hash
    if expected_seq - 1 != head_seq or prev != head_hash:
        yield Break(
            run,
            None,
            None,
            f"the trail ends at #{expected_seq - 1} but the run's head says #{head_seq}"
            if expected_seq - 1 != head_seq
            else "the last event is not the one the run's head recorded",
        )


# -- signed checkpoints of the heads, kept outside the database -------------------------------------
# Someone holding the master key can recompute a whole chain; the heads exported (signed) to a
# storage the database cannot reach are what such a rewrite no longer matches.
CHECKPOINT_FORMAT = "twin-audit-checkpoint/1"
CHECKPOINT_KEY_PURPOSE = "audit-checkpoint"
CHECKPOINT_STORAGE = "audit"
CHECKPOINT_PREFIX = "checkpoint-"


def _signing_key(master: bytes | None = None) -> Ed25519PrivateKey:
    from vault.crypto import derived_key

    return Ed25519PrivateKey.from_private_bytes(derived_key(CHECKPOINT_KEY_PURPOSE, master=master))


def checkpoint_public_key(master: bytes | None = None) -> str:
    """The checkpoints' Ed25519 public key (hex): enough to verify one, not to sign one."""
    return _signing_key(master).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _canonical_text(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def checkpoint_build(heads: Iterable[tuple[Any, int, int, str]], *, at: datetime) -> dict[str, Any]:
    """A signed checkpoint of ``(run id, tenant id, seq, hash)`` heads taken at ``at``."""
    runs = sorted(
        (
            {"run": str(run_id), "tenant": tenant_id, "seq": seq, "hash": digest}
            for run_id, tenant_id, seq, digest in heads
        ),
        key=lambda head: str(head["run"]),
    )
    key = _signing_key()
    body = {
        "format": CHECKPOINT_FORMAT,
        "created_at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "runs": runs,
        # One hash for every head: what to compare with a copy kept elsewhere, or to publish.
        "digest": hashlib.sha256(_canonical_text(runs)).hexdigest(),
        "public_key": checkpoint_public_key(),
    }
    return {**body, "signature": key.sign(_canonical_text(body)).hex()}


def checkpoint_problem(checkpoint: Any, *, master: bytes | None = None) -> str | None:
    """Why a loaded checkpoint cannot be trusted (a sentence), or None when its signature holds."""
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        return f"it is not a {CHECKPOINT_FORMAT} file"
    body = {key: value for key, value in checkpoint.items() if key != "signature"}
    # Verified with the key derived from our master key, never with the key the file names.
    public = _signing_key(master).public_key()
    try:
        public.verify(bytes.fromhex(str(checkpoint.get("signature", ""))), _canonical_text(body))
    except (InvalidSignature, ValueError):
        return (
            "its signature does not verify (the file was edited, forged, or signed with another master key)"
        )
    if hashlib.sha256(_canonical_text(checkpoint.get("runs"))).hexdigest() != checkpoint.get("digest"):
        return "its digest does not match its heads"
    return None


@dataclass(frozen=True)
class Checkpoint:
    name: str
    created_at: str
    heads: dict[str, dict[str, Any]]  # run id -> {"tenant", "seq", "hash"}

    def describe(self) -> str:
        return f"the checkpoint of {self.created_at} ({self.name})"


def checkpoint_parse(name: str, raw: bytes, *, master: bytes | None = None) -> Checkpoint:
    """A checkpoint file's heads; ValueError with the reason when it cannot be trusted."""
    try:
        loaded = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("it is not JSON") from None
    problem = checkpoint_problem(loaded, master=master)
    if problem:
        raise ValueError(problem)
    heads = {head["run"]: head for head in loaded["runs"]}
    return Checkpoint(name=name, created_at=loaded["created_at"], heads=heads)


def checkpoint_storage() -> Any:
    from django.core.files.storage import storages

    return storages[CHECKPOINT_STORAGE]


def latest_checkpoint_name() -> str | None:
    """The newest checkpoint in the ``audit`` storage (names sort by time), if any."""
    storage = checkpoint_storage()
    try:
        _dirs, files = storage.listdir("")
    except FileNotFoundError:
        return None
    names = sorted(n for n in files if n.startswith(CHECKPOINT_PREFIX) and n.endswith(".json"))
    return names[-1] if names else None


def audit_checkpoint_export(*, output: str | None = None, at: datetime | None = None) -> str:
    """Write a signed checkpoint of every run's head; where it went (a path or a storage name).

    To ``output`` (a file path) when given, else a new file in the ``audit`` storage, named by
    its time so that the newest sorts last. Runs without events have no head to keep.
    """
    from django.core.files.base import ContentFile
    from django.utils import timezone

    from .models import Run

    at = at or timezone.now()
    heads = Run.objects.filter(audit_seq__gt=0).values_list("pk", "tenant_id", "audit_seq", "audit_head")
    text = json.dumps(checkpoint_build(heads.iterator(), at=at), indent=1, ensure_ascii=False).encode()
    if output:
        with open(output, "wb") as fh:
            fh.write(text)
        return output
    name = f"{CHECKPOINT_PREFIX}{at.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}.json"
    return str(checkpoint_storage().save(name, ContentFile(text)))


def audit_rekey_run(run_id: Any, *, key: bytes | None = None) -> int:
    """Re-chain one run's trail under ``key`` (default: the current chain key); events re-keyed.

    Only for a trail verified just before (under the old key): it does not look at old hashes.
    Events are append-only at the ORM level, so their hashes are rewritten with raw SQL, under
    the run's lock like every writer of the run.
    """
    from django.db import connection, transaction

    from .events import lock_run
    from .models import Run, RunEvent

    key = chain_key() if key is None else key
    table = connection.ops.quote_name(RunEvent._meta.db_table)
    with transaction.atomic():
        lock_run(run_id)
        rows = rechained(RunEvent.objects.filter(run_id=run_id).order_by("seq", "id"), key=key)
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET prev_hash = %s, hash = %s WHERE id = %s",
                [(prev, digest, pk) for pk, prev, digest in rows],
            )
        Run.objects.filter(pk=run_id).update(audit_head=rows[-1][2] if rows else GENESIS)
    return len(rows)
