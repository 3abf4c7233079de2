"""Retries with an Idempotency-Key create nothing new; guessing tokens or one-time codes is limited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from approvals.models import Approval, ApprovalStatus
from runs.models import Run, RunEvent
from tests.test_state_machine import paused_run

pytestmark = pytest.mark.usefixtures("private_urls")

PROGRAM = {"goal": "pay", "steps": [{"action": "goto", "url": "https://shop.example/"}]}


def post(persona, path, body, key, **extra):
    return persona.post(path, body, HTTP_IDEMPOTENCY_KEY=key, **extra)


# -- Idempotency-Key ---------------------------------------------------------------------------------
def test_a_retried_run_creation_returns_the_first_run_and_creates_nothing(alice):
    first = post(alice, "/api/runs", PROGRAM, "order-1041")
    again = post(alice, "/api/runs", PROGRAM, "order-1041")

    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert again["X-Twin-Status"] == "queued"
    assert Run.objects.filter(tenant=alice.tenant).count() == 1
    assert post(alice, "/api/runs", PROGRAM, "order-1042").json()["id"] != first.json()["id"]


def test_the_same_key_for_a_different_request_is_refused(alice):
    post(alice, "/api/runs", PROGRAM, "k-1")

    reused = post(alice, "/api/runs", {**PROGRAM, "goal": "something else"}, "k-1")

    assert reused.status_code == 422
    assert reused.json()["error"] == "idempotency_key_reused"
    assert Run.objects.filter(tenant=alice.tenant).count() == 1


def test_a_refused_request_frees_its_key(alice):
    bad = post(alice, "/api/runs", {"steps": [{"action": "teleport"}]}, "k-2")
    assert bad.status_code == 400

    good = post(alice, "/api/runs", {"steps": [{"action": "teleport"}]}, "k-2")

    assert good.status_code == 400  # run again (nothing was stored), not replayed
    assert "Idempotent-Replayed" not in good


def test_keys_belong_to_one_tenant(alice, carol):
    mine = post(alice, "/api/runs", PROGRAM, "shared-key")
    theirs = post(carol, "/api/runs", PROGRAM, "shared-key")

    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine.json()["id"]


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "bad\x07key"])
def test_a_malformed_key_is_a_clear_error(alice, key):
    response = post(alice, "/api/runs", PROGRAM, key)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_idempotency_key"
    assert not Run.objects.filter(tenant=alice.tenant).exists()


def test_a_retried_approve_answers_like_the_first_and_resumes_once(alice):
    run, _ = paused_run(alice.tenant, alice.user)

    first = post(alice, f"/api/runs/{run.pk}/approve", {"note": "ok"}, "approve-7")
    again = post(alice, f"/api/runs/{run.pk}/approve", {"note": "ok"}, "approve-7")
    other = post(alice, f"/api/runs/{run.pk}/approve", {"note": "ok"}, "approve-8")

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert other.status_code == 409  # a new key is a new decision: the pause is decided
    assert RunEvent.objects.filter(run=run, type="approval.decided").count() == 1


def test_a_retried_reject_answers_like_the_first(alice):
    run, _ = paused_run(alice.tenant, alice.user)

    first = post(alice, f"/api/runs/{run.pk}/reject", {"reason": "no"}, "reject-1")
    again = post(alice, f"/api/runs/{run.pk}/reject", {"reason": "no"}, "reject-1")

    assert first.status_code == again.status_code == 200
    assert again.json()["status"] == "rejected"
    assert RunEvent.objects.filter(run=run, type="run.rejected").count() == 1


def test_a_retried_cancel_answers_like_the_first_instead_of_a_conflict(alice):
    run, _ = paused_run(alice.tenant, alice.user)

    first = post(alice, f"/api/runs/{run.pk}/cancel", {}, "cancel-1")
    again = post(alice, f"/api/runs/{run.pk}/cancel", {}, "cancel-1")
    fresh = post(alice, f"/api/runs/{run.pk}/cancel", {}, "cancel-2")

    assert first.status_code == again.status_code == 200
    assert again.json()["status"] == "cancelled" and again["Idempotent-Replayed"] == "true"
    assert fresh.status_code == 409  # a new request to cancel a cancelled run
    assert RunEvent.objects.filter(run=run, type="run.cancelled").count() == 1


# -- token guessing ------------------------------------------------------------------------------------
def test_too_many_bad_tokens_from_one_address_are_refused_for_a_while(alice, settings):
    settings.TWIN_AUTH_FAILURE_LIMIT = 3
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION="Bearer twin_guess")

    codes = [guesser.get("/api/runs", REMOTE_ADDR="198.51.100.9").status_code for _ in range(3)]
    limited = guesser.get("/api/runs", REMOTE_ADDR="198.51.100.9")
    even_a_good_token = alice.client.get("/api/runs", REMOTE_ADDR="198.51.100.9")
    elsewhere = alice.client.get("/api/runs", REMOTE_ADDR="198.51.100.10")

    assert codes == [401, 401, 401]
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= settings.TWIN_AUTH_FAILURE_WINDOW
    assert even_a_good_token.status_code == 429
    assert elsewhere.status_code == 200


def test_behind_a_trusted_proxy_token_guessing_is_counted_per_client_not_per_proxy(alice, settings):
    settings.TWIN_AUTH_FAILURE_LIMIT = 3
    settings.TWIN_TRUST_X_FORWARDED_FOR = True
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION="Bearer twin_guess")
    proxy = "10.0.0.2"

    for _ in range(3):
        guesser.get("/api/runs", HTTP_X_FORWARDED_FOR="198.51.100.20", REMOTE_ADDR=proxy)
    limited = guesser.get("/api/runs", HTTP_X_FORWARDED_FOR="198.51.100.20, 10.0.0.1", REMOTE_ADDR=proxy)
    someone_else = alice.client.get("/api/runs", HTTP_X_FORWARDED_FOR="198.51.100.21", REMOTE_ADDR=proxy)

    assert limited.status_code == 429
    assert someone_else.status_code == 200  # the proxy's other clients are not locked out


# -- one-time code guessing ---------------------------------------------------------------------------
def test_wrong_one_time_codes_lock_the_pause_for_a_while_and_the_trail_says_so(alice, settings):
    settings.TWIN_INPUT_ATTEMPTS, settings.TWIN_INPUT_LOCK_SECONDS = 3, 120
    run, approval = paused_run(alice.tenant, alice.user, kind="input")

    wrong = [alice.post(f"/api/runs/{run.pk}/approve", {"input": code}) for code in ["1", "22", "333"]]
    locked = alice.post(f"/api/runs/{run.pk}/approve", {"input": "123456"})

    assert [r.status_code for r in wrong] == [400, 400, 400]
    assert "takes none for 120 s" in wrong[-1].json()["detail"]
    assert locked.status_code == 429
    assert locked.json()["error"] == "pause_locked"
    assert 100 <= int(locked["Retry-After"]) <= 121
    assert Run.objects.get(pk=run.pk).status == "awaiting_approval"
    types = list(RunEvent.objects.filter(run=run).values_list("type", flat=True))
    assert types.count("approval.input_refused") == 3
    assert types.count("approval.locked") == 1

    Approval.objects.filter(pk=approval.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    assert alice.post(f"/api/runs/{run.pk}/approve", {"input": "123456"}).status_code == 202
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED


def test_a_locked_pause_can_still_be_rejected(alice, settings):
    settings.TWIN_INPUT_ATTEMPTS = 1
    run, _ = paused_run(alice.tenant, alice.user, kind="input")
    alice.post(f"/api/runs/{run.pk}/approve", {"input": "nope"})

    rejected = alice.post(f"/api/runs/{run.pk}/reject", {"reason": "someone is guessing"})

    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
