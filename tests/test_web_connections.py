"""The web server holds no database connection between requests.

Under ASGI each request's database work runs in a thread of its own; with persistent connections
(``CONN_MAX_AGE``) every request left one open until the garbage collector found it. On
PostgreSQL a few busy web processes ran the server out of connections ("sorry, too many clients
already") and every other process — workers, the next request — failed.
"""

from __future__ import annotations

import threading
import time

import psutil
import pytest
from django.conf import settings
from django.db import connection

from tests.dashboard.conftest import Person, alice, daphne, person  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="counts connections to PostgreSQL (.ci/run uses it)"
)


def database_connections(pid: int) -> int:
    port = int(settings.DATABASES["default"].get("PORT") or 5432)
    return sum(
        1
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def test_requests_leave_no_database_connection_open_in_the_web_server(alice: Person, daphne) -> None:  # noqa: F811
    assert daphne.process is not None
    for _ in range(25):
        assert alice.api("GET", "/api/runs").status_code == 200  # an async view (long-poll capable)
        assert alice.api("GET", "/api/secrets").status_code == 200  # a plain DRF view
        assert alice.api("GET", "/api/runs/00000000-0000-0000-0000-000000000000?wait=1").status_code == 404

    assert database_connections(daphne.process.pid) <= 1


def test_a_long_poll_holds_no_database_connection_while_it_waits(alice: Person, daphne) -> None:  # noqa: F811
    from runs.models import Run

    assert daphne.process is not None
    run = Run.objects.create(tenant=alice.tenant, goal="waits", program=[], status="queued")
    answers: list[int] = []

    def wait() -> None:
        answers.append(alice.api("GET", f"/api/runs/{run.pk}?wait=4").status_code)

    waiters = [threading.Thread(target=wait) for _ in range(6)]
    for waiter in waiters:
        waiter.start()
    time.sleep(2)  # every waiter is past its first read, sleeping on the run's channel
    held = database_connections(daphne.process.pid)
    for waiter in waiters:
        waiter.join(timeout=30)

    assert answers == [200] * 6
    assert held <= 1
