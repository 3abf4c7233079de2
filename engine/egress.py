"""The host browser's egress proxy, and the small host process that owns it and Chromium.

Every connection the host's Chromium makes (navigations, redirects, sub-resources, websockets,
its own background requests) goes through this proxy: Chromium is launched with
``--proxy-server`` pointing here and ``--proxy-bypass-list=<-loopback>`` (otherwise it would
skip the proxy for loopback and link-local addresses). The proxy resolves each name itself,
checks every address and the port with ``engine.netguard.Policy``, and connects to that very
address, so a parser differential, a redirect or a name that rebinds between two lookups all
meet the same check. A refusal is a ``403`` with a plain-text sentence and the header
``X-Twin-Egress: refused`` (an https or websocket ``CONNECT`` shows in the browser as
``ERR_TUNNEL_CONNECTION_FAILED``).

Run as ``python -m engine.egress --ready-file F --policy JSON --user-data-dir D -- chromium ...``
(``engine.browser`` does it): it opens the proxy, launches Chromium as its child in its own process
group, learns Chromium's DevTools port (always refused from then on), writes both endpoints to the
ready file, and lives exactly as long as Chromium. SIGTERM to the group ends both.

Decisions are logged with ``host:port`` only: paths and query strings may hold secrets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ipaddress
import json
import logging
import logging.handlers
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from .netguard import Address, Policy, UrlRefused, checked_addresses, host_rules

log = logging.getLogger("twin.egress")

MAX_REQUEST_LINE = 8 * 1024
MAX_HEAD = 64 * 1024
MAX_HEADERS = 100
MAX_CONNECTIONS = 256
HEAD_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
IDLE_TIMEOUT = 300.0
CHUNK = 64 * 1024
# Headers meant for the proxy hop, never for the site.
HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "upgrade",
}
HEALTH_PATH = "/twin-egress/health"


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def split_authority(authority: str, default_port: int) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) as the browser sent it; Refused when it is not one."""
    if not authority or any(c in authority for c in "@\\/ \t") or not authority.isascii():
        raise Refused(400, "the request names no plain host:port")
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise Refused(400, "the request names no plain host:port")
    else:
        host, _, port_text = authority.rpartition(":") if ":" in authority else (authority, "", "")
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise Refused(400, "the port is not a number") from None
    if not host or not 1 <= port <= 65535:
        raise Refused(400, "the request names no plain host:port")
    return host.lower(), port


