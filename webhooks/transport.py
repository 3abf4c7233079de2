"""Sending one signed message: explicit timeouts, no redirects, private addresses refused.

The address check happens when the connection is made, on the address actually connected
to, with the same policy as the host browser's egress proxy (``engine.netguard``: the address
*and* the port, so Redis, the DevTools port and the web port stay refused even with
``TWIN_ALLOW_PRIVATE_URLS=1``). A name that resolved to a public address when the endpoint
was saved and resolves to 127.0.0.1 now (DNS rebinding) is refused at send time, and a URL
that parsers read differently (``user@host``, backslashes) is refused before anything else.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpcore
import httpx
from django.conf import settings

from engine.netguard import HostUnresolved, Policy, UrlRefused, check_url, checked_addresses, host_policy

EXCERPT = 500


class GuardedBackend(httpcore.NetworkBackend):
    """Resolve, check every address and port, connect to a checked one (TLS still verifies the name)."""

    def __init__(self, policy: Policy | None = None) -> None:
        self._inner = httpcore.SyncBackend()
        self._policy = policy or host_policy()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        # UrlRefused propagates as is: it is permanent. A name that does not resolve (now) is
        # worth retrying, like a refused connection.
        try:
            addresses = checked_addresses(self._policy, host, port)
        except HostUnresolved as exc:
            raise httpcore.ConnectError(str(exc)) from None
        last: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError(f"{host} has no address")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


@cache
def _ssl_context() -> ssl.SSLContext:
    """Made once: loading the CA bundle takes about 25 ms, more than a whole local delivery."""
    return httpx.create_ssl_context()


def client(policy: Policy | None = None) -> httpx.Client:
    transport = httpx.HTTPTransport(verify=_ssl_context(), retries=0)
    transport._pool._network_backend = GuardedBackend(policy)
    timeout = settings.TWIN_WEBHOOK_TIMEOUT
    return httpx.Client(
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        follow_redirects=False,
    )


@dataclass
class Outcome:
    ok: bool
    status_code: int | None = None
    excerpt: str = ""
    error: str = ""
    duration_ms: int = 0
    permanent: bool = False  # no point retrying (the URL itself is refused)


def post(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        policy = host_policy()
        check_url(url, resolve=False, policy=policy)
        with client(policy) as http:
            response = http.post(url, content=body, headers=headers)
            excerpt = response.text[:EXCERPT]
    except UrlRefused as exc:
        return Outcome(ok=False, error=f"refused: {exc}", duration_ms=took(), permanent=True)
    except httpx.TimeoutException:
        return Outcome(
            ok=False, error=f"no answer within {settings.TWIN_WEBHOOK_TIMEOUT:g} s", duration_ms=took()
        )
    except httpx.HTTPError as exc:
        return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"[:EXCERPT], duration_ms=took())
    code = response.status_code
    if 200 <= code < 300:
        return Outcome(ok=True, status_code=code, excerpt=excerpt, duration_ms=took())
    reason = (
        f"redirects are not followed (to {response.headers.get('location', '?')})"
        if 300 <= code < 400
        else ""
    )
    return Outcome(ok=False, status_code=code, excerpt=excerpt, error=reason, duration_ms=took())
