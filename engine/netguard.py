"""Which addresses a run's browser and a webhook may connect to: one policy, checked on the
address actually connected to.

The real enforcement is where the connection is made: the host browser's egress proxy
(``engine.egress``) and the webhook transport both resolve a name themselves, check every address
it resolves to with :class:`Policy`, and connect to that very address. ``check_url`` is only the
early, friendly check at submission and before a ``goto``; it also refuses the URLs that a
browser and ``urlsplit`` read differently (``http://127.0.0.1:9222\\@example.com/`` is
127.0.0.1 to Chromium), so a user learns at once rather than from a blocked pause.

``TWIN_ALLOW_PRIVATE_URLS`` opens private, loopback and link-local ranges: ``1`` all of them,
or a list such as ``127.0.0.1:8000-9000,10.0.0.0/8`` only those. Some addresses stay refused
whatever it says: the host browser's DevTools port and the proxy's own port, Twin's web port,
Redis and PostgreSQL, the cloud metadata addresses and the unspecified addresses.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ALL_PORTS = (1, 65535)

# Cloud metadata services hand out credentials to whoever asks from the machine.
METADATA = ("169.254.169.254/32", "169.254.170.2/32", "fd00:ec2::254/128", "100.100.100.200/32")
# Connecting to 0.0.0.0 or :: reaches this machine's own listeners on Linux.
UNSPECIFIED = ("0.0.0.0/8", "::/128")
# Where a service said to be on "localhost" may actually be listening.
LOOPBACK = ("127.0.0.0/8", "::1/128")
# Every non-global range of this machine: a service bound to 0.0.0.0 answers on them all.
LOCAL_RANGES = (
    *LOOPBACK,
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
)


class UrlRefused(ValueError):
    pass


class HostUnresolved(UrlRefused):
    """The name does not resolve (now): a refusal to the browser, a transient error to a webhook."""


class Rule(NamedTuple):
    """A network and a port range; ``reason`` says why a refusal rule exists."""

    network: str
    low: int = ALL_PORTS[0]
    high: int = ALL_PORTS[1]
    reason: str = ""

    def matches(self, address: Address, port: int) -> bool:
        network = _network(self.network)
        return address.version == network.version and address in network and self.low <= port <= self.high


@functools.lru_cache(maxsize=512)
def _network(text: str) -> Network:
    return ipaddress.ip_network(text)


def parse_allowed(name: str, raw: str) -> bool | tuple[Rule, ...]:
    """``TWIN_ALLOW_PRIVATE_URLS``: off, ``1`` (every private range) or a list of ranges and ports."""
    value = raw.strip()
    if value.lower() in {"", "0", "false", "no", "off"}:
        return False
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    rules = []
    for entry in value.split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            rules.append(_parse_rule(entry))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name}: {entry!r} is not an address or range with an optional port ({exc}); "
                "use 1, or a list such as 127.0.0.1:8000-9000,10.0.0.0/8,[fd00::/8]:443."
            ) from None
    if not rules:
        raise ImproperlyConfigured(f"{name}={raw!r} names no address; leave it empty to refuse private ones.")
    return tuple(rules)


def _parse_rule(entry: str) -> Rule:
    ports = ""
    if entry.startswith("["):
        network, _, rest = entry[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError("text after the bracketed address")
            ports = rest[1:]
    elif entry.count(":") == 1:
        network, ports = entry.split(":")
    else:
        network = entry  # an IPv6 range without a port, or IPv4 without one
    parsed = ipaddress.ip_network(network.strip(), strict=False)
    low, high = ALL_PORTS
    if ports:
        first, _, last = ports.partition("-")
        low = int(first)
        high = int(last) if last else low
        if not (1 <= low <= high <= 65535):
            raise ValueError("ports run from 1 to 65535, low to high")
    return Rule(str(parsed), low, high)


def canonical(address: Address) -> Address:
    """The IPv4 address an IPv6 form stands for (mapped, NAT64, 6to4), else the address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in ipaddress.ip_network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
        if address in ipaddress.ip_network("::/96") and int(address) > 1:  # IPv4-compatible (deprecated)
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


