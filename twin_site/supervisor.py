"""A small process supervisor for ``manage.py serve``: one child dying is one child restarted.

honcho's manager (used before) stopped every process as soon as one exited, so a crashed worker
also took the web processes, beat and webhooks down, and ``serve`` then stopped the host browser:
every parked page was lost and every paused run had to be restored from its checkpoint. Here:

* each child runs in its own process group (its Celery pool processes with it), so a signal to one
  never reaches another, and leftovers of a dead child (orphaned pool processes) are killed with
  its group before it is started again;
* a child that exits while the supervisor is running is restarted after a short backoff
  (``BACKOFF``); one that keeps dying within ``STABLE_AFTER`` seconds of its start is a crash loop,
  reported on the output, and the supervisor then stops everything and exits 1 instead of spinning;
* SIGINT / SIGTERM stop every child: SIGTERM to its group, SIGKILL after ``GRACE`` seconds; the
  ``last`` ones (the Redis the others need while they shut down) after the rest. A second signal
  kills at once;
* output is multiplexed line by line with a ``HH:MM:SS name | `` prefix (coloured on a terminal),
  as honcho printed it; ``watch`` sees every line (``serve`` waits for the workers' "ready");
* under ``make run``, ``terminal_foreground`` makes Ctrl-C reach this process alone (not ``make``),
  so a stop asked for with Ctrl-C ends ``make run`` with the supervisor's status, 0.

The host browser is not a child: it runs in its own session and is stopped by the caller.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from typing import IO

BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds before the 1st, 2nd, ... restart of a child in a row (the last one repeats)."""
STABLE_AFTER = 30.0
"""A child that ran this long before exiting is not crash-looping: its count starts again."""
CRASH_LOOP_LIMIT = 5
"""Exits in a row, each within STABLE_AFTER of its start, that make a crash loop."""
GRACE = 10.0
"""Seconds a child gets to stop after SIGTERM before its group is killed."""
POLL = 0.1

_COLOURS = ("36", "33", "32", "35", "31", "34", "36;1", "33;1", "32;1", "35;1", "31;1", "34;1")


@dataclass
class Program:
    """One supervised command. ``pass_fds`` stay open in it (the web processes' listening socket)."""

    name: str
    argv: list[str]
    pass_fds: tuple[int, ...] = ()
    last: bool = False
    env: dict[str, str] | None = None


@dataclass
class _Child:
    program: Program
    colour: str
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    starts: int = 0
    reader: threading.Thread | None = field(default=None, repr=False)


