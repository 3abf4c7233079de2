"""``make run``'s first minutes as a new user lives them: the demo site, the login box printed
last, ``make token``, the demo user in ``/admin/``, and Ctrl-C ending everything with status 0.

One served Twin for the module (real web processes, workers, beat and browser: tests/test_serve.py's
``Served``), on free ports, with the demo site on a free port of its own.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tenants.demo import DemoLogin, demo_port, login_box
from tests.conftest import wait_until
from tests.test_serve import ROOT, Served, free_port, gone, listening

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    twin = Served(
        tmp_path_factory.mktemp("serve-demo"), web_processes=2, env={"TWIN_DEMO_PORT": str(free_port())}
    )
    twin.start()
    # start() returns once a worker is ready and the API answers; the box follows within moments.
    wait_until(lambda: "demo site:" in twin.output(), timeout=60, what="the login box")
    yield twin
    twin.stop()


def demo_site_port(twin: Served) -> int:
    return int(twin.extra_env["TWIN_DEMO_PORT"])


def test_the_demo_login_and_token_are_the_last_thing_printed_in_a_box(served: Served) -> None:
    output = served.output()
    lines = output.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("+---")]
    top, bottom = rules[-2], rules[-1]
    box = "\n".join(lines[top : bottom + 1])
    ready_lines = [i for i, line in enumerate(lines) if re.search(r"\S+@\S+ ready\.", line)]

    assert len(ready_lines) == 2 and max(ready_lines) < top  # both workers had their say before it
    assert f"Twin is ready: http://127.0.0.1:{served.port}/" in box
    assert f"dashboard login:  demo / {(served.var_dir / 'demo-password').read_text().strip()}" in box
    assert f"API token:        {served.token}" in box
    assert f"demo site:        http://127.0.0.1:{demo_site_port(served)}/" in box
    assert lines[bottom + 1] == "Ctrl-C stops everything."
    # After it, nothing of the start-up (requests and beat's sweeps may follow).
    start_up = ("ready.", "started, pid", "Listening on", "[tasks]", "is starting", "Configuring endpoint")
    after = [line for line in lines[bottom:] if any(marker in line for marker in start_up)]
    assert after == []


def test_the_demo_site_serves_the_checkout_on_its_own_port_on_loopback_only(served: Served) -> None:
    port = demo_site_port(served)
    page = httpx.get(f"http://127.0.0.1:{port}/pay", timeout=10)
    assert page.status_code == 200
    assert "Pay $42.00" in page.text

    assert served.process is not None
    listeners = [
        c.laddr
        for c in psutil.Process(served.process.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    ]
    assert [address.ip for address in listeners] == ["127.0.0.1"]


def test_a_run_reaches_the_demo_site_and_pauses_at_the_pay_step(served: Served) -> None:
    site = f"http://127.0.0.1:{demo_site_port(served)}"
    answer = served.post(
        "/api/runs?wait=30",
        {
            "goal": "Pay the invoice",
            "url": f"{site}/pay",
            "steps": [
                {"action": "goto", "url": f"{site}/pay"},
                {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay?"}},
                {"action": "assert_text", "text": "Payment complete"},
            ],
        },
    )
    run = served.wait_status(answer.json()["id"], "awaiting_approval", "failed", "completed")
    assert run["status"] == "awaiting_approval"
    assert run["pending_step"]["index"] == 2
    assert run["pending_step"]["trigger"] == "approval"


def test_make_token_prints_the_same_token_again_and_new_replaces_it(served: Served) -> None:
    box = served.manage("demotoken", "--port", str(served.port))
    assert f"API token:        {served.token}" in box
    assert f"demo site:        http://127.0.0.1:{demo_site_port(served)}/" in box
    assert served.manage("demotoken", "--plain").strip() == served.token

    fresh = served.manage("demotoken", "--plain", "--new").strip()

    assert fresh.startswith("twin_") and fresh != served.token
    new = httpx.get(f"{served.base}/api/runs", headers={"Authorization": f"Bearer {fresh}"})
    old = httpx.get(f"{served.base}/api/runs", headers={"Authorization": f"Bearer {served.token}"})
    assert new.status_code == 200
    assert old.status_code == 401
    served.token = fresh  # the tests after this one use the token make token now prints


def test_the_demo_user_signs_in_to_admin_and_reads_the_audit_trail(served: Served) -> None:
    password = (served.var_dir / "demo-password").read_text().strip()
    with httpx.Client(base_url=served.base, timeout=30) as browser:
        browser.get("/admin/login/")
        signed_in = browser.post(
            "/admin/login/",
            data={
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
                "username": "demo",
                "password": password,
                "next": "/admin/",
            },
            headers={"Referer": f"{served.base}/admin/login/"},
        )
        assert signed_in.status_code == 302, signed_in.text[:500]
        admin = browser.get("/admin/")
        runs = browser.get("/admin/runs/run/")
        tokens = browser.get("/admin/tenants/apitoken/")

    assert admin.status_code == 200
    assert 'href="/admin/runs/run/"' in admin.text
    assert 'href="/admin/approvals/approval/"' in admin.text
    assert runs.status_code == 200 and "Pay the invoice" in runs.text
    assert tokens.status_code == 403  # the trail, not the tokens


def test_sigint_stops_every_process_and_serve_exits_0(served: Served) -> None:
    pids = served.every_pid()
    assert served.process is not None
    os.kill(served.process.pid, signal.SIGINT)
    assert served.process.wait(timeout=90) == 0

    wait_until(lambda: all(gone(pid) for pid in pids), timeout=30, what="every process gone")
    assert not listening(served.port)
    assert not listening(demo_site_port(served))


def test_sigterm_while_starting_stops_what_started_and_exits_0(tmp_path: Path) -> None:
    """``make: *** Error 143`` came from a stop asked for before the supervisor ran."""
    twin = Served(tmp_path / "early", env={"TWIN_DEMO_PORT": str(free_port())})
    twin.var_dir.mkdir(parents=True)
    with twin.log.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(twin.port)],
            cwd=ROOT,
            env=twin.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: "Starting Twin on" in twin.output(), timeout=120, what="serve under way")
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=120) == 0, twin.output()[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    left = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if any(str(twin.var_dir) in part for part in (p.info["cmdline"] or []))
    ]
    assert left == []
    assert not (twin.var_dir / "hosts" / twin.host_id / "browser.json").exists()
    assert not listening(twin.port)


# -- without a served Twin -------------------------------------------------------------------------------


def test_the_demo_site_port_is_the_web_port_plus_one_unless_set_or_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TWIN_DEMO_PORT", raising=False)
    assert demo_port(8000) == 8001
    monkeypatch.setenv("TWIN_DEMO_PORT", "9100")
    assert demo_port(8000) == 9100
    for off in ("0", "off"):
        monkeypatch.setenv("TWIN_DEMO_PORT", off)
        assert demo_port(8000) == 0


def test_the_box_frames_every_line_at_one_width() -> None:
    login = DemoLogin(username="demo", password="p-w-d", token="twin_abc")
    box = login_box(login, title="Twin is ready", port=8000, demo_url=None, note="Demo site off.")
    widths = {len(line) for line in box.splitlines()}
    assert len(widths) == 1
    assert "demo site:        off" in box
    assert box.splitlines()[0] == box.splitlines()[-1]


MAKEFILE = """\
run:
\t{python} {script}
"""

SUPERVISED = """\
# What make run runs, in small: one supervised child, and the terminal taken as serve takes it.
import sys