@dataclass(frozen=True)
class Policy:
    """The address policy: what is refused always, and which private ranges are open."""

    allowed: bool | tuple[Rule, ...]
    refused: tuple[Rule, ...]

    def check(self, host: str, address: Address, port: int) -> None:
        """Raise UrlRefused with a sentence for the user when ``address:port`` may not be reached."""
        address = canonical(address)
        where = f"{address}:{port}" if address.version == 4 else f"[{address}]:{port}"
        shown = where if host in {str(address), f"[{address}]"} else f"{host} ({where})"
        if address.is_multicast or address == ipaddress.IPv4Address("255.255.255.255"):
            raise UrlRefused(f"Twin refused {shown}: a multicast or broadcast address")
        opened = self.allowed is True or (
            bool(self.allowed) and any(rule.matches(address, port) for rule in self.allowed or ())
        )
        if not address.is_global and not opened:
            hint = (
                "TWIN_ALLOW_PRIVATE_URLS does not name it"
                if self.allowed
                else "set TWIN_ALLOW_PRIVATE_URLS to allow private addresses"
            )
            raise UrlRefused(f"Twin refused {shown}: a private or local address ({hint})")
        # Refused whatever TWIN_ALLOW_PRIVATE_URLS opens.
        for rule in self.refused:
            if rule.matches(address, port):
                raise UrlRefused(f"Twin refused {shown}: {rule.reason}")

    def to_json(self) -> str:
        allowed: Any = self.allowed if isinstance(self.allowed, bool) else [list(r) for r in self.allowed]
        return json.dumps({"allowed": allowed, "refused": [list(r) for r in self.refused]})

    @classmethod
    def from_json(cls, text: str) -> Policy:
        data = json.loads(text)
        allowed = data["allowed"]
        if not isinstance(allowed, bool):
            allowed = tuple(Rule(*r) for r in allowed)
        return cls(allowed=allowed, refused=tuple(Rule(*r) for r in data["refused"]))

    def refusing(self, *rules: Rule) -> Policy:
        return Policy(allowed=self.allowed, refused=(*self.refused, *rules))


def service_rules(host: str, port: int, reason: str) -> list[Rule]:
    """Refuse one of Twin's own services: its port on every local range when it is on this
    machine (a listener on 0.0.0.0 answers on all of them), and its resolved addresses."""
    rules: list[Rule] = []
    addresses: list[Address] = []
    with contextlib.suppress(OSError, UnicodeError, ValueError):
        addresses = resolve(host, port)
    local = not addresses or any(not canonical(a).is_global for a in addresses)
    if local:
        rules += [Rule(network, port, port, reason) for network in (*LOCAL_RANGES, *UNSPECIFIED)]
    for address in addresses:
        address = canonical(address)
        rules.append(Rule(str(ipaddress.ip_network(address)), port, port, reason))
    return rules


def base_policy(*, database: dict[str, Any] | None = None) -> Policy:
    """The policy from settings: always-refused addresses and the open private ranges.

    The host browser's own ports are added by whoever knows them (``host_policy``)."""
    refused = [Rule(n, *ALL_PORTS, "a cloud metadata address") for n in METADATA]
    refused += [Rule(n, *ALL_PORTS, "an unspecified address (this machine)") for n in UNSPECIFIED]
    refused += service_rules("127.0.0.1", settings.TWIN_WEB_PORT, "Twin's own web port")
    redis = urlsplit(settings.REDIS_URL)
    if redis.scheme in {"redis", "rediss"} and redis.hostname:
        refused += service_rules(redis.hostname, redis.port or 6379, "Twin's Redis")
    db: Any = database or settings.DATABASES["default"]
    if not db["ENGINE"].endswith("sqlite3"):
        refused += service_rules(
            str(db.get("HOST") or "127.0.0.1"), int(db.get("PORT") or 5432), "Twin's database"
        )
    return Policy(allowed=settings.TWIN_ALLOW_PRIVATE_URLS, refused=tuple(refused))


def host_rules(devtools_port: int, proxy_port: int) -> list[Rule]:
    rules = []
    if devtools_port:
        rules += [
            Rule(n, devtools_port, devtools_port, "the host browser's DevTools port") for n in LOCAL_RANGES
        ]
    if proxy_port:
        rules += [Rule(n, proxy_port, proxy_port, "the egress proxy's own port") for n in LOCAL_RANGES]
    return rules


