"""Fan-out to live pages under a burst: every event is sent, none is dropped by the transport."""

from __future__ import annotations

import concurrent.futures
import logging
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from twin_site import realtime


def test_a_burst_of_events_is_broadcast_without_exhausting_the_redis_pool(
    caplog: pytest.LogCaptureFixture,
) -> None:
    layer = get_channel_layer()
    assert layer is not None
    channel = async_to_sync(layer.new_channel)()
    group = f"test.burst.{uuid.uuid4().hex}"
    async_to_sync(layer.group_add)(group, channel)

    with caplog.at_level(logging.WARNING, logger="twin_site.realtime"):
        # 600 at once: a thousand runs pausing together sends about that many per group.
        sent = [realtime.broadcast(group, {"type": "run.event", "n": n}) for n in range(600)]
        _, pending = concurrent.futures.wait(sent, timeout=60)

    assert not pending
    assert [r.getMessage() for r in caplog.records if "could not broadcast" in r.getMessage()] == []
    first = async_to_sync(layer.receive)(channel)
    assert first["type"] == "run.event"
    async_to_sync(layer.group_discard)(group, channel)
