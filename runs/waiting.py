"""``?wait=S``: answer when the run settles, holding no thread or DB connection meanwhile.

The waiter subscribes to the run's Redis channel first, then reads the status once; after
that it sleeps on the subscription, with a database re-check every couple of seconds as
a safety net (pub/sub drops messages while Redis is away: Redis is only transport).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from redis.exceptions import RedisError

from twin_site.api import ApiError
from twin_site.realtime import run_channel

from .models import SETTLED_STATUSES
from .selectors import run_status

log = logging.getLogger(__name__)
MAX_WAIT = 60.0
RECHECK_EVERY = 2.0


def _status(run_id: Any) -> str | None:
    """The run's status, read with a connection given back at once: a waiter holds none while it
    sleeps (the request's earlier reads, in the same thread, give theirs back here too)."""
    try:
        return run_status(run_id)
    finally:
        if not connection.in_atomic_block:
            connection.close()


def parse_wait(raw: str | None) -> float:
    if raw is None or raw == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ApiError("invalid_wait", "wait must be a number of seconds from 0 to 60") from None
    if not 0 <= value <= MAX_WAIT:
        raise ApiError("invalid_wait", "wait must be a number of seconds from 0 to 60")
    return value


async def wait_until_settled(run_id: Any, timeout: float) -> str | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    client: Any = None
    pubsub: Any = None
    try:
        try:
            client = aioredis.from_url(settings.REDIS_URL, socket_connect_timeout=1)
            pubsub = client.pubsub()
            await pubsub.subscribe(run_channel(run_id))
        except (RedisError, OSError) as exc:
            log.warning("waiting without Redis (polling the database): %s", exc)
            pubsub = None
        status = await sync_to_async(_status)(run_id)
        next_check = loop.time() + RECHECK_EVERY
        while status is not None and status not in SETTLED_STATUSES:
            now = loop.time()
            if now >= deadline:
                break
            if pubsub is None:
                await asyncio.sleep(min(deadline - now, 0.5))
                status = await sync_to_async(_status)(run_id)
                continue
            try:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=max(0.01, min(deadline, next_check) - now)
                )
            except (RedisError, OSError):
                pubsub = None
                continue
            if message and message.get("type") == "message":
                with contextlib.suppress(ValueError, AttributeError):
                    status = json.loads(message["data"]).get("status", status)
            if loop.time() >= next_check:
                status = await sync_to_async(_status)(run_id)
                next_check = loop.time() + RECHECK_EVERY
        return status
    finally:
        for closable in (pubsub, client):
            if closable is not None:
                with contextlib.suppress(Exception):
                    await closable.aclose()
