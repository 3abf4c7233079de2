"""Webhooks in the dashboard: the secret is shown once, operators manage, viewers look, other
tenants find nothing, and Redeliver sends the same message (same webhook-id) again."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from tests.conftest import Persona, start_run, wait_until
from tests.webhook_receiver import Receiver
from webhooks.models import Delivery, Endpoint, EndpointEvent
from webhooks.services import endpoint_create, endpoint_secret

EVENTS = ["run.awaiting_approval", "run.completed"]


def browser(persona: Persona) -> Client:
    client = Client(enforce_csrf_checks=False)
    client.force_login(persona.user)
    return client


def main_of(response: Any) -> str:
    """The page's <main> (the navigation bar has its own sign-out form)."""
    html = response.content.decode()
    return html[html.index('<main id="main"') : html.index("</main>")]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def test_an_operator_adds_an_endpoint_and_sees_its_secret_once(alice: Persona) -> None:
    client = browser(alice)

    created = client.post(
        "/webhooks/",
        {"url": "https://hooks.example.com/twin", "events": EVENTS, "description": "Ops chat"},
    )

    assert created.status_code == 200
    endpoint = Endpoint.objects.get(tenant=alice.tenant)
    secret = endpoint_secret(endpoint)
    assert secret.startswith("whsec_")
    page = created.content.decode()
    assert f'<code id="webhook-secret" class="secret">{secret}</code>' in page
    assert "you won't see it again" in page
    assert "no-store" in created["Cache-Control"]
    assert endpoint.events == EVENTS and endpoint.description == "Ops chat"

    listed = client.get("/webhooks/")
    assert listed.status_code == 200
    assert secret not in listed.content.decode()
    assert "https://hooks.example.com/twin" in main_of(listed)
    assert secret not in client.get(f"/webhooks/{endpoint.pk}/").content.decode()

    rotated = client.post(f"/webhooks/{endpoint.pk}/rotate-secret")
    endpoint.refresh_from_db()
    new_secret = endpoint_secret(endpoint)
    assert new_secret != secret and new_secret in rotated.content.decode()
    assert "no-store" in rotated["Cache-Control"]
    assert new_secret not in client.get(f"/webhooks/{endpoint.pk}/").content.decode()
    assert EndpointEvent.objects.filter(endpoint=endpoint, type="endpoint.secret_rotated").count() == 1


def test_bad_input_shows_the_services_sentence_at_the_field_and_keeps_what_was_typed(
    alice: Persona, settings: Any
) -> None:
    settings.TWIN_ALLOW_PRIVATE_URLS = False
    client = browser(alice)

    refused = client.post(
        "/webhooks/",
        {"url": "http://127.0.0.1:9000/hook", "events": ["run.completed"], "description": "Local test"},
    )

    assert refused.status_code == 400
    page = main_of(refused)
    errors = re.search(r'<ul id="url-errors"[^>]*>(.*?)</ul>', page, re.S)
    assert errors and "private or local address" in errors.group(1)
    assert 'value="http://127.0.0.1:9000/hook"' in page
    assert 'value="Local test"' in page
    assert re.search(r'value="run.completed"\s+checked', page)
    assert not re.search(r'value="run.failed"\s+checked', page)
    assert "webhook-secret" not in page
    assert not Endpoint.objects.exists()

    bad = client.post("/webhooks/", {"url": "ftp://example.com/x"})
    assert bad.status_code == 400
    assert 'id="url-errors"' in main_of(bad)
    assert not Endpoint.objects.exists()


def test_operators_disable_enable_and_delete_after_confirming(alice: Persona) -> None:
    endpoint, _ = endpoint_create(tenant=alice.tenant, url="https://hooks.example.com/a")
    client = browser(alice)

    assert client.post(f"/webhooks/{endpoint.pk}/enabled", {"enabled": "0"}).status_code == 302
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_reason == "disabled by a person"
    assert "disabled by a person" in main_of(client.get("/webhooks/"))
    client.post(f"/webhooks/{endpoint.pk}/enabled", {"enabled": "1"})
    endpoint.refresh_from_db()
    assert endpoint.enabled

    confirm = client.get(f"/webhooks/{endpoint.pk}/delete")
    assert confirm.status_code == 200 and "Delete this endpoint?" in confirm.content.decode()
    assert Endpoint.objects.filter(pk=endpoint.pk).exists()  # asking deletes nothing
    assert client.post(f"/webhooks/{endpoint.pk}/delete").status_code == 302
    assert not Endpoint.objects.filter(pk=endpoint.pk).exists()


