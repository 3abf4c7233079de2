"""Fast checks of the fixture site over plain HTTP (no browser)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.site.server import TOTP_SEED, FixtureSite
from vault.totp import totp, verify


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass
class Response:
    status: int
    headers: Message
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def fetch(
    site: FixtureSite,
    path: str,
    *,
    form: dict[str, str] | None = None,
    method: str | None = None,
    sid: str | None = None,
) -> Response:
    """One request, without following redirects or raising on error statuses."""
    data = urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(site.url(path), data=data, method=method)
    if sid is not None:
        request.add_header("Cookie", f"sid={sid}")
    try:
        with _OPENER.open(request, timeout=10) as response:
            return Response(response.status, response.headers, response.read().decode())
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, error.headers, error.read().decode())


def sign_in(site: FixtureSite) -> str:
    response = fetch(site, "/login", form={"user": "alice", "password": "wonderland"})
    assert response.status == 303
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("sid=")
    return cookie.split(";", 1)[0].removeprefix("sid=")


@pytest.fixture(scope="module")
def running_site() -> Iterator[FixtureSite]:
    site = FixtureSite().start()
    yield site
    site.stop()


@pytest.fixture
def site(running_site: FixtureSite) -> FixtureSite:
    running_site.reset()
    return running_site


def test_index_links_every_page(site: FixtureSite) -> None:
    page = fetch(site, "/").text
    for path in ("/login", "/otp", "/pay", "/twins", "/jsstate", "/storage", "/flaky", "/counter", "/anim"):
        assert f'href="{path}"' in page
    assert fetch(site, "/nowhere").status == 404


def test_login_sets_cookie_and_redirects(site: FixtureSite) -> None:
    wrong = fetch(site, "/login", form={"user": "alice", "password": "nope"})
    assert wrong.status == 200
    assert '<p id="error" class="error" role="alert">Wrong user or password</p>' in wrong.text
    assert "Set-Cookie" not in wrong.headers

    response = fetch(site, "/login", form={"user": "alice", "password": "wonderland"})
    assert response.status == 303
    assert response.headers["Location"] == "/account"
    sid = response.headers["Set-Cookie"].split(";", 1)[0].removeprefix("sid=")
    assert "HttpOnly" in response.headers["Set-Cookie"]

    account = fetch(site, "/account", sid=sid)
    assert account.status == 200
    assert '<h1 id="welcome">Welcome alice</h1>' in account.text
    assert 'id="to-otp" href="/otp"' in account.text
    anonymous = fetch(site, "/account")
    assert (anonymous.status, anonymous.headers["Location"]) == (303, "/login")
    assert [event["kind"] for event in site.events] == ["login_failed", "login"]
    assert site.events[1] == {"kind": "login", "user": "alice"}


def test_otp_accepts_a_real_code_and_rejects_a_wrong_one(site: FixtureSite) -> None:
    assert fetch(site, "/otp").headers["Location"] == "/login"
    sid = sign_in(site)
    assert 'id="verify"' in fetch(site, "/otp", sid=sid).text

    wrong_code = next(code for code in ("000000", "111111", "222222") if not verify(TOTP_SEED, code))
    bad = fetch(site, "/otp", form={"otp": wrong_code}, sid=sid)
    assert bad.status == 200
    assert '<p id="error" class="error" role="alert">Invalid code</p>' in bad.text

    good = fetch(site, "/otp", form={"otp": totp(TOTP_SEED)}, sid=sid)
    assert (good.status, good.headers["Location"]) == (303, "/pay")
    assert (site.count("otp_bad"), site.count("otp_ok")) == (1, 1)


def test_pay_records_payments_with_receipts(site: FixtureSite) -> None:
    page = fetch(site, "/pay").text
    assert '<span id="amount">$42.00</span>' in page
    assert '<button id="pay" type="submit">Pay $42.00</button>' in page

    first = fetch(site, "/pay", method="POST")
    assert '<p id="done">Payment complete</p>' in first.text
    assert '<span id="receipt">R-0001</span>' in first.text
    second = fetch(site, "/pay", method="POST", sid=sign_in(site))
    assert '<span id="receipt">R-0002</span>' in second.text
    payments = [event for event in site.events if event["kind"] == "payment"]
    assert payments == [
        {"kind": "payment", "amount": "42.00", "receipt": "R-0001"},
        {"kind": "payment", "amount": "42.00", "receipt": "R-0002", "user": "alice"},
    ]


def test_flaky_follows_the_ready_toggle(site: FixtureSite) -> None:
    page = fetch(site, "/flaky").text
    assert "Not ready" in page and 'id="go"' not in page
    assert fetch(site, "/flaky", method="POST").status == 409

    site.toggles["ready"] = True
    assert '<button id="go" type="submit">Go</button>' in fetch(site, "/flaky").text
    assert '<p id="went">Went</p>' in fetch(site, "/flaky", method="POST").text
    assert site.count("go") == 1

    site.reset()
    assert 'id="go"' not in fetch(site, "/flaky").text


def test_state_and_toggle_endpoints(site: FixtureSite) -> None:
    fetch(site, "/counter", method="POST")
    clicked = fetch(site, "/counter", method="POST")
    assert '<span id="clicks">2</span>' in clicked.text

    assert fetch(site, "/_toggle?name=ready&value=1", method="POST").json() == {"ready": True}
    assert site.toggles == {"ready": True}
    assert fetch(site, "/_state").json() == {
        "events": [{"kind": "click"}, {"kind": "click"}],
        "toggles": {"ready": True},
    }
    fetch(site, "/_toggle?name=ready&value=0", method="POST")
    assert site.toggle("ready") is False

    assert fetch(site, "/_reset", method="POST").json() == {"events": [], "toggles": {}}
    assert site.count("click") == 0


def test_twins_and_jsstate_record_their_actions(site: FixtureSite) -> None:
    page = fetch(site, "/twins").text
    assert page.count('class="del">Delete</button>') == 2
    deleted = fetch(site, "/twins/delete?row=2", method="POST")
    assert deleted.json() == {"row": "2", "label": "Invoice 2024-002"}
    assert fetch(site, "/twins/delete?row=9", method="POST").status == 404
    assert fetch(site, "/twins/account?name=Savings", method="POST").json() == {"name": "Savings"}

    request = urllib.request.Request(
        site.url("/jsstate/submit"),
        data=json.dumps({"counter": 3, "note": "hi"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response) == {"counter": 3, "note": "hi"}
    assert site.events == [
        {"kind": "delete", "row": "2"},
        {"kind": "account", "name": "Savings"},
        {"kind": "jsstate", "counter": 3, "note": "hi"},
    ]
    assert site.wait_for("jsstate", timeout=0.1)
    assert not site.wait_for("jsstate", count=2, timeout=0.05)


def test_slow_waits(site: FixtureSite) -> None:
    started = time.monotonic()
    assert '<p id="slow">Slow page</p>' in fetch(site, "/slow?ms=150").text
    assert time.monotonic() - started >= 0.15


def test_bench_form_renames_every_id_and_records_orders(site: FixtureSite) -> None:
    page = fetch(site, "/bench-form").text
    fields = ("name", "email", "company", "plan", "country", "terms", "news", "seats", "add", "notes")
    for field in (*fields, "preview", "summary", "submit", "done", "ref"):
        assert f'id="bf-{field}"' in page
    labels = ("Full name", "Email", "Company", "Plan", "Country", "I accept the terms", "Add seat")
    assert all(label in page for label in labels)

    site.set_toggle("bench_renamed", True)
    renamed = fetch(site, "/bench-form").text
    assert 'id="bf-' not in renamed and 'for="bf-' not in renamed
    assert 'id="order-name"' in renamed and '<label for="order-name">Full name</label>' in renamed
    # Everything but the ids is the same page.
    assert renamed.replace('"order-', '"bf-') == page

    def order(name: str) -> Any:
        request = urllib.request.Request(
            site.url("/bench-form"),
            data=json.dumps({"name": name, "plan": "pro", "seats": 3}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    assert order("Ada") == {"ref": "BF-0001"}
    assert order("Grace") == {"ref": "BF-0002"}
    assert [(e["ref"], e["name"], e["seats"]) for e in site.events] == [
        ("BF-0001", "Ada", 3),
        ("BF-0002", "Grace", 3),
    ]