class Supervisor:
    def __init__(
        self, *, output: IO[str] | None = None, watch: Callable[[str, str], None] | None = None
    ) -> None:
        self.output = output or sys.stdout
        self.watch = watch
        self.children: list[_Child] = []
        self._colours = itertools.cycle(_COLOURS)
        self._lock = threading.Lock()
        self._stop_signals = 0
        try:
            self._colour = self.output.isatty()
        except (AttributeError, ValueError):
            self._colour = False

    def add(self, program: Program) -> None:
        self.children.append(_Child(program, next(self._colours)))

    # -- output -----------------------------------------------------------------------------------
    @property
    def _width(self) -> int:
        return max([len(c.program.name) for c in self.children] + [len("serve")])

    def say(self, name: str, line: str, colour: str = "37;1") -> None:
        prefix = f"{datetime.now():%H:%M:%S} {name.ljust(self._width)} | "
        if self._colour:
            prefix = f"\033[{colour}m{prefix}\033[0m"
        with self._lock:
            self.output.write(prefix + line + "\n")
            self.output.flush()

    def say_block(self, text: str) -> None:
        """``text`` as it is, with no prefix, between two lines of the children's output."""
        with self._lock:
            self.output.write("\n" + text + "\n\n")
            self.output.flush()

    def _pump(self, child: _Child, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.say(child.program.name, line, child.colour)
            if self.watch is not None:
                self.watch(child.program.name, line)
        stream.close()

    # -- children ---------------------------------------------------------------------------------
    def _spawn(self, child: _Child) -> None:
        program = child.program
        # Its own process group: a signal for one child (or for the terminal's foreground group,
        # which is this process) never reaches the others; see the module docstring.
        process = subprocess.Popen(
            program.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=program.pass_fds,
            env=program.env,
            process_group=0,
        )
        child.process, child.started_at, child.restart_at = process, time.monotonic(), None
        child.starts += 1
        assert process.stdout is not None
        child.reader = threading.Thread(target=self._pump, args=(child, process.stdout), daemon=True)
        child.reader.start()
        again = f" (restart {child.starts - 1})" if child.starts > 1 else ""
        self.say("serve", f"{program.name} started, pid {process.pid}{again}")

    @staticmethod
    def _signal_group(pid: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)

    def _reap(self, child: _Child) -> None:
        """The child exited while we were running: clean up its group and schedule a restart."""
        assert child.process is not None
        code, pid = child.process.returncode, child.process.pid
        # Its pool processes (Celery prefork) may outlive it; they belong to its group.
        self._signal_group(pid, signal.SIGKILL)
        uptime = time.monotonic() - child.started_at
        child.failures = child.failures + 1 if uptime < STABLE_AFTER else 1
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        if child.failures >= CRASH_LOOP_LIMIT:
            self.say(
                "serve",
                f"{child.program.name} {how} after {uptime:.1f} s: crash loop ({child.failures} exits "
                f"in a row, each within {STABLE_AFTER:.0f} s of its start). Giving up: stopping everything.",
                "31;1",
            )
            child.restart_at = None
            return
        delay = BACKOFF[min(child.failures, len(BACKOFF)) - 1]
        self.say(
            "serve", f"{child.program.name} {how} after {uptime:.1f} s: restarting in {delay:g} s", "33;1"
        )
        child.restart_at = time.monotonic() + delay

    def _alive(self, children: list[_Child]) -> list[_Child]:
        return [c for c in children if c.process is not None and c.process.poll() is None]

    def _stop(self, children: list[_Child]) -> None:
        for child in self._alive(children):
            assert child.process is not None
            self._signal_group(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        while self._alive(children) and time.monotonic() < deadline and self._stop_signals < 2:
            time.sleep(POLL)
        for child in children:
            if child.process is None:
                continue
            # Killed for good, group and all (a child that did stop may have left pool processes).
            self._signal_group(child.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=5)
            if child.reader is not None:
                child.reader.join(timeout=2)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop_signals += 1
        if self._stop_signals > 1:
            self.say("serve", "second signal: killing everything now", "31;1")

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, *, stopped: Callable[[], bool] | None = None) -> int:
        """Start every child, keep them running until SIGINT/SIGTERM or a crash loop, stop them.

        ``stopped`` says whether a stop signal came before this took the signals over (the caller's
        handler recorded it): then nothing starts. The exit status: 0 after a signal, 1 after a
        crash loop.
        """
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        if stopped is not None and stopped():
            self._stop_signals += 1
        status = 0
        try:
            for child in self.children:
                if self._stop_signals:
                    break
                self._spawn(child)
            while not self._stop_signals:
                now = time.monotonic()
                for child in self.children:
                    process = child.process
                    if process is not None and child.restart_at is None and process.poll() is not None:
                        self._reap(child)
                        if child.restart_at is None:  # crash loop
                            status = 1
                    elif child.restart_at is not None and now >= child.restart_at:
                        self._spawn(child)
                if status:
                    break
                time.sleep(POLL)
            else:
                self.say("serve", "stopping every process")
        finally:
            self._stop([c for c in self.children if not c.program.last])
            self._stop([c for c in self.children if c.program.last])
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return status


@contextlib.contextmanager
def terminal_foreground() -> Iterator[None]:
    """Take the terminal's foreground for this process while the block runs, then give it back.

    Ctrl-C sends SIGINT to the terminal's foreground process group. Under ``make run`` that group is
    make's, with this process in it: make then dies of the SIGINT itself (status 130, or "Error"
    when the child's status arrives first) whatever this process does. In a group of its own and
    in the foreground, this process alone gets the Ctrl-C, stops everything and exits 0, and make
    with it. Nothing happens without a terminal, or when this process already leads its group
    (started by a shell directly: it has the foreground already).
    """
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        yield
        return
    previous: int | None = None
    try:
        with contextlib.suppress(OSError):
            if os.tcgetpgrp(fd) == os.getpgrp() and os.getpgrp() != os.getpid():
                previous = os.getpgrp()
                os.setpgid(0, 0)
                _set_foreground(fd, os.getpid())
        yield
    finally:
        if previous is not None:
            with contextlib.suppress(OSError):
                _set_foreground(fd, previous)
        os.close(fd)


def _set_foreground(fd: int, pgid: int) -> None:
    # A process outside the foreground group that calls tcsetpgrp() gets SIGTTOU, which stops it.
    handler = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, pgid)
    finally:
        signal.signal(signal.SIGTTOU, handler)
