"""Refuse URLs that resolve to this machine's or the private network's addresses.

Runs (and later webhooks) must not be a way to reach loopback, private, link-local or
cloud-metadata addresses, unless ``TWIN_ALLOW_PRIVATE_URLS`` is on (development, tests).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


class UrlRefused(ValueError):
    pass


def check_url(url: str, *, resolve: bool = True) -> None:
    """Raise UrlRefused with a sentence for the user when ``url`` may not be visited."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise UrlRefused(f"only http and https URLs can be visited, not {parts.scheme or 'a bare path'!r}")
    host = parts.hostname
    if not host:
        raise UrlRefused("the URL has no host")
    if settings.TWIN_ALLOW_PRIVATE_URLS:
        return
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        if not resolve:
            return
        try:
            infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
        except OSError:
            raise UrlRefused(f"the host {host!r} does not resolve") from None
        addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    for address in addresses:
        check_address(host, address)


def check_address(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """Refuse loopback, private, link-local (cloud metadata), multicast and reserved addresses."""
    if settings.TWIN_ALLOW_PRIVATE_URLS:
        return
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    if not address.is_global or address.is_multicast:
        raise UrlRefused(
            f"{host} resolves to {address}, a private or local address; "
            "set TWIN_ALLOW_PRIVATE_URLS=1 to allow it"
        )