class EgressProxy:
    """An asyncio HTTP proxy (absolute-form requests and CONNECT) that checks every address."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.port = 0
        self.active = 0
        self.ready = asyncio.Event()  # set once the DevTools port is known (and refused)
        self._server: asyncio.base_events.Server | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._handle, host, port, limit=MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def refuse_also(self, devtools_port: int) -> None:
        self.policy = self.policy.refusing(*host_rules(devtools_port, self.port))
        self.ready.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    # -- one client connection ---------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.active >= MAX_CONNECTIONS:
            await self._answer(writer, 503, "Twin's egress proxy is at its connection limit")
            return
        self.active += 1
        upstream: asyncio.StreamWriter | None = None
        try:
            upstream = await self._serve(reader, writer)
        except Refused as exc:
            await self._answer(writer, exc.status, exc.reason)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self.active -= 1
            for stream in (upstream, writer):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        stream.close()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> asyncio.StreamWriter | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        except asyncio.LimitOverrunError:
            raise Refused(431, "the request head is too large") from None
        except asyncio.IncompleteReadError:
            return None
        lines = head[:-4].decode("latin-1").split("\r\n")
        if len(lines[0]) > MAX_REQUEST_LINE:
            raise Refused(414, "the request line is too long")
        if len(lines) - 1 > MAX_HEADERS:
            raise Refused(431, "too many request headers")
        method, _, rest = lines[0].partition(" ")
        target, _, version = rest.partition(" ")
        if not version.startswith("HTTP/1."):
            raise Refused(400, "not an HTTP/1 request")
        if method == "CONNECT":
            host, port = split_authority(target, 443)
            upstream_reader, upstream = await self._connect(host, port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await self._pipe(reader, writer, upstream_reader, upstream)
            return upstream
        if target.startswith("/"):
            if target == HEALTH_PATH:
                await self._answer(writer, 200, "twin egress proxy")
                return None
            raise Refused(400, "this is a proxy: ask for absolute URLs")
        if not target.lower().startswith("http://"):
            raise Refused(400, "only http:// requests and CONNECT go through this proxy")
        authority_end = len(target)
        for mark in "/?#":
            found = target.find(mark, 7)
            if found != -1:
                authority_end = min(authority_end, found)
        host, port = split_authority(target[7:authority_end], 80)
        path = target[authority_end:].partition("#")[0] or "/"
        if not path.startswith("/"):
            path = "/" + path
        upstream_reader, upstream = await self._connect(host, port)
        headers = [
            line for line in lines[1:] if line and line.partition(":")[0].strip().lower() not in HOP_HEADERS
        ]
        request = "\r\n".join([f"{method} {path} {version}", *headers, "Connection: close", "", ""])
        upstream.write(request.encode("latin-1"))
        await upstream.drain()
        # One request per client connection: the answer says so, so the browser never sends the
        # next request (maybe for another host) down this one.
        response_task = asyncio.ensure_future(self._relay_response(upstream_reader, writer))
        await self._pipe(reader, upstream, None, None, until=response_task)
        return upstream

    async def _relay_response(
        self, upstream_reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await asyncio.wait_for(upstream_reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
        lines = head[:-4].decode("latin-1").split("\r\n")
        kept = [line for line in lines[1:] if line.partition(":")[0].strip().lower() not in HOP_HEADERS]
        writer.write("\r\n".join([lines[0], *kept, "Connection: close", "", ""]).encode("latin-1"))
        await writer.drain()
        await self._copy(upstream_reader, writer, [time.monotonic()])

    async def _connect(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        await asyncio.wait_for(self.ready.wait(), HEAD_TIMEOUT)
        where = f"{host}:{port}"
        loop = asyncio.get_running_loop()
        try:
            if _literal(host):  # nothing to look up: no thread hop
                addresses: list[Address] = checked_addresses(self.policy, host, port)
            else:
                addresses = await loop.run_in_executor(None, checked_addresses, self.policy, host, port)
        except UrlRefused as exc:
            log.info("refused %s: %s", where, exc)
            raise Refused(403, str(exc)) from None
        last: Exception | None = None
        for address in addresses:
            try:
                # The very address checked above: no second lookup that could answer differently.
                result = await asyncio.wait_for(
                    asyncio.open_connection(str(address), port, limit=CHUNK), CONNECT_TIMEOUT
                )
                log.info("allowed %s (%s)", where, address)
                return result
            except (TimeoutError, OSError) as exc:
                last = exc
        log.info("unreachable %s: %s", where, last)
        raise Refused(502, f"Twin could not connect to {where}: {last or 'no address'}")

    async def _pipe(
        self,
        client_reader: asyncio.StreamReader,
        to_upstream: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader | None,
        to_client: asyncio.StreamWriter | None,
        *,
        until: asyncio.Future[Any] | None = None,
    ) -> None:
        """Copy both ways until either side ends (browsers never half-close a proxied connection)."""
        activity = [time.monotonic()]
        tasks: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(self._copy(client_reader, to_upstream, activity))
        ]
        if upstream_reader is not None and to_client is not None:
            tasks.append(asyncio.ensure_future(self._copy(upstream_reader, to_client, activity)))
        if until is not None:
            tasks.append(until)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task

    async def _copy(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, activity: list[float]
    ) -> None:
        while True:
            try:
                data = await asyncio.wait_for(source.read(CHUNK), 30.0)
            except TimeoutError:
                if time.monotonic() - activity[0] > IDLE_TIMEOUT:
                    return
                continue
            if not data:
                return
            activity[0] = time.monotonic()
            sink.write(data)
            await sink.drain()

    async def _answer(self, writer: asyncio.StreamWriter, status: int, text: str) -> None:
        reasons = {
            200: "OK",
            400: "Bad Request",
            403: "Forbidden",
            414: "URI Too Long",
            431: "Request Header Fields Too Large",
            502: "Bad Gateway",
            503: "Service Unavailable",
        }
        body = (text + "\n").encode("utf-8", "replace")
        head = (
            f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"X-Twin-Egress: {'refused' if status == 403 else 'error' if status >= 400 else 'ok'}\r\n"
            "Cache-Control: no-store\r\n"
            "Connection: close\r\n\r\n"
        )
        with contextlib.suppress(Exception):
            writer.write(head.encode("latin-1") + body)
            await writer.drain()


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def refusal_of(response: Any) -> str | None:
    """The proxy's sentence when a browser response is its refusal (a Playwright Response), else None."""
    if response is None:
        return None
    with contextlib.suppress(Exception):
        if response.headers.get("x-twin-egress") == "refused":
            return str(response.text()).strip()[:300] or "Twin's egress proxy refused the address"
    return None