def host_policy() -> Policy:
    """The base policy plus this host's browser ports (from its ``browser.json``, when it has one)."""
    policy = base_policy()
    state = Path(settings.VAR_DIR) / "hosts" / settings.TWIN_HOST_ID / "browser.json"
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        data = json.loads(state.read_text())
        devtools = urlsplit(str(data["endpoint"])).port or 0
        policy = policy.refusing(*host_rules(devtools, int(data.get("proxy_port") or 0)))
    return policy


def hosts_override() -> dict[str, list[str]]:
    """``TWIN_EGRESS_HOSTS=name=address,...``: names resolved without DNS (tests and development
    stand in for a public name with it; the addresses are checked like any other)."""
    mapping: dict[str, list[str]] = {}
    for entry in os.environ.get("TWIN_EGRESS_HOSTS", "").split(","):
        name, sep, address = entry.strip().partition("=")
        if sep:
            mapping.setdefault(name.strip().lower().rstrip("."), []).append(address.strip())
    return mapping


def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to (an IP literal is itself); OSError when none."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    with contextlib.suppress(ValueError):
        return [ipaddress.ip_address(bare)]
    override = hosts_override().get(bare.lower().rstrip("."))
    if override:
        return [ipaddress.ip_address(a) for a in override]
    infos = socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM)
    addresses: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    return addresses


def checked_addresses(policy: Policy, host: str, port: int) -> list[Address]:
    """Resolve and check every address (one refused address refuses the name: a rebinding name
    may hand out the other one next time)."""
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError, ValueError) as exc:
        raise HostUnresolved(f"the host {host!r} does not resolve ({exc})") from None
    for address in addresses:
        policy.check(host, address, port)
    return addresses


# Characters a browser drops or reads as a separator where urlsplit does not.
_AMBIGUOUS = set("\\\t\n\r ") | {chr(c) for c in range(0x20)} | {"\x7f"}


def browser_host(host: str) -> str:
    """The host as a browser would canonicalise it: IDNA-mapped, lower case, no trailing dot,
    and the IPv4 forms browsers accept (``2130706433``, ``0x7f.1``, ``017700000001``) as dotted quads."""
    try:
        ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise UrlRefused(f"{host!r} is not a valid host name") from None
    ascii_host = ascii_host.lower().rstrip(".")
    if ascii_host and all(part and _numeric(part) for part in ascii_host.split(".")):
        with contextlib.suppress(OSError):
            return socket.inet_ntoa(socket.inet_aton(ascii_host))
        raise UrlRefused(f"{host!r} is neither a host name nor an IPv4 address")
    return ascii_host


def _numeric(part: str) -> bool:
    if part.startswith(("0x", "0X")):
        return all(c in "0123456789abcdefABCDEF" for c in part[2:])
    return part.isdigit()


def check_url(url: str, *, resolve: bool = True, policy: Policy | None = None) -> None:
    """Raise UrlRefused with a sentence for the user when ``url`` may not be visited."""
    if any(c in _AMBIGUOUS for c in url):
        raise UrlRefused(
            "the URL holds a backslash, a space or a control character, which browsers read differently"
        )
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise UrlRefused(f"only http and https URLs can be visited, not {parts.scheme or 'a bare path'!r}")
    if "@" in parts.netloc:
        raise UrlRefused(
            "the URL holds a user name or password (user@host), which browsers and servers read differently"
        )
    if not parts.hostname:
        raise UrlRefused("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UrlRefused("the URL's port is not a number from 1 to 65535") from None
    host = browser_host(parts.hostname)
    policy = policy or host_policy()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        # A name: resolved here only when private addresses are closed (an early hint); with them
        # open, names like shop.example need not resolve at submission. The proxy decides anyway.
        if not resolve or policy.allowed is True:
            return
        checked_addresses(policy, host, port)
        return
    policy.check(host, address, port)


def check_address(host: str, address: Address, port: int = 0, *, policy: Policy | None = None) -> None:
    """Refuse ``address`` (and ``port``, when known) under this host's policy."""
    (policy or host_policy()).check(host, address, port or 1)
