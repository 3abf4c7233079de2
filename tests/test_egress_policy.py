"""The address policy shared by the host browser's egress proxy and webhooks (engine.netguard):
hostile spellings of an address, the always-refused list and TWIN_ALLOW_PRIVATE_URLS's grammar."""

from __future__ import annotations

import ipaddress

import pytest
from django.core.exceptions import ImproperlyConfigured

from engine.netguard import (
    Policy,
    Rule,
    UrlRefused,
    base_policy,
    browser_host,
    check_url,
    checked_addresses,
    host_rules,
    parse_allowed,
)

DEVTOOLS = 9222
PROXY = 40000


def policy(allowed: bool | tuple[Rule, ...]) -> Policy:
    return Policy(allowed=allowed, refused=base_policy().refused).refusing(*host_rules(DEVTOOLS, PROXY))


def refused(pol: Policy, address: str, port: int) -> str:
    with pytest.raises(UrlRefused) as caught:
        pol.check(address, ipaddress.ip_address(address), port)
    return str(caught.value)


# -- TWIN_ALLOW_PRIVATE_URLS ----------------------------------------------------------------------------
def test_the_setting_is_off_all_private_ranges_or_a_list_of_ranges_and_ports():
    assert parse_allowed("X", "") is False
    assert parse_allowed("X", "0") is False
    assert parse_allowed("X", "1") is True
    assert parse_allowed("X", "127.0.0.1:8000-9000, 10.0.0.0/8,[fd00::/8]:443,::1") == (
        Rule("127.0.0.1/32", 8000, 9000),
        Rule("10.0.0.0/8", 1, 65535),
        Rule("fd00::/8", 443, 443),
        Rule("::1/128", 1, 65535),
    )


@pytest.mark.parametrize(
    "raw", ["localhost", "127.0.0.1:0", "127.0.0.1:9000-8000", "10.0.0.0/33", "1.2.3.4:x", ","]
)
def test_a_bad_setting_fails_loudly_with_a_sentence(raw):
    with pytest.raises(ImproperlyConfigured, match="TWIN_ALLOW_PRIVATE_URLS"):
        parse_allowed("TWIN_ALLOW_PRIVATE_URLS", raw)


def test_a_list_opens_only_what_it_names():
    narrow = policy(parse_allowed("X", "127.0.0.1:8000-9000,10.0.0.0/8"))

    narrow.check("x", ipaddress.ip_address("127.0.0.1"), 8500)
    narrow.check("x", ipaddress.ip_address("10.9.8.7"), 22)
    assert "does not name it" in refused(narrow, "127.0.0.1", 7999)
    assert "does not name it" in refused(narrow, "192.168.1.1", 8500)
    narrow.check("x", ipaddress.ip_address("93.184.216.34"), 443)  # public stays open


# -- refused whatever the setting says ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "port", "why"),
    [
        ("127.0.0.1", DEVTOOLS, "DevTools"),
        ("127.0.0.2", DEVTOOLS, "DevTools"),
        ("::1", DEVTOOLS, "DevTools"),
        ("::ffff:127.0.0.1", DEVTOOLS, "DevTools"),
        ("127.0.0.1", PROXY, "egress proxy"),
        ("127.0.0.1", 6379, "Redis"),
        ("10.1.2.3", 6379, "Redis"),  # a Redis on 0.0.0.0 answers on the host's private addresses too
        ("127.0.0.1", 8000, "web port"),
        ("169.254.169.254", 80, "metadata"),
        ("fd00:ec2::254", 80, "metadata"),
        ("::ffff:169.254.169.254", 80, "metadata"),
        ("0.0.0.0", 8080, "unspecified"),
        ("::", 8080, "unspecified"),
        ("224.0.0.1", 80, "multicast"),
    ],
)
def test_twins_own_services_and_metadata_are_refused_even_with_every_private_range_open(address, port, why):
    assert why in refused(policy(True), address, port)


def test_postgresql_is_refused_when_it_is_the_database():
    postgres = {"ENGINE": "django.db.backends.postgresql", "HOST": "127.0.0.1", "PORT": "5432", "NAME": "t"}

    assert "database" in refused(Policy(True, base_policy(database=postgres).refused), "127.0.0.1", 5432)
    assert "database" in refused(Policy(True, base_policy(database=postgres).refused), "10.0.0.7", 5432)


def test_ipv6_forms_of_loopback_are_loopback():
    closed = policy(False)
    for spelled in ["::ffff:127.0.0.1", "::ffff:7f00:1", "64:ff9b::7f00:1", "2002:7f00:1::", "::127.0.0.1"]:
        assert "private or local" in refused(closed, spelled, 80), spelled


# -- the early URL check --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        f"http://127.0.0.1:{DEVTOOLS}\\@example.com/x",  # Chromium: 127.0.0.1; urlsplit: example.com
        "http://example.com\\@127.0.0.1/",
        "http://user@example.com/",
        "http://user:pw@example.com/",
        "http://127.0.0.1:8621@example.com/",
        "http://exam ple.com/",
        "http://example.com\t.evil/",
        "http://example.com\n/",
    ],
)
def test_urls_that_browsers_and_urlsplit_read_differently_are_refused_even_with_private_urls_open(url):
    with pytest.raises(UrlRefused, match=r"backslash|user name"):
        check_url(url, policy=policy(True))


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",  # decimal
        "http://0x7f.1/",  # hex + short form
        "http://017700000001/",  # octal
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://localhost./",
        "http://LOCALHOST/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::1]:80/",
        "http://\uff11\uff12\uff17.0.0.1/",  # full-width digits: IDNA maps them to 127.0.0.1
    ],
)
def test_other_spellings_of_loopback_are_loopback(url):
    with pytest.raises(UrlRefused, match="private or local"):
        check_url(url, policy=policy(False))


def test_browser_host_canonicalises_like_a_browser():
    assert browser_host("2130706433") == "127.0.0.1"
    assert browser_host("0x7f.1") == "127.0.0.1"
    assert browser_host("Example.COM.") == "example.com"
    assert browser_host("bücher.example") == "xn--bcher-kva.example"


def test_literal_devtools_and_redis_urls_are_refused_at_submission_with_private_urls_open():
    with pytest.raises(UrlRefused, match="DevTools"):
        check_url(f"http://127.0.0.1:{DEVTOOLS}/json/list", policy=policy(True))
    with pytest.raises(UrlRefused, match="Redis"):
        check_url("http://127.0.0.1:6379/", policy=policy(True))
    check_url("http://127.0.0.1:8080/", policy=policy(True))


def test_a_name_is_checked_on_every_address_it_resolves_to(monkeypatch):
    monkeypatch.setenv("TWIN_EGRESS_HOSTS", "shop.twin-test=93.184.216.34,shop.twin-test=127.0.0.1")

    with pytest.raises(UrlRefused, match=r"shop.twin-test \(127.0.0.1:443\)"):
        checked_addresses(policy(False), "shop.twin-test", 443)
    assert checked_addresses(policy(True), "shop.twin-test", 443) == [
        ipaddress.ip_address("93.184.216.34"),
        ipaddress.ip_address("127.0.0.1"),
    ]


def test_the_policy_travels_to_the_proxy_intact():
    original = policy(parse_allowed("X", "127.0.0.1:8000-9000"))

    assert Policy.from_json(original.to_json()) == original
