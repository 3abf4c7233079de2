"""A stdlib-only fixture web site for Twin's end-to-end tests.

The site runs on ``127.0.0.1`` on a free port, in a background thread of the test process::

    site = FixtureSite().start()
    page.goto(site.url("/login"))
    ...
    assert site.count("payment") == 1
    site.stop()

Every action a page offers goes back to the server, which records it in ``site.events``.
Another process can read that state with ``GET /_state``, flip a toggle with
``POST /_toggle?name=ready&value=1`` and clear everything with ``POST /_reset``.
"""

from __future__ import annotations

import html
import json
import secrets
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from vault.totp import verify

TOTP_SEED = "JBSWY3DPEHPK3PXP"
"""Base32 seed the ``/otp`` page checks codes against."""

USERS: dict[str, str] = {"alice": "wonderland"}
"""The accounts ``/login`` accepts: user name -> password."""

AMOUNT = "42.00"
INVOICES: dict[str, str] = {"1": "Invoice 2024-001", "2": "Invoice 2024-002"}
ACCOUNTS: tuple[str, ...] = ("Checking", "Savings")
MAX_SLOW_MS = 30_000
_TRUE = frozenset({"1", "true", "yes", "on"})

Event = dict[str, Any]
Headers = Iterable[tuple[str, str]]