def explain(error: str) -> str:
    """A browser error made readable: a refused https/websocket CONNECT shows as a tunnel failure."""
    if "ERR_TUNNEL_CONNECTION_FAILED" in error:
        return f"Twin's egress proxy refused or could not reach the address ({error})"
    return error


# -- the host process ---------------------------------------------------------------------------------------
def _die_with_parent() -> None:
    """Chromium ends when this host process ends, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


async def host_main(args: argparse.Namespace) -> int:
    proxy = EgressProxy(Policy.from_json(args.policy))
    port = await proxy.start()
    command = [*args.chromium, f"--proxy-server=http://127.0.0.1:{port}"]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    port_file = Path(args.user_data_dir) / "DevToolsActivePort"
    deadline = time.monotonic() + 20
    devtools = 0
    while not devtools:
        if process.returncode is not None or time.monotonic() > deadline or stopping.is_set():
            log.error("Chromium did not open its DevTools port (exit code %s)", process.returncode)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            return 1
        with contextlib.suppress(OSError, ValueError, IndexError):
            devtools = int(port_file.read_text().splitlines()[0])
        await asyncio.sleep(0.05)
    proxy.refuse_also(devtools)
    ready = {"pid": os.getpid(), "chromium_pid": process.pid, "devtools_port": devtools, "proxy_port": port}
    Path(args.ready_file).write_text(json.dumps(ready))
    log.info(
        "host browser pid %s: DevTools on 127.0.0.1:%s, egress proxy on 127.0.0.1:%s",
        process.pid,
        devtools,
        port,
    )
    waiter = asyncio.ensure_future(process.wait())
    stopper = asyncio.ensure_future(stopping.wait())
    await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
    await proxy.close()
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(process.wait(), 5)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.egress", description=__doc__.splitlines()[0])
    parser.add_argument("--policy", required=True, help="the address policy as JSON (engine.netguard.Policy)")
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--user-data-dir", required=True)
    parser.add_argument("--log-file", default="")
    parser.add_argument("chromium", nargs=argparse.REMAINDER, help="-- then Chromium's command line")
    args = parser.parse_args(argv)
    if args.chromium and args.chromium[0] == "--":
        args.chromium = args.chromium[1:]
    if not args.chromium:
        parser.error("give Chromium's command line after --")
    # Bounded: one line per connection adds up on a busy host.
    handler: logging.Handler = (
        logging.handlers.RotatingFileHandler(args.log_file, maxBytes=5_000_000, backupCount=1)
        if args.log_file
        else logging.StreamHandler()
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return asyncio.run(host_main(args))


if __name__ == "__main__":
    sys.exit(main())
