"""Webhook events of skills: ``step.healed`` (a replay saved by a fallback locator) and
``skill.compiled`` (a run compiled into a version), signed, with the event's own data, only
to the endpoints that want them."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from standardwebhooks import Webhook

from runs.events import record_event
from runs.models import Run
from runs.services import run_create
from tests.conftest import Persona, start_run
from tests.webhook_receiver import Receiver
from webhooks.models import Delivery

pytestmark = pytest.mark.usefixtures("private_urls")  # the receiver listens on 127.0.0.1

STEPS = [{"action": "goto", "url": "http://127.0.0.1:9/pay"}]
HEALED = {"by": "role=button[name='Pay']", "primary": "[data-testid=pay]", "label": "Pay the invoice"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def subscribe(persona: Persona, url: str, events: list[str] | None = None) -> dict[str, Any]:
    response = persona.post("/api/webhooks", {"url": url, **({"events": events} if events else {})})
    assert response.status_code == 201, response.content
    return dict(response.json())


def compiled_data(skill_id: str) -> dict[str, Any]:
    return {"skill": "pay-invoice", "version": 2, "skill_id": skill_id}


def test_an_endpoint_may_subscribe_to_the_skill_events(alice):
    endpoint = subscribe(alice, "http://127.0.0.1:9/hook", ["skill.compiled", "step.healed"])
    assert endpoint["events"] == ["step.healed", "skill.compiled"]

    unknown = alice.post("/api/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["skill.deleted"]})
    assert unknown.status_code == 400


def test_the_skill_events_carry_their_own_data_beside_the_run(alice):
    subscribe(alice, "http://127.0.0.1:9/hook", ["step.healed", "skill.compiled"])
    run = run_create(tenant=alice.tenant, created_by=alice.user, goal="g", url="", steps=STEPS)
    skill_id = str(uuid.uuid4())

    with transaction.atomic():
        record_event(run, "step.healed", step_index=2, data={**HEALED, "ip": "203.0.113.9"})
        record_event(run, "skill.compiled", actor=alice.user, data=compiled_data(skill_id))

    healed, compiled = (d.body for d in Delivery.objects.filter(run=run).order_by("event_id"))
    healed_msg, compiled_msg = json.loads(healed), json.loads(compiled)
    assert healed_msg["type"] == "step.healed"
    assert healed_msg["data"]["event"] == HEALED  # the audit-only client address stays out
    assert healed_msg["data"]["run"]["id"] == str(run.pk)
    assert "skill" not in healed_msg["data"]
    assert compiled_msg["data"]["skill"] == {"id": skill_id, "slug": "pay-invoice", "version": 2}
    assert compiled_msg["data"]["event"] == compiled_data(skill_id)


def test_the_other_events_keep_their_payload(alice):
    subscribe(alice, "http://127.0.0.1:9/hook")

    run = run_create(tenant=alice.tenant, created_by=alice.user, goal="g", url="", steps=STEPS)
    with transaction.atomic():
        record_event(run, "run.cancelled", data={"from": "queued", "to": "cancelled"})

    (message,) = Delivery.objects.filter(run=run, event_type="run.cancelled")
    assert set(json.loads(message.body)["data"]) == {"run"}


def pay_program(site):
    return [
        {"action": "goto", "url": site.url("/pay")},
        {"action": "click", "selector": "#pay"},
        {"action": "assert_text", "text": "Payment complete"},
    ]


def test_skill_events_are_posted_signed_to_subscribers_and_not_to_others(
    alice, site, webhook_worker, receiver
):
    skills = Receiver().start()
    try:
        only_completed = subscribe(alice, receiver.url, ["run.completed"])
        both = subscribe(alice, skills.url, ["step.healed", "skill.compiled"])
        run = start_run(alice, pay_program(site), record_video=False)
        assert run["status"] == "completed"
        source = Run.objects.get(pk=run["id"])
        skill_id = str(uuid.uuid4())

        with transaction.atomic():
            record_event(source, "skill.compiled", actor=alice.user, data=compiled_data(skill_id))
        with transaction.atomic():
            record_event(source, "step.healed", step_index=2, data=HEALED)

        got = skills.wait_for(2)
        payloads = [Webhook(both["secret"]).verify(r.body, r.headers) for r in got]
        assert [p["type"] for p in payloads] == ["skill.compiled", "step.healed"]
        compiled, healed = payloads
        assert compiled["data"]["skill"] == {"id": skill_id, "slug": "pay-invoice", "version": 2}
        assert compiled["data"]["event"]["skill_id"] == skill_id
        assert compiled["data"]["run"]["id"] == run["id"]
        assert compiled["data"]["run"]["status"] == "completed"
        assert healed["data"]["event"]["by"] == HEALED["by"]
        assert healed["data"]["event"]["primary"] == HEALED["primary"]
        assert healed["data"]["event"]["label"] == HEALED["label"]

        (done,) = receiver.wait_for(1)
        time.sleep(0.5)  # time enough for a message that should not come
        assert [r.json()["type"] for r in receiver.received] == ["run.completed"]
        Webhook(only_completed["secret"]).verify(done.body, done.headers)
        assert len(skills.received) == 2
    finally:
        skills.stop()
