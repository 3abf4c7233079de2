"""Encryption at rest: one master key, a derived key per tenant (and per purpose).

The master key comes from ``TWIN_MASTER_KEY`` (or ``TWIN_MASTER_KEY_FILE``); when unset, a
development key is generated once into ``var/master.key`` (git-ignored).
"""

from __future__ import annotations

import base64
import json
import secrets
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["InvalidToken", "derived_key", "open_json", "open_text", "seal_json", "seal_text"]


def _master_key() -> bytes:
    configured = settings.TWIN_MASTER_KEY
    if configured:
        if len(configured) < 16:
            raise ImproperlyConfigured("TWIN_MASTER_KEY must be at least 16 characters long.")
        return configured.encode()
    path = settings.VAR_DIR / "master.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("x") as fh:
                fh.write(secrets.token_urlsafe(48))
            path.chmod(0o600)
        except FileExistsError:
            pass  # another process generated it first
    return path.read_text().strip().encode()


@cache
def _fernet(scope: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"twin-vault-v1", info=scope.encode()).derive(
        _master_key()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def derived_key(purpose: str, *, master: bytes | None = None) -> bytes:
    """A 32-byte key for one purpose (e.g. ``"audit-chain"``), derived from the master key.

    Never stored: whoever can read the database cannot recompute what it keys. ``master``
    derives from another master key instead (the old one, while re-keying after a rotation).
    """
    if master is None:
        return _derived_key(purpose)
    return _hkdf(master, purpose)


def _hkdf(master: bytes, purpose: str) -> bytes:
    # Its own salt: a purpose key can never equal a vault (Fernet) scope key.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"twin-purpose-v1", info=purpose.encode()).derive(
        master
    )


@cache
def _derived_key(purpose: str) -> bytes:
    return _hkdf(_master_key(), purpose)


def seal_text(value: str, *, scope: str) -> str:
    return _fernet(scope).encrypt(value.encode()).decode()


def open_text(token: str, *, scope: str) -> str:
    return _fernet(scope).decrypt(token.encode()).decode()


def seal_json(value: Any, *, scope: str) -> str:
    return seal_text(json.dumps(value, separators=(",", ":")), scope=scope)


def open_json(token: str, *, scope: str) -> Any:
    return json.loads(open_text(token, scope=scope))
