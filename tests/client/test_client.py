"""twin_client against the live server: start, pause, answer, wait, errors, async, webhooks."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from standardwebhooks import Webhook

import twin_client
from tests.dashboard.conftest import Person
from tests.site.server import TOTP_SEED, FixtureSite
from tests.test_input_gate import OTP_GATE, login_then_otp
from tests.webhook_receiver import Receiver
from twin_client import AsyncTwin, Conflict, InvalidRequest, NotFound, Twin, Unauthorized
from twin_client.webhooks import WebhookVerificationError, verify
from vault.totp import totp

ROOT = Path(__file__).resolve().parents[2]


def pay(site: FixtureSite) -> list[dict[str, object]]:
    return [
        {"action": "goto", "url": site.url("/pay")},
        {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay $42?"}},
        {"action": "assert_text", "text": "Payment complete"},
        {"action": "extract", "selector": "#receipt", "name": "receipt"},
    ]


def test_a_run_pauses_and_an_approval_through_the_client_completes_it(alice: Person, site, worker) -> None:
    with Twin(alice.base_url, alice.token) as twin:
        run = twin.agents.run(goal="Pay the invoice", url=site.url("/pay"), steps=pay(site))

        assert run.status == "awaiting_approval"
        assert run.pending_step is not None
        assert (run.pending_step.index, run.pending_step.prompt) == (2, "Pay $42?")
        assert run.pending_step.decision_url and "/decide/" in run.pending_step.decision_url
        assert site.count("payment") == 0

        run = twin.runs.approve(run.id, note="approved by the client")
        done = twin.runs.wait(run.id, timeout=30)

        assert done.status == "completed"
        assert done.resumed_from == 2
        assert done.outputs["receipt"]
        assert [s.status for s in done.steps] == ["done"] * 4
        assert done.steps[0].raw["attempts"] >= 1  # fields the dataclasses do not name are kept
        assert site.count("payment") == 1
        assert any(r.id == done.id for r in twin.runs.list(status="completed"))
        with pytest.raises(Conflict) as again:
            twin.runs.approve(done.id)
        assert again.value.run_status == "completed"


def test_a_one_time_code_is_refused_then_accepted(alice: Person, site, worker) -> None:
    twin = Twin(alice.base_url, alice.token)
    run = twin.agents.run(goal="Sign in", steps=login_then_otp(site, "{{input}}", gate=OTP_GATE))
    assert run.status == "awaiting_approval" and run.pending_step is not None
    assert run.pending_step.kind == "input"

    with pytest.raises(InvalidRequest) as wrong:
        twin.runs.approve(run.id, input="12ab")
    assert wrong.value.code == "input_invalid"
    assert twin.runs.get(run.id).status == "awaiting_approval"

    twin.runs.approve(run.id, input=totp(TOTP_SEED))
    assert twin.runs.wait(run.id, timeout=30).status == "completed"
    pending = twin.approvals.list(status="pending")
    assert all(a.run_id != run.id for a in pending)


def test_reject_cancel_and_the_errors_an_integration_meets(
    alice: Person, carol: Person, site, worker
) -> None:
    twin = Twin(alice.base_url, alice.token)
    first = twin.agents.run(steps=pay(site))
    rejected = twin.runs.reject(first.id, reason="not this month")
    assert rejected.status == "rejected"
    second = twin.agents.run(steps=pay(site))
    assert twin.runs.cancel(second.id).status == "cancelled"
    assert site.count("payment") == 0

    with pytest.raises(NotFound):
        Twin(carol.base_url, carol.token).runs.get(first.id)  # another tenant's run
    with pytest.raises(Unauthorized):
        Twin(alice.base_url, "twin_not-a-token").runs.list()
    with pytest.raises(InvalidRequest) as bad:
        twin.agents.run(steps=[{"action": "teleport"}])
    assert bad.value.code == "invalid_program"
    assert bad.value.problems and bad.value.problems[0]["field"] == "action"
    with pytest.raises(NotFound) as no_skill:
        twin.skills.run("no-such-skill", {"amount": "42"})  # {"skill", "params"}, as the contract says
    assert no_skill.value.code == "skill_not_found"


def test_secrets_are_written_listed_and_deleted_and_never_read(alice: Person) -> None:
    twin = Twin(alice.base_url, alice.token)
    first = twin.secrets.put("shop_password", "hunter2", origins=["https://shop.example"])
    second = twin.secrets.put("shop_password", "hunter3")

    assert (first.name, first.kind, first.version, first.origins) == (
        "shop_password",
        "password",
        1,
        ["https://shop.example"],
    )
    assert second.version == 2
    assert "hunter" not in repr(first.raw) + repr(second.raw)
    assert [s.name for s in twin.secrets.list()] == ["shop_password"]
    twin.secrets.delete("shop_password")
    assert twin.secrets.list() == []
    with pytest.raises(NotFound):
        twin.secrets.delete("shop_password")


def test_a_retry_with_the_same_idempotency_key_creates_one_run(alice: Person, site, worker) -> None:
    twin = Twin(alice.base_url, alice.token)
    one = twin.agents.run(steps=pay(site), idempotency_key="invoice-1041")
    two = twin.agents.run(steps=pay(site), idempotency_key="invoice-1041")

    assert two.id == one.id
    twin.runs.cancel(one.id)


def test_iter_follows_the_servers_pages_through_every_run(
    alice: Person, carol: Person, site: FixtureSite
) -> None:
    steps = [{"action": "goto", "url": site.url("/pay")}]
    twin = Twin(alice.base_url, alice.token)
    started = [twin.runs.start(goal=f"Run {n}", steps=steps) for n in range(5)]
    Twin(carol.base_url, carol.token).runs.start(goal="Another tenant's", steps=steps)

    every = [run.id for run in twin.runs.iter(page_size=2)]  # three pages

    assert every == [run.id for run in reversed(started)]  # newest first, each once, only alice's
    assert [run.id for run in twin.runs.list(limit=2)] == every[:2]  # list is one page

    async def every_async() -> list[str]:
        async with AsyncTwin(alice.base_url, alice.token) as client:
            return [run.id async for run in client.runs.iter(page_size=2)]

    assert asyncio.run(every_async()) == every


def test_approvals_iter_follows_the_pages_in_the_order_asked(alice: Person) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from tests.test_inbox_pagination import pause

    now = timezone.now()
    made = [
        str(pause(alice.tenant, created=now - timedelta(minutes=5 - n), expires=now + timedelta(hours=1)).pk)
        for n in range(5)
    ]
    twin = Twin(alice.base_url, alice.token)

    assert [a.id for a in twin.approvals.iter(status="pending", order="oldest", page_size=2)] == made
    assert [a.id for a in twin.approvals.list(status="pending", limit=2)] == made[::-1][:2]

    async def every_async() -> list[str]:
        async with AsyncTwin(alice.base_url, alice.token) as client:
            return [a.id async for a in client.approvals.iter(status="pending", page_size=2)]

    assert asyncio.run(every_async()) == made[::-1]


def test_the_async_client_does_the_same(alice: Person, site, worker) -> None:
    async def flow() -> twin_client.Run:
        async with AsyncTwin(alice.base_url, alice.token) as twin:
            run = await twin.agents.run(goal="Pay, async", steps=pay(site))
            assert run.status == "awaiting_approval"
            await twin.runs.approve(run.id)
            return await twin.runs.wait(run.id, timeout=30)

    assert asyncio.run(flow()).status == "completed"


# -- webhooks.verify, checked against the reference library's signatures -----------------------------------
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789").decode()


def signed(body: bytes, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    from datetime import datetime, timezone

    moment = datetime.fromtimestamp(at if at is not None else time.time(), tz=timezone.utc)  # noqa: UP017
    signature = Webhook(secret).sign("msg_2b1cX", moment, body.decode())
    return {
        "Webhook-Id": "msg_2b1cX",
        "Webhook-Timestamp": str(int(moment.timestamp())),
        "Webhook-Signature": signature,
    }


def test_verify_accepts_what_the_reference_library_signs_and_nothing_else() -> None:
    body = b'{"type":"run.awaiting_approval","data":{"run":{"id":"r1"}}}'

    assert verify(SECRET, signed(body), body)["data"]["run"]["id"] == "r1"
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, signed(body), body.replace(b"r1", b"r2"))  # tampered
    other = "whsec_" + base64.b64encode(b"another key, 24 bytes!!!").decode()
    with pytest.raises(WebhookVerificationError):
        verify(other, signed(body), body)  # wrong secret
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, signed(body, at=time.time() - 3600), body)  # an old message replayed
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, {}, body)


def test_verify_takes_any_of_several_signatures_and_the_body_as_text() -> None:
    body = b'{"type":"run.completed"}'
    headers = {k.lower(): v for k, v in signed(body).items()}
    good = headers["webhook-signature"]
    wrong = "v1," + base64.b64encode(b"x" * 32).decode()
    unknown = "v1a," + good.removeprefix("v1,")  # another scheme's signature is not a v1 one

    headers["webhook-signature"] = f"{wrong} {unknown} {good}"
    assert verify(SECRET, headers, body.decode()) == {"type": "run.completed"}
    headers["webhook-signature"] = f"{wrong} {unknown}"
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, headers, body)
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, signed(body, at=time.time() + 3600), body)  # from the future


def test_a_webhook_made_through_the_client_delivers_what_verify_accepts(
    alice: Person, site, webhook_worker
) -> None:
    receiver = Receiver().start()
    try:
        with Twin(alice.base_url, alice.token) as twin:
            endpoint = twin.webhooks.create(receiver.url, events=["run.awaiting_approval"])
            assert endpoint.secret and endpoint.secret.startswith("whsec_")
            assert endpoint.events == ["run.awaiting_approval"]

            run = twin.agents.run(goal="Pay, told by a webhook", steps=pay(site))
            (message,) = receiver.wait_for(1)
            payload = verify(endpoint.secret, message.headers, message.body)
            assert payload["type"] == "run.awaiting_approval"
            assert payload["data"]["run"]["id"] == run.id
            with pytest.raises(WebhookVerificationError):
                verify(endpoint.secret, message.headers, message.body.replace(b"Pay $42", b"Pay $99"))
            twin.runs.cancel(run.id)
    finally:
        receiver.stop()


def test_the_client_installs_on_its_own(tmp_path: Path) -> None:
    source = tmp_path / "twin_client"
    shutil.copytree(ROOT / "twin_client", source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (target.parent / "elsewhere").mkdir()
    probe = "import twin_client, sys; print(twin_client.__file__); assert twin_client.Twin"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=target.parent / "elsewhere",
        env={**os.environ, "PYTHONPATH": str(target)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out.startswith(str(target))
    assert (target / "twin_client" / "py.typed").exists()
    (metadata,) = target.glob("twin_client-*.dist-info/METADATA")
    requires = [line for line in metadata.read_text().splitlines() if line.startswith("Requires-Dist:")]
    assert [r.split(":", 1)[1].strip() for r in requires] == ["httpx>=0.25"]  # its only dependency
