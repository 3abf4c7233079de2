"""twin_site.supervisor with tiny programs: restart alone, crash loop, stop on a signal."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time

import psutil

from tests.conftest import wait_until
from twin_site.supervisor import CRASH_LOOP_LIMIT, Program, Supervisor

SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"]


def _pids(supervisor: Supervisor) -> dict[str, int]:
    return {c.program.name: c.process.pid for c in supervisor.children if c.process is not None}


def test_a_child_that_dies_is_restarted_alone_and_sigterm_stops_the_rest() -> None:
    output = io.StringIO()
    supervisor = Supervisor(output=output)
    supervisor.add(Program("steady", SLEEPER))
    supervisor.add(Program("flaky", SLEEPER))
    status: list[int] = []
    seen: dict[str, int] = {}

    def drive() -> None:
        first = wait_until(lambda: len(p := _pids(supervisor)) == 2 and p, what="both started")
        seen.update(first)
        os.kill(first["flaky"], signal.SIGKILL)
        wait_until(lambda: _pids(supervisor)["flaky"] != first["flaky"], what="flaky restarted")
        seen["flaky_again"] = _pids(supervisor)["flaky"]
        os.kill(os.getpid(), signal.SIGTERM)

    driver = threading.Thread(target=drive)
    driver.start()
    status.append(supervisor.run())
    driver.join()

    assert status == [0]
    assert seen["flaky_again"] != seen["flaky"]
    assert _pids(supervisor)["steady"] == seen["steady"]  # never restarted
    assert "flaky was killed by SIGKILL" in output.getvalue()
    assert "steady was killed" not in output.getvalue()
    for pid in (seen["steady"], seen["flaky_again"]):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert "steady | up" in output.getvalue()


def test_a_crash_loop_is_reported_and_stops_everything_instead_of_spinning() -> None:
    output = io.StringIO()
    supervisor = Supervisor(output=output)
    supervisor.add(Program("steady", SLEEPER))
    supervisor.add(Program("broken", [sys.executable, "-c", "import sys; print('no config'); sys.exit(3)"]))
    started = time.monotonic()

    assert supervisor.run() == 1

    assert time.monotonic() - started < 30
    text = output.getvalue()
    assert text.count("broken started") == CRASH_LOOP_LIMIT
    assert "broken exited with code 3" in text
    assert "crash loop" in text
    steady = _pids(supervisor)["steady"]
    assert not psutil.pid_exists(steady) or psutil.Process(steady).status() == psutil.STATUS_ZOMBIE
