"""Fan-out transport: Redis pub/sub for ``?wait=`` and the Channels layer for live pages.

Redis is transport only: a failure here is logged and never loses anything, because the
event row is already committed. Sends are fire-and-forget: a ``?wait=`` nudge from one sender
thread per process (in the order they were asked for), group sends from one background event
loop, so neither a slow Redis nor its round trips slow a run.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import json
import logging
import os
import queue
import threading
import time
from typing import Any

import redis
from channels.layers import get_channel_layer
from django.conf import settings

log = logging.getLogger(__name__)

# At most this many group sends are in flight at once; the rest wait their turn. The layer's
# Redis pool holds 100 connections, and a burst of events (a thousand runs pausing at once)
# used to exceed it and drop live updates with "Too many connections".
SEND_CONCURRENCY = 32

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_gate: asyncio.Semaphore | None = None
_loop_pid: int | None = None
_client: redis.Redis | None = None
_client_pid: int | None = None


def run_channel(run_id: object) -> str:
    return f"twin:run:{run_id}"


def _redis() -> redis.Redis:
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        _client_pid = os.getpid()
    return _client


def publish(channel: str, message: dict[str, Any]) -> None:
    try:
        _redis().publish(channel, json.dumps(message))
    except redis.RedisError as exc:
        log.warning("could not publish to %s: %s", channel, exc)


# The sender thread's work, in order: (function, arguments); one queue and thread per process.
_outbox: queue.Queue[tuple[Any, tuple[Any, ...]]] = queue.Queue()
_sender_pid: int | None = None


def _sender(outbox: queue.Queue[tuple[Any, tuple[Any, ...]]]) -> None:
    while True:
        fn, args = outbox.get()
        try:
            fn(*args)
        except Exception:  # transport only: never let one message stop the rest
            log.exception("could not send %s", getattr(fn, "__name__", fn))
        finally:
            outbox.task_done()


def send_soon(fn: Any, *args: Any) -> None:
    """Call ``fn(*args)`` on this process's sender thread, after everything asked for before it.

    For transport only (a nudge, a live-page message): the caller's thread goes on at once.
    """
    global _sender_pid, _outbox
    with _lock:
        if _sender_pid != os.getpid():
            # A forked child has no thread of its parent's, and what the parent had yet to send
            # is the parent's to send: a queue of its own.
            _outbox = queue.Queue()
            threading.Thread(target=_sender, args=(_outbox,), name="twin-sender", daemon=True).start()
            _sender_pid = os.getpid()
    _outbox.put((fn, args))


def flush(timeout: float = 2.0) -> bool:
    """Wait until every message asked for has been handed to Redis (True), at most ``timeout``."""
    if _sender_pid != os.getpid():
        return True  # (nothing asked for in this process)
    outbox, deadline = _outbox, time.monotonic() + timeout
    with outbox.all_tasks_done:
        while outbox.unfinished_tasks:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            outbox.all_tasks_done.wait(left)
    return True


atexit.register(flush, 1.0)  # a command that records an event and exits still sends its nudge


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid, _gate
    with _lock:
        if _loop is None or _loop_pid != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="twin-broadcast", daemon=True).start()
            _loop, _loop_pid, _gate = loop, os.getpid(), asyncio.Semaphore(SEND_CONCURRENCY)
        return _loop


async def _group_send(group: str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None or _gate is None:
        return
    try:
        async with _gate:
            await layer.group_send(group, event)
    except Exception as exc:  # transport only: never let it break the caller
        log.warning("could not broadcast to %s: %s", group, exc)


def broadcast(group: str, event: dict[str, Any]) -> concurrent.futures.Future[None]:
    """Send a JSON-only event to a Channels group, without waiting for it (the future says when
    it is sent; nothing needs to wait for it)."""
    return asyncio.run_coroutine_threadsafe(_group_send(group, event), _background_loop())
