"""RFC 6238 time-based one-time passwords (the codes authenticator apps show).

A ``totp`` secret in the vault is a seed in base32 (what QR codes carry) or hex;
``{{secrets.NAME}}`` yields the code valid at the moment of the action.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
import time

_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
# 80 bits, the shortest seed sites hand out (16 base32 characters); shorter is a typo, not a seed.
MIN_SEED_BYTES = 10


def decode_seed(seed: str) -> bytes:
    """Return the raw key of a base32 or hex seed; raise ValueError if it is neither."""
    cleaned = re.sub(r"[\s-]", "", seed)
    if not cleaned:
        raise ValueError("a TOTP seed cannot be empty")
    try:
        padded = cleaned.upper() + "=" * (-len(cleaned) % 8)
        key = base64.b32decode(padded, casefold=True)
    except (binascii.Error, ValueError):
        if not _HEX.match(cleaned):
            raise ValueError("a TOTP seed must be base32 or hex") from None
        key = bytes.fromhex(cleaned)
    if len(key) < MIN_SEED_BYTES:
        raise ValueError("a TOTP seed must be base32 or hex of at least 80 bits (16 base32 characters)")
    return key


def totp(seed: str, *, at: float | None = None, digits: int = 6, period: int = 30) -> str:
    """The code for ``seed`` at time ``at`` (default: now)."""
    key = decode_seed(seed)
    counter = int((time.time() if at is None else at) // period)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def verify(seed: str, code: str, *, at: float | None = None, window: int = 1, period: int = 30) -> bool:
    """True when ``code`` is valid for ``seed`` within ``window`` periods of ``at``."""
    now = time.time() if at is None else at
    return any(
        hmac.compare_digest(totp(seed, at=now + step * period, period=period), code)
        for step in range(-window, window + 1)
    )


if __name__ == "__main__":  # python -m vault.totp SEED: the code an authenticator app shows now
    import sys

    print(totp(sys.argv[1]))
