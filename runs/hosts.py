"""Which worker hosts are alive, so that work meant for a host's browser goes elsewhere when
that host is gone.

A worker that consumes its host's queue (``host.<TWIN_HOST_ID>``) keeps a key in Redis,
``twin:host:<id>``, written again every third of ``TWIN_HOST_ALIVE_SECONDS`` with that time to
live; a graceful stop deletes it, a crash lets it expire. A resume is sent to the host that
holds the paused page while that host is alive (the page is resumed in place), else to the
shared ``runs`` queue: any host restores the run from its checkpoint and verifies the page
before the approved step acts. Liveness is transport, like the queues: nothing is lost with
Redis but the hint, and an unanswerable question counts as alive (the old behaviour: the
message waits for that host, and the sweeper moves the run on after two minutes).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

import redis
from django.conf import settings

from twin_site.realtime import _redis

from .routing import DEFAULT_QUEUE, host_queue

log = logging.getLogger(__name__)


def _key(host: str) -> str:
    return f"twin:host:{host}"


def host_alive(host: str) -> bool:
    try:
        return bool(_redis().exists(_key(host)))
    except redis.RedisError as exc:
        log.warning("could not tell whether host %s is alive (%s): taking it as alive", host, exc)
        return True


def queue_for_host(host: str | None) -> str:
    """The queue of the host holding a run's page while it is alive; else the shared one."""
    if host and host_alive(host):
        return host_queue(host)
    return DEFAULT_QUEUE


class Heartbeat:
    """This host is alive while the worker that runs this lives (a daemon thread)."""

    def __init__(self, host: str | None = None) -> None:
        self.host = host or settings.TWIN_HOST_ID
        self.ttl = max(1.0, float(settings.TWIN_HOST_ALIVE_SECONDS))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        value = f"{os.getpid()} {time.time():.0f}"
        _redis().set(_key(self.host), value, px=int(self.ttl * 1000))

    def start(self) -> Heartbeat:
        self.beat()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{self.host}", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.beat()
            except redis.RedisError as exc:  # Redis away: the key expires; queues are away too
                log.warning("host %s heartbeat failed: %s", self.host, exc)

    def stop(self) -> None:
        """A graceful stop: the host is gone now, not in ``TWIN_HOST_ALIVE_SECONDS``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(redis.RedisError):
            _redis().delete(_key(self.host))