sys.path.insert(0, {root!r})
from twin_site.supervisor import Program, Supervisor, terminal_foreground

with terminal_foreground():
    supervisor = Supervisor()
    supervisor.add(Program("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"]))
    status = supervisor.run()
sys.exit(status)
"""


def test_ctrl_c_in_a_terminal_ends_make_run_with_status_0_and_no_error(tmp_path: Path) -> None:
    script, makefile = tmp_path / "supervised.py", tmp_path / "Makefile"
    script.write_text(SUPERVISED.format(root=str(ROOT)))
    makefile.write_text(MAKEFILE.format(python=sys.executable, script=script))
    pid, terminal = pty.fork()
    if pid == 0:  # the child: make, in a terminal of its own, as a person runs it
        os.execvp("make", ["make", "-f", str(makefile), "run"])
    output = b""

    def read(until: bytes, timeout: float) -> bool:
        nonlocal output
        deadline = time.monotonic() + timeout
        while until not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([terminal], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(terminal, 4096)
                except OSError:  # the terminal closed: make is gone
                    return until in output
                if not chunk:
                    break
                output += chunk
        return until in output

    try:
        assert read(b"sleeper started", 60), output
        time.sleep(0.5)
        os.write(terminal, b"\x03")  # Ctrl-C, typed
        read(b"\x00never", 30)  # until make is gone and the terminal closes
        deadline = time.monotonic() + 30
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        if done[0] == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"make was still running 30 s after Ctrl-C:\n{output.decode(errors='replace')}")
        status = done[1]
    finally:
        os.close(terminal)
    text = output.decode(errors="replace")
    assert "stopping every process" in text
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "Error" not in text and "Interrupt" not in text