def test_a_viewer_sees_everything_read_only_and_cannot_change_anything(alice: Persona, bob: Persona) -> None:
    endpoint, _ = endpoint_create(tenant=alice.tenant, url="https://hooks.example.com/b")
    delivery = Delivery.objects.create(
        tenant=alice.tenant, endpoint=endpoint, event_type="run.completed", body="{}", status="failed"
    )
    client = browser(bob)

    listed = client.get("/webhooks/")
    detail = client.get(f"/webhooks/{endpoint.pk}/")
    assert listed.status_code == detail.status_code == 200
    assert "https://hooks.example.com/b" in main_of(listed)
    assert delivery.message_id in main_of(detail)
    for page in (main_of(listed), main_of(detail)):
        assert 'method="post"' not in page
        assert "Redeliver" not in page and "Add an endpoint" not in page

    posts = [
        ("/webhooks/", {"url": "https://hooks.example.com/c"}),
        (f"/webhooks/{endpoint.pk}/enabled", {"enabled": "0"}),
        (f"/webhooks/{endpoint.pk}/rotate-secret", {}),
        (f"/webhooks/{endpoint.pk}/delete", {}),
        (f"/webhooks/{endpoint.pk}/deliveries/{delivery.pk}/redeliver", {}),
    ]
    for path, data in posts:
        assert client.post(path, data).status_code == 403, path
    assert client.get(f"/webhooks/{endpoint.pk}/delete").status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.enabled and Endpoint.objects.filter(tenant=alice.tenant).count() == 1
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert not EndpointEvent.objects.exists()


def test_another_tenants_endpoint_is_not_found(alice: Persona, carol: Persona) -> None:
    endpoint, secret = endpoint_create(tenant=alice.tenant, url="https://hooks.example.com/acme")
    delivery = Delivery.objects.create(
        tenant=alice.tenant, endpoint=endpoint, event_type="run.completed", body="{}"
    )
    client = browser(carol)

    assert "hooks.example.com/acme" not in main_of(client.get("/webhooks/"))
    assert client.get(f"/webhooks/{endpoint.pk}/").status_code == 404
    for path in (
        f"/webhooks/{endpoint.pk}/enabled",
        f"/webhooks/{endpoint.pk}/rotate-secret",
        f"/webhooks/{endpoint.pk}/delete",
        f"/webhooks/{endpoint.pk}/deliveries/{delivery.pk}/redeliver",
    ):
        assert client.post(path, {"enabled": "0"}).status_code == 404, path
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint_secret(endpoint) == secret


def test_redeliver_sends_the_same_message_again_under_the_same_webhook_id(
    alice: Persona, site: Any, webhook_worker: Any, receiver: Receiver
) -> None:
    client = browser(alice)
    client.post("/webhooks/", {"url": receiver.url, "events": ["run.completed"]})
    endpoint = Endpoint.objects.get(tenant=alice.tenant)
    run = start_run(alice, [{"action": "goto", "url": site.url("/pay")}])
    assert run["status"] == "completed"
    (first,) = receiver.wait_for(1)
    delivery = Delivery.objects.get(endpoint=endpoint)
    assert first.id == delivery.message_id
    wait_until(
        lambda: Delivery.objects.get(pk=delivery.pk).status == "delivered", what="the delivered status"
    )
    page = main_of(client.get(f"/webhooks/{endpoint.pk}/"))
    assert delivery.message_id in page and "Redeliver" in page
    assert f'href="/runs/{run["id"]}/"' in page
    live = client.get(f"/webhooks/{endpoint.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert '<section id="deliveries"' in live and "<html" not in live
    assert 'id="endpoint-facts" class="facts" hx-swap-oob="true"' in live  # the facts come along

    again = client.post(f"/webhooks/{endpoint.pk}/deliveries/{delivery.pk}/redeliver", follow=True)

    assert again.status_code == 200
    assert "is queued again" in again.content.decode()
    second = receiver.wait_for(2)[1]
    assert second.id == first.id and second.body == first.body
    wait_until(lambda: Delivery.objects.get(pk=delivery.pk).attempt_log.count() == 2, what="two attempts")
    assert EndpointEvent.objects.filter(endpoint=endpoint, type="delivery.redelivered").count() == 1


def test_admin_shows_endpoints_without_their_secret_and_staff_only_toggle_enabled(
    alice: Persona, django_user_model: Any
) -> None:
    endpoint, secret = endpoint_create(tenant=alice.tenant, url="https://hooks.example.com/admin")
    delivery = Delivery.objects.create(
        tenant=alice.tenant, endpoint=endpoint, event_type="run.completed", body='{"type":"run.completed"}'
    )
    delivery.attempt_log.create(
        number=1, started_at=delivery.created_at, status_code=502, error="bad gateway"
    )
    admin_user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin_user)

    page = client.get(f"/admin/webhooks/endpoint/{endpoint.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert secret not in html and endpoint.sealed_secret not in html and "sealed_secret" not in html
    assert 'name="enabled"' in html and 'name="url"' not in html  # only enabled is editable

    assert client.post(f"/admin/webhooks/endpoint/{endpoint.pk}/change/", {}).status_code == 302
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.url == "https://hooks.example.com/admin"
    assert EndpointEvent.objects.filter(
        endpoint=endpoint, type="endpoint.disabled", actor=admin_user
    ).exists()

    shown = client.get(f"/admin/webhooks/delivery/{delivery.pk}/change/").content.decode()
    assert delivery.message_id in shown and "bad gateway" in shown
    assert client.get("/admin/webhooks/delivery/add/").status_code == 403
    assert client.post(f"/admin/webhooks/delivery/{delivery.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Delivery.objects.filter(pk=delivery.pk).exists()
