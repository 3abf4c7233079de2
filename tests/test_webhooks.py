"""Webhooks: signed (checked with the standardwebhooks reference library), retried, in order,
never slowing a run, disabled after a run of failures, redelivered, and never sent to private
addresses unless allowed."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tests.conftest import WEBHOOK_WORKER_ENV, start_run, wait_run, wait_until
from tests.webhook_receiver import Receiver
from webhooks import signing, transport
from webhooks.models import Delivery, Endpoint, EndpointEvent

MAX_ATTEMPTS = int(WEBHOOK_WORKER_ENV["TWIN_WEBHOOK_MAX_ATTEMPTS"])
DISABLE_AFTER = int(WEBHOOK_WORKER_ENV["TWIN_WEBHOOK_DISABLE_AFTER"])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def pay_program(site, gate=True):
    click: dict[str, Any] = {"action": "click", "selector": "#pay"}
    if gate:
        click["gate"] = {"kind": "approval", "prompt": "Pay $42?"}
    return [
        {"action": "goto", "url": site.url("/pay")},
        click,
        {"action": "assert_text", "text": "Payment complete"},
    ]


def subscribe(persona, url, events=None):
    response = persona.post("/api/webhooks", {"url": url, **({"events": events} if events else {})})
    assert response.status_code == 201, response.content
    return response.json()


def test_a_pause_is_posted_signed_and_the_resume_and_end_follow_in_order(
    alice, site, webhook_worker, receiver
):
    endpoint = subscribe(alice, receiver.url)
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["url"] == receiver.url
    assert "secret" not in alice.get(f"/api/webhooks/{endpoint['id']}").json()

    run = start_run(alice, pay_program(site))
    assert run["status"] == "awaiting_approval"
    (paused,) = receiver.wait_for(1)

    payload = Webhook(endpoint["secret"]).verify(paused.body, paused.headers)
    assert payload["type"] == "run.awaiting_approval"
    assert payload["data"]["run"]["id"] == run["id"]
    assert payload["data"]["run"]["status"] == "awaiting_approval"
    pending = payload["data"]["run"]["pending_step"]
    assert pending["index"] == 2 and pending["prompt"] == "Pay $42?"
    assert pending["screenshot_url"].startswith("http://")
    assert paused.id.startswith("msg_")
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(paused.body.replace(b"Pay $42", b"Pay $99"), paused.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(paused.body, paused.headers)

    alice.post(f"/api/runs/{run['id']}/approve")
    assert wait_run(alice, run["id"])["status"] == "completed"
    got = receiver.wait_for(3)
    payloads = [Webhook(endpoint["secret"]).verify(r.body, r.headers) for r in got]
    assert [p["type"] for p in payloads] == ["run.awaiting_approval", "run.resumed", "run.completed"]
    assert payloads[2]["data"]["run"]["status"] == "completed"
    assert len({r.id for r in got}) == 3


def test_an_endpoint_gets_only_the_events_it_subscribed_to(alice, site, webhook_worker, receiver):
    subscribe(alice, receiver.url, events=["run.completed"])

    run = start_run(alice, pay_program(site, gate=False))

    assert run["status"] == "completed"
    (only,) = receiver.wait_for(1)
    time.sleep(0.3)
    assert len(receiver.received) == 1
    assert only.json()["type"] == "run.completed"
    assert only.json()["data"]["run"]["status"] == "completed"


def test_a_failing_receiver_gets_the_same_message_again_until_it_accepts_it(
    alice, site, webhook_worker, receiver
):
    receiver.mode, receiver.fail_first = "flaky", 2
    endpoint = subscribe(alice, receiver.url)

    run = start_run(alice, pay_program(site))
    alice.post(f"/api/runs/{run['id']}/approve")
    assert wait_run(alice, run["id"])["status"] == "completed"

    accepted = receiver.wait_for(3)
    assert [r.json()["type"] for r in accepted] == ["run.awaiting_approval", "run.resumed", "run.completed"]
    ids = [r.id for r in receiver.received]
    assert len(receiver.received) == 9  # each message: refused twice, then accepted
    assert all(ids.count(i) == 3 for i in set(ids)) and len(set(ids)) == 3
    # In order even while retrying: a message is never sent before the previous one was accepted.
    firsts = [ids.index(r.id) for r in accepted]
    lasts = [len(ids) - 1 - ids[::-1].index(r.id) for r in accepted]
    assert lasts[0] < firsts[1] and lasts[1] < firsts[2]

    # The worker records "delivered" once the receiver's answer is in: give it that moment.
    wait_until(
        lambda: (
            {d["status"] for d in alice.get(f"/api/webhooks/{endpoint['id']}/deliveries").json()}
            == {"delivered"}
        ),
        timeout=5,
        what="the deliveries recorded as delivered",
    )
    deliveries = alice.get(f"/api/webhooks/{endpoint['id']}/deliveries").json()
    log = deliveries[0]["attempt_log"]
    assert [(a["number"], a["status_code"], a["ok"]) for a in log] == [
        (1, 503, False),
        (2, 503, False),
        (3, 204, True),
    ]
    assert deliveries[0]["webhook_id"] in ids


def test_a_hanging_receiver_delays_neither_the_run_nor_another_endpoint(alice, site, webhook_worker):
    hanging, healthy = Receiver(mode="hang", hang_seconds=6).start(), Receiver().start()
    try:
        subscribe(alice, hanging.url, events=["run.completed"])
        subscribe(alice, healthy.url, events=["run.completed"])
        started = time.monotonic()

        run = start_run(alice, pay_program(site, gate=False))

        assert run["status"] == "completed"
        run_took = time.monotonic() - started
        (message,) = healthy.wait_for(1, timeout=5)
        assert message.at - started < run_took + 1.0  # not queued behind the hanging one
        assert run_took < 10
    finally:
        hanging.stop()
        healthy.stop()


def test_an_endpoint_failing_again_and_again_is_disabled_then_catches_up(
    alice, site, webhook_worker, receiver
):
    receiver.mode = "fail"
    endpoint = subscribe(alice, receiver.url, events=["run.completed"])
    first = start_run(alice, pay_program(site, gate=False), goal="first")
    wait_until(
        lambda: Delivery.objects.filter(run_id=first["id"], status="failed").exists(),
        timeout=20,
        what=f"giving up after {MAX_ATTEMPTS} attempts",
    )
    assert Endpoint.objects.get(pk=endpoint["id"]).enabled  # 4 failures: not yet
    second = start_run(alice, pay_program(site, gate=False), goal="second")
    runs = [first, second]

    wait_until(lambda: not Endpoint.objects.get(pk=endpoint["id"]).enabled, timeout=20, what="auto-disable")
    disabled = alice.get(f"/api/webhooks/{endpoint['id']}").json()
    assert disabled["enabled"] is False
    assert f"disabled after {DISABLE_AFTER} failed attempts" in disabled["disabled_reason"]
    assert EndpointEvent.objects.filter(endpoint_id=endpoint["id"], type="endpoint.disabled").count() == 1
    time.sleep(0.5)
    tries = len(receiver.received)
    assert tries == DISABLE_AFTER  # nothing is sent to a disabled endpoint

    receiver.mode = "ok"
    assert (
        alice.client.patch(f"/api/webhooks/{endpoint['id']}", {"enabled": True}, format="json").status_code
        == 200
    )
    gave_up = list(Delivery.objects.filter(endpoint_id=endpoint["id"], status="failed"))
    assert [(str(d.run_id), d.attempts) for d in gave_up] == [(first["id"], MAX_ATTEMPTS)]
    (caught_up,) = receiver.wait_for(1)  # the message still pending went out on enabling
    assert caught_up.json()["data"]["run"]["id"] == second["id"]

    again = alice.post(f"/api/webhooks/{endpoint['id']}/deliveries/{gave_up[0].pk}/redeliver")
    assert again.status_code == 202
    accepted = receiver.wait_for(2)
    assert {r.json()["data"]["run"]["id"] for r in accepted} == {r["id"] for r in runs}
    assert gave_up[0].message_id in {r.id for r in accepted}  # the same webhook-id: receivers dedupe


def test_webhook_endpoints_belong_to_one_tenant_and_operators_manage_them(alice, bob, carol, receiver):
    endpoint = subscribe(alice, receiver.url)

    assert carol.get(f"/api/webhooks/{endpoint['id']}").status_code == 404
    assert carol.get("/api/webhooks").json() == []
    assert bob.get("/api/webhooks").status_code == 200
    denied = bob.post("/api/webhooks", {"url": receiver.url})
    assert denied.status_code == 403
    bad = alice.post("/api/webhooks", {"url": receiver.url, "events": ["run.exploded"]})
    assert bad.status_code == 400
    assert "run.exploded" in bad.json()["detail"]
    assert alice.post("/api/webhooks", {"url": "ftp://example.com/x"}).json()["error"] == "invalid_url"
    # A body that is not an object is refused, not read as "change nothing".
    listed = alice.client.patch(f"/api/webhooks/{endpoint['id']}", [{"enabled": False}], format="json")
    assert (listed.status_code, listed.json()["error"]) == (400, "invalid")
    assert alice.get(f"/api/webhooks/{endpoint['id']}").json()["enabled"] is True


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ],
)
def test_private_addresses_are_refused_when_not_allowed(alice, settings, url):
    settings.TWIN_ALLOW_PRIVATE_URLS = False

    refused = alice.post("/api/webhooks", {"url": url})

    assert refused.status_code == 400, refused.content
    assert refused.json()["error"] == "invalid_url"
    assert "private or local address" in refused.json()["detail"]


def test_a_name_that_resolves_to_a_private_address_at_send_time_is_not_contacted(
    settings, monkeypatch, receiver
):
    settings.TWIN_ALLOW_PRIVATE_URLS = False
    real = socket.getaddrinfo
    port = int(receiver.url.split(":")[2].split("/")[0])

    def rebinding(host, *args, **kwargs):  # public when the endpoint was saved, loopback now
        if host == "hooks.example.com":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)

    outcome = transport.post(f"http://hooks.example.com:{port}/hook", b"{}", {"webhook-id": "msg_x"})

    assert not outcome.ok
    assert outcome.permanent
    assert "private or local address" in outcome.error
    assert receiver.received == []


def test_redirects_are_not_followed(receiver):
    receiver.mode = "redirect"

    outcome = transport.post(receiver.url, b"{}", {"webhook-id": "msg_y"})

    assert not outcome.ok
    assert outcome.status_code == 302
    assert "redirects are not followed" in outcome.error
    assert len(receiver.received) == 1
