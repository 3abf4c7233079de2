"""Fixed-window counters in Redis, for limits that only need to hold for minutes.

Redis is transport here too: when it does not answer, limits are not enforced (and a
warning is logged) rather than refusing everyone.
"""

from __future__ import annotations

import logging

import redis

from .realtime import _redis

log = logging.getLogger(__name__)
PREFIX = "twin:rl:"


def retry_after(name: str, limit: int) -> int | None:
    """Seconds until ``name`` may try again when it already used up ``limit``; else None."""
    try:
        client = _redis()
        count = client.get(PREFIX + name)
        if count is None or int(count) < limit:
            return None
        return max(int(client.ttl(PREFIX + name)), 1)
    except redis.RedisError as exc:
        log.warning("rate limit %s not checked: %s", name, exc)
        return None


def hit(name: str, window: int) -> int:
    """Count one more for ``name`` in its window (which starts at the first hit); the count."""
    try:
        pipe = _redis().pipeline()
        pipe.incr(PREFIX + name)
        pipe.expire(PREFIX + name, window, nx=True)
        count, _ = pipe.execute()
        return int(count)
    except redis.RedisError as exc:
        log.warning("rate limit %s not counted: %s", name, exc)
        return 0
