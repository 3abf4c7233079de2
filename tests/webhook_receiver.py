"""A webhook receiver on 127.0.0.1 for tests and benchmarks: it can fail, hang and recover."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """``mode``: "ok" (204), "fail" (500), "hang" (no answer for ``hang_seconds``), or "flaky"
    (each message fails its first ``fail_first`` attempts), or "coin" (every other request fails)."""

    mode: str = "ok"
    hang_seconds: float = 5.0
    fail_first: int = 1
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seen: dict[str, int] = field(default_factory=dict)
    _count: int = 0

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                code = receiver._answer(self.headers.get("webhook-id", ""))
                if code == 0:
                    time.sleep(receiver.hang_seconds)
                    code = 204
                with receiver._lock:
                    receiver.received.append(
                        Received(
                            {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic(), code
                        )
                    )
                self.send_response(code)
                if code == 302:
                    self.send_header("location", "http://127.0.0.1:9/elsewhere")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if code < 300 else b"no")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def _answer(self, msg_id: str) -> int:
        with self._lock:
            self._count += 1
            tries = self._seen[msg_id] = self._seen.get(msg_id, 0) + 1
            mode, count = self.mode, self._count
        if mode == "fail":
            return 500
        if mode == "hang":
            return 0
        if mode == "flaky":
            return 503 if tries <= self.fail_first else 204
        if mode == "redirect":
            return 302
        if mode == "coin":
            return 500 if count % 2 else 204
        return 204

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.answered < 300]

    def wait_for(self, count: int, timeout: float = 15.0, *, accepted: bool = True) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.accepted() if accepted else list(self.received)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        got = self.accepted() if accepted else list(self.received)
        raise AssertionError(f"expected {count} webhook requests within {timeout} s, got {len(got)}")