class FixtureSite:
    """The fixture site and everything it has recorded; safe to use from any thread."""

    def __init__(self, *, port: int = 0, timestamps: bool = False) -> None:
        """``port=0`` picks a free port; pass a fixed one only to keep the origin stable across restarts.

        With ``timestamps=True`` every recorded event also carries ``"at"``: the ``time.time()`` at which
        the site recorded it (the benchmarks time browser actions with it; tests compare events exactly).
        """
        self._port = port
        self._timestamps = timestamps
        self._lock = threading.Condition()
        self._events: list[Event] = []
        self._sessions: dict[str, str] = {}
        self.toggles: dict[str, bool] = {}
        """Switches that change how pages behave, e.g. ``toggles["ready"]`` for ``/flaky``."""
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> FixtureSite:
        """Serve on a free port in a daemon thread; return ``self``."""
        if self._server is not None:
            raise RuntimeError("FixtureSite is already running")
        server = _Server(("127.0.0.1", self._port), self)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fixture-site", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; does nothing if the site is not running."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FixtureSite:
        return self if self._server is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running site."""
        if self._server is None:
            raise RuntimeError("FixtureSite is not running; call start() first")
        return f"http://{self._server.server_name}:{self._server.server_port}"

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (e.g. ``"/login"``) on this site."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    # -- recorded state --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget all events, sessions and toggles."""
        with self._lock:
            self._events.clear()
            self._sessions.clear()
            self.toggles.clear()

    @property
    def events(self) -> list[Event]:
        """A snapshot of every recorded action, oldest first."""
        with self._lock:
            return [dict(event) for event in self._events]

    def count(self, kind: str) -> int:
        """How many events of ``kind`` were recorded."""
        with self._lock:
            return sum(1 for event in self._events if event["kind"] == kind)

    def record(self, kind: str, **fields: Any) -> Event:
        """Record an action and wake up anyone in :meth:`wait_for`."""
        event: Event = {"kind": kind, **fields}
        if self._timestamps:
            event["at"] = time.time()
        with self._lock:
            self._events.append(event)
            self._lock.notify_all()
        return dict(event)

    def wait_for(self, kind: str, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` events of ``kind`` exist; False if ``timeout`` passes first."""
        with self._lock:
            return self._lock.wait_for(lambda: self.count(kind) >= count, timeout)

    def toggle(self, name: str) -> bool:
        """The current value of toggle ``name`` (False when unset)."""
        with self._lock:
            return bool(self.toggles.get(name, False))

    def set_toggle(self, name: str, value: bool) -> None:
        with self._lock:
            self.toggles[name] = value

    def state(self) -> dict[str, Any]:
        """Events and toggles, as ``GET /_state`` returns them."""
        with self._lock:
            return {"events": self.events, "toggles": dict(self.toggles)}

    # -- used by the request handler -------------------------------------------------------------------

    def open_session(self, user: str) -> str:
        """Start a session for ``user``; return its ``sid``."""
        sid = secrets.token_urlsafe(16)
        with self._lock:
            self._sessions[sid] = user
        return sid

    def session_user(self, sid: str | None) -> str | None:
        if not sid:
            return None
        with self._lock:
            return self._sessions.get(sid)

    def record_payment(self, user: str | None) -> Event:
        """Record a payment with the next receipt number (``R-0001``, ``R-0002``, ...)."""
        with self._lock:
            receipt = f"R-{self.count('payment') + 1:04d}"
            fields: dict[str, Any] = {"amount": AMOUNT, "receipt": receipt}
            if user is not None:
                fields["user"] = user
            return self.record("payment", **fields)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], site: FixtureSite) -> None:
        self.site = site
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), which can stall on a reverse DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A browser that navigates away mid-response is normal in these tests; anything else is not.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


# -- HTML ----------------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; max-width: 42rem; line-height: 1.5; }
label { display: block; margin-top: .5rem; }
button { margin-top: .5rem; }
.error { color: #b00020; }
"""


def _page(title: str, body: str, *, script: str = "", style: str = "") -> bytes:
    script_tag = f"<script>\n{script.strip()}\n</script>\n" if script else ""
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>{_STYLE}{style}</style>\n"
        f"</head>\n<body>\n{body.strip()}\n{script_tag}</body>\n</html>\n"
    ).encode()


def _error_line(error: str | None) -> str:
    return f'<p id="error" class="error" role="alert">{html.escape(error)}</p>\n' if error else ""


def _login_page(error: str | None = None, user: str = "") -> bytes:
    return _page(
        "Sign in",
        f"""
<h1>Sign in</h1>
{_error_line(error)}<form method="post" action="/login">
  <label for="user">User</label>
  <input id="user" name="user" autocomplete="username" value="{html.escape(user)}">
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password">
  <button id="login" type="submit">Sign in</button>
</form>
""",
    )


def _otp_page(error: str | None = None) -> bytes:
    return _page(
        "Two-step verification",
        f"""
<h1>Two-step verification</h1>
{_error_line(error)}<form method="post" action="/otp">
  <label for="otp">Code from your authenticator app</label>
  <input id="otp" name="otp" inputmode="numeric" autocomplete="one-time-code">
  <button id="verify" type="submit">Verify</button>
</form>
""",
    )


def _counter_page(clicks: int) -> bytes:
    return _page(
        "Counter",
        f"""
<h1>Counter</h1>
<p>Clicks: <span id="clicks">{clicks}</span></p>
<form method="post" action="/counter"><button id="click" type="submit">Click</button></form>
""",
    )


_INDEX = [
    ("/login", "Sign in"),
    ("/account", "Account"),
    ("/otp", "One-time code"),
    ("/pay", "Payment"),
    ("/twins", "Twin buttons"),
    ("/jsstate", "JS-only state"),
    ("/storage", "Storage"),
    ("/flaky", "Flaky"),
    ("/slow?ms=500", "Slow"),
    ("/counter", "Counter"),
    ("/anim", "Animation"),
]

_TWINS_SCRIPT = """
async function post(url) {
  const response = await fetch(url, {method: "POST"});
  if (!response.ok) throw new Error(url + " failed: " + response.status);
  return response.json();
}
document.querySelectorAll("#invoices li").forEach((item, index) => {
  item.querySelector("button.del").addEventListener("click", async () => {
    const data = await post("/twins/delete?row=" + (index + 1));
    document.getElementById("result").textContent = "Deleted " + data.label;
  });
});
document.querySelectorAll("button.acct").forEach((button) => {
  button.addEventListener("click", async () => {
    const data = await post("/twins/account?name=" + encodeURIComponent(button.textContent.trim()));
    document.getElementById("account").textContent = data.name;
  });
});
"""

_SHOP_SCRIPT = """
document.querySelectorAll("button.choose").forEach((button) => {
  button.addEventListener("click", () => {
    document.getElementById("plan").value = button.dataset.plan;
    document.getElementById("chosen").textContent = button.dataset.plan;
  });
});
"""

_JSSTATE_SCRIPT = """
window.counter = 0;
document.getElementById("inc").addEventListener("click", () => {
  window.counter += 1;
  document.getElementById("count").textContent = String(window.counter);
});
document.getElementById("submit").addEventListener("click", async () => {
  const response = await fetch("/jsstate/submit", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({counter: window.counter, note: document.getElementById("note").value}),
  });
  if (!response.ok) throw new Error("submit failed: " + response.status);
  const data = await response.json();
  document.getElementById("submitted").textContent = "Submitted " + data.counter + ": " + data.note;
});
"""

_STORAGE_SCRIPT = """
function readCookie(name) {
  const prefix = name + "=";
  const found = document.cookie.split("; ").find((part) => part.startsWith(prefix));
  return found === undefined ? null : decodeURIComponent(found.slice(prefix.length));
}
function show() {
  document.getElementById("local").textContent = localStorage.getItem("twin_local") ?? "";
  document.getElementById("session").textContent = sessionStorage.getItem("twin_session") ?? "";
  document.getElementById("cookie").textContent = readCookie("pref") ?? "";
}
if (localStorage.getItem("twin_local") === null) localStorage.setItem("twin_local", "L-value");
if (sessionStorage.getItem("twin_session") === null) sessionStorage.setItem("twin_session", "S-value");
if (readCookie("pref") === null) document.cookie = "pref=blue; path=/; max-age=86400; samesite=lax";
show();
document.getElementById("bump").addEventListener("click", () => {
  localStorage.setItem("twin_local", (localStorage.getItem("twin_local") ?? "") + "+");
  sessionStorage.setItem("twin_session", (sessionStorage.getItem("twin_session") ?? "") + "+");
  show();
});
"""

_ANIM_STYLE = """
.track { position: relative; height: 60px; width: 360px; border: 1px solid #ccc; overflow: hidden; }
#box { position: absolute; top: 10px; left: 0; width: 40px; height: 40px; background: #2563eb;
       animation: slide 1.2s ease-in-out infinite alternate; }
@keyframes slide { from { transform: translateX(0); background: #2563eb; }
                   to { transform: translateX(310px); background: #dc2626; } }
"""


ECHO_BOXES: dict[str, tuple[int, int, int, int]] = {
    "preview": (40, 200, 520, 48),
    "said": (40, 280, 520, 48),
}
"""Where ``/echo`` shows what was typed: element id -> (left, top, width, height) in CSS pixels."""

_ECHO_STYLE = """
.echo { position: absolute; left: 40px; width: 520px; height: 48px; margin: 0; padding: 0 8px;
  box-sizing: border-box; background: #fff3b0; color: #222; font: 24px/48px monospace;
  overflow: hidden; white-space: nowrap; }
#preview { top: 200px; } #said { top: 280px; }
#confirm { position: absolute; left: 40px; top: 360px; }
#done { position: absolute; left: 200px; top: 360px; margin: 0; }
"""

_ECHO_SCRIPT = """
const field = document.getElementById('v'), preview = document.getElementById('preview');
field.addEventListener('input', () => {
  preview.textContent = 'Preview: ' + field.value;
  preview.hidden = field.value === '';
});
document.getElementById('confirm').addEventListener('click', () => {
  document.getElementById('done').textContent = 'Confirmed';
});
"""


def _echo_page(value: str) -> bytes:
    """Echoes ``value`` three ways once the form is sent (a GET: it is in the URL too): in the title,
    in ``#preview`` (also live, as it is typed) and in ``#said``."""
    shown = html.escape(value)
    hidden = "" if value else " hidden"
    return _page(
        f"Echo: {value}" if value else "Echo",
        f"""
<h1>Echo</h1>
<form method="get" action="/echo">
  <label for="v">Value</label>
  <input id="v" name="v" autocomplete="off">
  <button id="send" type="submit">Send</button>
</form>
<p id="preview" class="echo"{hidden}>Preview: {shown}</p>
<div id="said" class="echo"{hidden}>You said {shown}</div>
<button id="confirm" type="button">Confirm</button>
<p id="done"></p>
""",
        style=_ECHO_STYLE,
        script=_ECHO_SCRIPT,
    )


# -- request handling ----------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "TwinFixture/1.0"
    query: dict[str, str]

    @property
    def site(self) -> FixtureSite:
        return self.server.site

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        self.query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        route = _ROUTES.get((method, parts.path))
        if route is not None:
            route(self)
        elif any(path == parts.path for _, path in _ROUTES):
            self._html(_page("Not allowed", "<h1>Method not allowed</h1>"), HTTPStatus.METHOD_NOT_ALLOWED)
        else:
            self._html(_page("Not found", "<h1>Not found</h1>"), HTTPStatus.NOT_FOUND)

    # -- request and response helpers ------------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _form(self) -> dict[str, str]:
        parsed = parse_qs(self._body().decode("utf-8", "replace"), keep_blank_values=True)
        return {name: values[-1] for name, values in parsed.items()}

    def _json_body(self) -> dict[str, Any]:
        try:
            data = json.loads(self._body() or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _user(self) -> str | None:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(self.headers.get("Cookie", ""))
        except CookieError:
            return None
        morsel = jar.get("sid")
        return self.site.session_user(morsel.value if morsel is not None else None)

    def _send(self, status: int, body: bytes, content_type: str, headers: Headers = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _html(self, page: bytes, status: int = HTTPStatus.OK, headers: Headers = ()) -> None:
        self._send(status, page, "text/html; charset=utf-8", headers)

    def _json(self, data: Any, status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _redirect(self, location: str, headers: Headers = ()) -> None:
        self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", [("Location", location), *headers])

    def _require_login(self) -> str | None:
        """The signed-in user, or None after redirecting to ``/login``."""
        user = self._user()
        if user is None:
            self._redirect("/login")
        return user

    # -- pages -----------------------------------------------------------------------------------------

    def index(self) -> None:
        links = "\n".join(
            f'  <li><a id="nav-{path[1:].split("?")[0]}" href="{html.escape(path)}">{label}</a></li>'
            for path, label in _INDEX
        )
        self._html(_page("Twin fixture site", f"<h1>Twin fixture site</h1>\n<ul>\n{links}\n</ul>"))

    def favicon(self) -> None:
        self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")

    def login_form(self) -> None:
        self._html(_login_page())

    def login_submit(self) -> None:
        form = self._form()
        user, password = form.get("user", ""), form.get("password", "")
        if user in USERS and USERS[user] == password:
            sid = self.site.open_session(user)
            self.site.record("login", user=user)
            self._redirect("/account", [("Set-Cookie", f"sid={sid}; Path=/; HttpOnly; SameSite=Lax")])
        else:
            self.site.record("login_failed")
            self._html(_login_page("Wrong user or password", user))

    def account(self) -> None:
        user = self._require_login()
        if user is None:
            return
        self._html(
            _page(
                "Account",
                f"""
<h1 id="welcome">Welcome {html.escape(user)}</h1>
<p><a id="to-otp" href="/otp">Verify with a one-time code</a></p>
""",
            )
        )

    def otp_form(self) -> None:
        if self._require_login() is not None:
            self._html(_otp_page())

    def otp_submit(self) -> None:
        if self._require_login() is None:
            return
        code = self._form().get("otp", "").strip()
        # verify() compares with hmac.compare_digest, which rejects non-ASCII text.
        if code.isascii() and code.isdigit() and verify(TOTP_SEED, code):
            self.site.record("otp_ok")
            self._redirect("/pay")
        else:
            self.site.record("otp_bad")
            self._html(_otp_page("Invalid code"))

    def pay_form(self) -> None:
        self._html(
            _page(
                "Confirm payment",
                f"""
<h1>Confirm payment</h1>
<p>Amount: <span id="amount">${AMOUNT}</span></p>
<form method="post" action="/pay"><button id="pay" type="submit">Pay ${AMOUNT}</button></form>
""",
            )
        )

    def pay_submit(self) -> None:
        self._body()
        event = self.site.record_payment(self._user())
        self._html(
            _page(
                "Payment complete",
                f"""
<h1>Thank you</h1>
<p id="done">Payment complete</p>
<p>Receipt: <span id="receipt">{event["receipt"]}</span></p>
""",
            )
        )

    def twins(self) -> None:
        rows = "\n".join(
            f'  <li><span class="label">{html.escape(label)}</span> '
            '<button type="button" class="del">Delete</button></li>'
            for label in INVOICES.values()
        )
        accounts = " ".join(f'<button type="button" class="acct">{name}</button>' for name in ACCOUNTS)
        self._html(
            _page(
                "Invoices",
                f"""
<h1>Invoices</h1>
<ul id="invoices">
{rows}
</ul>
<p id="result" role="status"></p>
<h2>Pay from</h2>
<p>{accounts}</p>
<p>Selected account: <span id="account"></span></p>
""",
                script=_TWINS_SCRIPT,
            )
        )

    def shop(self) -> None:
        """Plans to choose (look-alike "Choose" buttons), an order form, and toggles that change it:
        ``shop_renamed`` renames the ids (roles and names stay), ``shop_twin`` shows two look-alike
        Subscribe buttons (weekly and monthly), ``shop_relabel`` renames the Subscribe button "Sign up"."""
        renamed = self.site.toggles.get("shop_renamed", False)
        twin = self.site.toggles.get("shop_twin", False)
        suffix = "-field" if renamed else ""
        plans = "\n".join(
            f'<section class="card"><h2>{name}</h2><p>{price}</p>'
            f'<button type="button" class="choose" id="choose-{name.lower()}{suffix}" '
            f'data-plan="{name}">Choose</button></section>'
            for name, price in (("Basic", "$5 a month"), ("Pro", "$15 a month"))
        )
        if twin:
            submit = "\n".join(
                f'<section><h3>{cadence.title()}</h3><button type="submit" name="cadence" value="{cadence}" '
                f'id="subscribe-{cadence}">Subscribe</button></section>'
                for cadence in ("weekly", "monthly")
            )
        else:
            words = "Sign up" if self.site.toggles.get("shop_relabel", False) else "Subscribe"
            submit = (
                f'<button type="submit" name="cadence" value="once" id="subscribe{suffix}">{words}</button>'
            )
        self._html(
            _page(
                "Shop",
                f"""
<h1>Plans</h1>
{plans}
<p>Chosen plan: <span id="chosen"></span></p>
<form method="post" action="/shop">
  <input type="hidden" id="plan" name="plan">
  <label for="email{suffix}">Email</label>
  <input id="email{suffix}" name="email" type="email">
  <label for="country{suffix}">Country</label>
  <select id="country{suffix}" name="country">
    <option value="FR">France</option><option value="DE">Germany</option>
    <option value="US">United States</option>
  </select>
  {submit}
</form>
""",
                script=_SHOP_SCRIPT,
            )
        )

    def shop_submit(self) -> None:
        form = self._form()
        order = {key: form.get(key, "") for key in ("plan", "email", "country", "cadence")}
        self.site.record("order", **order)
        self._html(
            _page(
                "Thanks",
                f'<h1 id="done">Thanks, {html.escape(order["email"])}</h1>'
                f"<p>Plan {html.escape(order['plan'])}, {html.escape(order['cadence'])}.</p>",
            )
        )

    def twins_delete(self) -> None:
        self._body()
        row = self.query.get("row", "")
        label = INVOICES.get(row)
        if label is None:
            self._json({"error": f"no row {row!r}"}, HTTPStatus.NOT_FOUND)
            return
        self.site.record("delete", row=row)
        self._json({"row": row, "label": label})

    def twins_account(self) -> None:
        self._body()
        name = self.query.get("name", "")
        if name not in ACCOUNTS:
            self._json({"error": f"no account {name!r}"}, HTTPStatus.NOT_FOUND)
            return
        self.site.record("account", name=name)
        self._json({"name": name})

    def jsstate(self) -> None:
        self._html(
            _page(
                "JS state",
                """
<h1>JS state</h1>
<p>Count: <span id="count">0</span> <button type="button" id="inc">+1</button></p>
<label for="note">Note</label>
<input id="note" autocomplete="off">
<p><button type="button" id="submit">Submit</button></p>
<p id="submitted" role="status"></p>
""",
                script=_JSSTATE_SCRIPT,
            )
        )

    def jsstate_submit(self) -> None:
        data = self._json_body()
        counter, note = data.get("counter"), data.get("note", "")
        if not isinstance(counter, int) or isinstance(counter, bool) or not isinstance(note, str):
            self._json({"error": "expected {counter: int, note: str}"}, HTTPStatus.BAD_REQUEST)
            return
        self.site.record("jsstate", counter=counter, note=note)
        self._json({"counter": counter, "note": note})

    def storage(self) -> None:
        self._html(
            _page(
                "Storage",
                """
<h1>Storage</h1>
<p>localStorage.twin_local: <span id="local"></span></p>
<p>sessionStorage.twin_session: <span id="session"></span></p>
<p>cookie pref: <span id="cookie"></span></p>
<button type="button" id="bump">Bump</button>
""",
                script=_STORAGE_SCRIPT,
            )
        )

    def flaky(self) -> None:
        if self.site.toggle("ready"):
            body = """
<h1>Flaky</h1>
<p id="status">Ready</p>
<form method="post" action="/flaky"><button id="go" type="submit">Go</button></form>
"""
        else:
            body = '<h1>Flaky</h1>\n<p id="status">Not ready</p>'
        self._html(_page("Flaky", body))

    def flaky_submit(self) -> None:
        self._body()
        if not self.site.toggle("ready"):
            self._html(_page("Flaky", '<h1>Flaky</h1>\n<p id="status">Not ready</p>'), HTTPStatus.CONFLICT)
            return
        self.site.record("go")
        self._html(_page("Flaky", '<h1>Flaky</h1>\n<p id="went">Went</p>'))

    def slow(self) -> None:
        try:
            ms = int(self.query.get("ms", "500"))
        except ValueError:
            self._html(_page("Bad request", "<h1>ms must be an integer</h1>"), HTTPStatus.BAD_REQUEST)
            return
        time.sleep(min(max(ms, 0), MAX_SLOW_MS) / 1000)
        self._html(_page("Slow", '<h1>Slow</h1>\n<p id="slow">Slow page</p>'))

    def later(self) -> None:
        """A button ``#late`` that appears only ``ms`` milliseconds after the page loaded."""
        try:
            ms = min(max(int(self.query.get("ms", "3000")), 0), MAX_SLOW_MS)
        except ValueError:
            self._html(_page("Bad request", "<h1>ms must be an integer</h1>"), HTTPStatus.BAD_REQUEST)
            return
        script = (
            "setTimeout(() => { const f = document.createElement('form'); f.method = 'post';"
            " f.action = '/later'; f.innerHTML = '<button id=\"late\" type=\"submit\">Late</button>';"
            f" document.getElementById('spot').appendChild(f); }}, {ms});"
        )
        # ?anim=1: an animation plays meanwhile (for recording benchmarks: a page that never rests).
        animated = self.query.get("anim") == "1"
        body = '<h1>Later</h1>\n<div id="spot"></div>' + (
            '\n<div class="track"><div id="box"></div></div>' if animated else ""
        )
        self._html(_page("Later", body, script=script, style=_ANIM_STYLE if animated else ""))

    def later_submit(self) -> None:
        self._body()
        self.site.record("late")
        self._html(_page("Later", '<p id="late-done">Late click recorded</p>'))

    def counter(self) -> None:
        self._html(_counter_page(self.site.count("click")))

    def big(self) -> None:
        """A page whose ``#big`` holds ``?n=`` characters (a hostile page's megabyte of text)."""
        size = min(int(self.query.get("n", "1000")), 5_000_000)
        self._html(_page("Big", f'<p id="big">{"x" * size}</p>'))

    def counter_submit(self) -> None:
        self._body()
        self.site.record("click")
        self._html(_counter_page(self.site.count("click")))

    def anim(self) -> None:
        self._html(
            _page(
                "Animation",
                '<h1 id="title">Animation</h1>\n<div class="track"><div id="box"></div></div>',
                style=_ANIM_STYLE,
            )
        )

    def colors(self) -> None:
        """Red until #go is clicked, then green: tells frames before and after a pause apart."""
        self._html(
            _page(
                "Colors",
                '<h1 id="title">Before</h1>\n<button id="go" type="button">Go</button>',
                style="body { background: #d00000; } body.after { background: #00b000; }",
                script=(
                    "document.getElementById('go').addEventListener('click', () => {"
                    " document.body.classList.add('after');"
                    " document.getElementById('title').textContent = 'After'; });"
                ),
            )
        )

    def paint(self) -> None:
        """Each click on #next paints the page the next colour (the title says so 150 ms later)."""
        self._html(
            _page(
                "Paint",
                '<h1 id="title">Paint 0</h1>\n<button id="next" type="button">Next</button>',
                style="body { background: rgb(200, 0, 0); }",
                script=(
                    "const colors = ['rgb(200, 0, 0)', 'rgb(0, 170, 0)', 'rgb(0, 0, 200)',"
                    " 'rgb(220, 220, 0)', 'rgb(200, 0, 200)', 'rgb(0, 200, 200)'];"
                    " let n = 0;"
                    " document.getElementById('next').addEventListener('click', () => {"
                    " n = (n + 1) % colors.length; document.body.style.background = colors[n];"
                    " const shown = n, title = document.getElementById('title');"
                    " setTimeout(() => { title.textContent = 'Painted ' + shown; }, 150); });"
                ),
            )
        )

    def echo(self) -> None:
        value = self.query.get("v", "")
        self.site.record("echo", sent=bool(value))
        self._html(_echo_page(value))

    def restore_form(self) -> None:
        """A form whose fields only the browser holds (nothing is saved until it is posted).

        With the ``restore_changed`` toggle the site has changed under a paused run: the submit
        button ``#submit`` is gone (``#send`` stands in its place). With ``restore_moved`` it
        redirects to ``/login`` (a session that expired, say).
        """
        if self.site.toggle("restore_moved"):
            self._redirect("/login")
            return
        button = (
            '<button id="send" type="submit">Send</button>'
            if self.site.toggle("restore_changed")
            else '<button id="submit" type="submit">Submit</button>'
        )
        self._html(
            _page(
                "Restore form",
                f"""
<h1>Restore form</h1>
<form method="post" action="/restore-form">
  <label for="v">Value</label>
  <input id="v" name="v" autocomplete="off">
  <label for="code">Code</label>
  <input id="code" name="code" autocomplete="off">
  <label for="plan">Plan</label>
  <select id="plan" name="plan">
    <option value="basic">Basic</option><option value="gold">Gold</option>
  </select>
  <label><input id="agree" name="agree" type="checkbox" value="yes"> I agree</label>
  {button}
</form>
""",
            )
        )

    def restore_form_submit(self) -> None:
        form = self._form()
        self.site.record(
            "restore_submit",
            v=form.get("v", ""),
            code=form.get("code", ""),
            plan=form.get("plan", ""),
            agree=form.get("agree", ""),
        )
        self._html(_page("Restore form", '<h1>Restore form</h1>\n<p id="received">Received</p>'))

    # -- egress: pages that try to reach other addresses (the host browser's proxy must refuse them) ------

    def egress_redirect(self) -> None:
        """A plain 302 to ``?to=`` (a public site that redirects to a loopback port, say)."""
        self._send(HTTPStatus.FOUND, b"", "text/plain", [("Location", self.query.get("to", "/"))])

    def egress_probe(self) -> None:
        """An ``<img>``, a ``fetch()`` and a websocket to ``?target=`` (a base URL); each outcome is
        written to its own element once known (``loaded``/``error``/``open``...)."""
        target = json.dumps(self.query.get("target", ""))
        self._html(
            _page(
                "Egress probe",
                '<h1>Egress probe</h1>\n<p>img: <span id="img">pending</span></p>\n'
                '<p>fetch: <span id="fetch">pending</span></p>\n<p>ws: <span id="ws">pending</span></p>',
                script=(
                    f"const target = {target};"
                    " const put = (id, text) => { document.getElementById(id).textContent = text; };"
                    " const img = new Image();"
                    " img.onload = () => put('img', 'loaded'); img.onerror = () => put('img', 'error');"
                    " img.src = target + '/egress.png';"
                    " fetch(target + '/egress-fetch').then((r) => r.text().then((t) => put('fetch', 'status '"
                    " + r.status + ': ' + t.slice(0, 200))), (e) => put('fetch', 'error'));"
                    " try { const ws = new WebSocket(target.replace(/^http/, 'ws') + '/egress-ws');"
                    " ws.onopen = () => put('ws', 'open'); ws.onerror = () => put('ws', 'error'); }"
                    " catch (e) { put('ws', 'error'); }"
                ),
            )
        )

    # -- control endpoints for other processes ---------------------------------------------------------

    def state(self) -> None:
        self._json(self.site.state())

    def set_toggle(self) -> None:
        self._body()
        name = self.query.get("name", "")
        if not name:
            self._json({"error": "name is required"}, HTTPStatus.BAD_REQUEST)
            return
        self.site.set_toggle(name, self.query.get("value", "1").lower() in _TRUE)
        self._json(self.site.state()["toggles"])

    def reset(self) -> None:
        self._body()
        self.site.reset()
        self._json(self.site.state())


_ROUTES: dict[tuple[str, str], Callable[[_Handler], None]] = {
    ("GET", "/"): _Handler.index,
    ("GET", "/favicon.ico"): _Handler.favicon,
    ("GET", "/login"): _Handler.login_form,
    ("POST", "/login"): _Handler.login_submit,
    ("GET", "/account"): _Handler.account,
    ("GET", "/otp"): _Handler.otp_form,
    ("POST", "/otp"): _Handler.otp_submit,
    ("GET", "/pay"): _Handler.pay_form,
    ("POST", "/pay"): _Handler.pay_submit,
    ("GET", "/twins"): _Handler.twins,
    ("GET", "/shop"): _Handler.shop,
    ("POST", "/shop"): _Handler.shop_submit,
    ("GET", "/colors"): _Handler.colors,
    ("GET", "/paint"): _Handler.paint,
    ("POST", "/twins/delete"): _Handler.twins_delete,
    ("POST", "/twins/account"): _Handler.twins_account,
    ("GET", "/jsstate"): _Handler.jsstate,
    ("POST", "/jsstate/submit"): _Handler.jsstate_submit,
    ("GET", "/storage"): _Handler.storage,
    ("GET", "/flaky"): _Handler.flaky,
    ("POST", "/flaky"): _Handler.flaky_submit,
    ("GET", "/slow"): _Handler.slow,
    ("GET", "/later"): _Handler.later,
    ("POST", "/later"): _Handler.later_submit,
    ("GET", "/counter"): _Handler.counter,
    ("POST", "/counter"): _Handler.counter_submit,
    ("GET", "/anim"): _Handler.anim,
    ("GET", "/echo"): _Handler.echo,
    ("GET", "/big"): _Handler.big,
    ("GET", "/restore-form"): _Handler.restore_form,
    ("POST", "/restore-form"): _Handler.restore_form_submit,
    ("GET", "/egress/redirect"): _Handler.egress_redirect,
    ("GET", "/egress/probe"): _Handler.egress_probe,
    ("GET", "/_state"): _Handler.state,
    ("POST", "/_toggle"): _Handler.set_toggle,
    ("POST", "/_reset"): _Handler.reset,
}


# -- /bench-form: the skill replay benchmark's page (bench/skill_replay.py) ------------------------------

BENCH_FORM_PLANS: tuple[tuple[str, str], ...] = (("basic", "Basic"), ("pro", "Pro"), ("team", "Team"))
BENCH_FORM_COUNTRIES: tuple[tuple[str, str], ...] = (
    ("FR", "France"),
    ("DE", "Germany"),
    ("US", "United States"),
)

_BENCH_FORM_SCRIPT = """
const bf = (name) => document.querySelector('[data-bf="' + name + '"]');
let seats = 1;
bf("add").addEventListener("click", () => {
  seats += 1;
  bf("seats").textContent = String(seats);
});
bf("preview").addEventListener("click", () => {
  const parts = [bf("name").value, bf("plan").value, bf("country").value, seats + " seats"];
  if (bf("terms").checked) parts.push("terms accepted");
  if (bf("news").checked) parts.push("newsletter");
  bf("summary").textContent = "Preview: " + parts.join(", ");
  bf("summary").hidden = false;
});
bf("submit").addEventListener("click", async () => {
  const fields = ["name", "email", "company", "plan", "country", "notes"];
  const order = Object.fromEntries(fields.map((name) => [name, bf(name).value]));
  Object.assign(order, {terms: bf("terms").checked, news: bf("news").checked, seats});
  const response = await fetch("/bench-form", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify(order),
  });
  const data = await response.json();
  bf("ref").textContent = data.ref;
  bf("done").hidden = false;
});
"""


def _bench_form_page(renamed: bool) -> bytes:
    """An order form of ten fields and buttons, each with an id, a label or a name and a role.

    With ``renamed`` every id (and each label's ``for``) is different; labels, roles, names and
    texts stay, so a recorded locator bundle whose primary locator is the id heals by role.
    """
    p = "order-" if renamed else "bf-"

    def options(pairs: tuple[tuple[str, str], ...]) -> str:
        return "".join(f'<option value="{value}">{html.escape(text)}</option>' for value, text in pairs)

    return _page(
        "Order form",
        f"""
<h1>Order form</h1>
<div class="order">
  <label for="{p}name">Full name</label>
  <input id="{p}name" name="name" data-bf="name" autocomplete="off">
  <label for="{p}email">Email</label>
  <input id="{p}email" name="email" type="email" data-bf="email" autocomplete="off">
  <label for="{p}company">Company</label>
  <input id="{p}company" name="company" data-bf="company" autocomplete="off">
  <label for="{p}plan">Plan</label>
  <select id="{p}plan" name="plan" data-bf="plan">{options(BENCH_FORM_PLANS)}</select>
  <label for="{p}country">Country</label>
  <select id="{p}country" name="country" data-bf="country">{options(BENCH_FORM_COUNTRIES)}</select>
  <label><input type="checkbox" id="{p}terms" name="terms" data-bf="terms"> I accept the terms</label>
  <label><input type="checkbox" id="{p}news" name="news" data-bf="news"> Send me the newsletter</label>
  <p>Seats: <output id="{p}seats" role="status" aria-label="Seats" data-bf="seats">1</output>
    <button type="button" id="{p}add" data-bf="add">Add seat</button></p>
  <label for="{p}notes">Notes</label>
  <textarea id="{p}notes" name="notes" data-bf="notes"></textarea>
  <p><button type="button" id="{p}preview" data-bf="preview">Preview</button></p>
  <p id="{p}summary" role="status" aria-label="Summary" data-bf="summary" hidden></p>
  <p><button type="button" id="{p}submit" data-bf="submit">Place order</button></p>
  <p id="{p}done" role="status" aria-label="Confirmation" data-bf="done" hidden>Order confirmed.
    Reference: <strong id="{p}ref" role="status" aria-label="Order reference" data-bf="ref"></strong></p>
</div>
""",
        script=_BENCH_FORM_SCRIPT,
    )


def _bench_form(handler: _Handler) -> None:
    """The order form; the ``bench_renamed`` toggle renames every id (roles, names and labels stay)."""
    handler._html(_bench_form_page(handler.site.toggle("bench_renamed")))


def _bench_form_submit(handler: _Handler) -> None:
    """Record the order (JSON) as a ``bench_order`` event with the next reference (``BF-0001``, ...)."""
    order = handler._json_body()
    site = handler.site
    with site._lock:
        ref = f"BF-{site.count('bench_order') + 1:04d}"
        site.record("bench_order", ref=ref, **{k: v for k, v in order.items() if k not in {"kind", "ref"}})
    handler._json({"ref": ref})


_ROUTES[("GET", "/bench-form")] = _bench_form
_ROUTES[("POST", "/bench-form")] = _bench_form_submit


# -- /agent/*: pages for the agent's tests (tests/agent_model.py plans over their snapshots) ------------

AGENT_ACCOUNTS: tuple[tuple[str, str], ...] = (
    ("checking", "Checking ····1234"),
    ("savings", "Savings ····9876"),
)
"""The accounts ``/agent/accounts`` offers: form value -> radio label."""
AGENT_TRANSFER = "100.00"


def _agent_accounts(handler: _Handler) -> None:
    """Two radio buttons (no default) and a "Transfer $100.00" submit button."""
    radios = "\n".join(
        f'  <label><input type="radio" name="account" value="{value}" id="acct-{value}"> '
        f"{html.escape(label)}</label>"
        for value, label in AGENT_ACCOUNTS
    )
    handler._html(
        _page(
            "Transfer",
            f"""
<h1>Transfer ${AGENT_TRANSFER}</h1>
<form method="post" action="/agent/accounts">
<fieldset><legend>From account</legend>
{radios}
</fieldset>
  <button id="transfer" type="submit">Transfer ${AGENT_TRANSFER}</button>
</form>
""",
        )
    )


def _agent_accounts_submit(handler: _Handler) -> None:
    """Record a ``transfer`` event (account, amount, reference ``T-0001``, ...) and show the reference."""
    account = handler._form().get("account", "")
    if account not in dict(AGENT_ACCOUNTS):
        handler._html(
            _page("Transfer", '<h1>Transfer</h1><p class="error" role="alert">Choose an account</p>')
        )
        return
    site = handler.site
    with site._lock:
        reference = f"T-{site.count('transfer') + 1:04d}"
        site.record("transfer", account=account, amount=AGENT_TRANSFER, reference=reference)
    handler._html(
        _page(
            "Transfer complete",
            f"""
<h1>Transfer complete</h1>
<p>Reference: <span id="reference">{reference}</span></p>
""",
        )
    )


def _agent_steps(handler: _Handler) -> None:
    """Step ``n`` (default 1) with a link "Next" to step ``n + 1``, forever."""
    raw = handler.query.get("n", "1")
    n = int(raw) if raw.isascii() and raw.isdigit() else 1
    handler._html(
        _page(f"Step {n}", f'<h1>Step {n}</h1>\n<p><a id="next" href="/agent/steps?n={n + 1}">Next</a></p>')
    )


_ROUTES[("GET", "/agent/accounts")] = _agent_accounts
_ROUTES[("POST", "/agent/accounts")] = _agent_accounts_submit
_ROUTES[("GET", "/agent/steps")] = _agent_steps


# -- a slow site's form (bench/host_throughput.py): every page answers after ``ms`` milliseconds --------
def _slow_ms(handler: _Handler) -> int | None:
    try:
        return min(max(int(handler.query.get("ms", "300")), 0), MAX_SLOW_MS)
    except ValueError:
        handler._html(_page("Bad request", "<h1>ms must be an integer</h1>"), HTTPStatus.BAD_REQUEST)
        return None


def _slow_form(handler: _Handler) -> None:
    ms = _slow_ms(handler)
    if ms is None:
        return
    time.sleep(ms / 1000)
    handler._html(
        _page(
            "Slow form",
            f'<h1>Slow form</h1>\n<form method="post" action="/slow-form?ms={ms}">'
            '<label for="q">Query</label> <input id="q" name="q">'
            '<button id="go" type="submit">Go</button></form>',
        )
    )


def _slow_form_submit(handler: _Handler) -> None:
    ms = _slow_ms(handler)
    if ms is None:
        return
    query = handler._form().get("q", "")
    time.sleep(ms / 1000)
    handler.site.record("slow_form", q=query)
    handler._html(_page("Slow result", f'<h1>Slow result</h1>\n<p id="done">Done: {html.escape(query)}</p>'))


_ROUTES[("GET", "/slow-form")] = _slow_form
_ROUTES[("POST", "/slow-form")] = _slow_form_submit
