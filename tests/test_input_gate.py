"""Input gates (a person types a one-time code) and TOTP secrets (the vault computes it)."""

from __future__ import annotations

import json

from approvals.models import Approval
from runs.models import RunEvent
from tests.conftest import event_types, start_run, wait_run
from tests.site.server import TOTP_SEED
from vault.totp import totp

OTP_STEP = 7


def login_then_otp(site, otp_value, *, gate=None):
    otp = {"action": "fill", "selector": "#otp", "value": otp_value}
    if gate is not None:
        otp["gate"] = gate
    return [
        {"action": "goto", "url": site.url("/login")},
        {"action": "fill", "selector": "#user", "value": "alice"},
        {"action": "fill", "selector": "#password", "value": "wonderland"},
        {"action": "click", "selector": "#login"},
        {"action": "wait_for", "selector": "#welcome"},
        {"action": "goto", "url": site.url("/otp")},
        otp,
        {"action": "click", "selector": "#verify"},
        {"action": "assert_text", "text": "Confirm payment"},
    ]


OTP_GATE = {"kind": "input", "prompt": "One-time code", "pattern": "^[0-9]{6}$"}


def stored_text(rows):
    """Every text-like value of the rows, as one string to search (timestamps left out)."""
    return json.dumps([{k: v for k, v in row.items() if isinstance(v, str | list | dict)} for row in rows])


def test_one_time_code_typed_by_a_person_signs_in_and_is_then_forgotten(alice, site, worker):
    run = start_run(alice, login_then_otp(site, "{{input}}", gate=OTP_GATE))

    assert run["status"] == "awaiting_approval", run
    pending = run["pending_step"]
    assert pending["index"] == OTP_STEP
    assert pending["trigger"] == "mfa"
    assert pending["kind"] == "input"
    assert pending["prompt"] == "One-time code"
    assert pending["page_url"] == site.url("/otp")
    assert site.count("login") == 1
    assert site.count("otp_ok") + site.count("otp_bad") == 0

    bad = alice.post(f"/api/runs/{run['id']}/approve", {"input": "12ab"})

    assert bad.status_code == 400
    assert bad.json()["error"] == "input_invalid"
    assert bad["X-Twin-Status"] == bad.json()["status"] == "awaiting_approval"  # the run still waits
    still = wait_run(alice, run["id"], wait=0)
    assert still["status"] == "awaiting_approval"
    assert still["pending_step"]["index"] == OTP_STEP
    assert still["pending_step"]["approval_id"] == pending["approval_id"]
    assert alice.post(f"/api/runs/{run['id']}/approve", {}).status_code == 400

    code = totp(TOTP_SEED)
    approved = alice.post(f"/api/runs/{run['id']}/approve", {"input": code})
    assert approved.status_code == 202, approved.content

    done = wait_run(alice, run["id"])
    assert done["status"] == "completed", done
    assert done["resumed_from"] == OTP_STEP
    assert site.count("otp_ok") == 1
    assert site.count("otp_bad") == 0

    approvals = list(Approval.objects.filter(run_id=run["id"]).values())
    assert len(approvals) == 1
    assert approvals[0]["input_supplied"] is True
    assert approvals[0]["sealed_input"] == ""
    assert code not in stored_text(approvals)
    assert code not in stored_text(RunEvent.objects.filter(run_id=run["id"]).values())
    assert code not in alice.get("/api/approvals").content.decode()
    assert code not in alice.get(f"/api/runs/{run['id']}").content.decode()


def test_a_totp_secret_fills_the_code_without_pausing(alice, site, worker):
    created = alice.post("/api/secrets", {"name": "shop_otp", "value": TOTP_SEED, "kind": "totp"})
    assert created.status_code == 201, created.content
    assert created.json()["name"] == "shop_otp"
    assert created.json()["kind"] == "totp"
    assert "value" not in created.json()
    assert TOTP_SEED not in created.content.decode()

    run = start_run(alice, login_then_otp(site, "{{secrets.shop_otp}}"))

    assert run["status"] == "completed", run
    assert run["pending_step"] is None
    assert site.count("otp_ok") == 1
    assert site.count("otp_bad") == 0
    assert "run.awaiting_approval" not in event_types(run["id"])
    assert not Approval.objects.filter(run_id=run["id"]).exists()

    listed = alice.get("/api/secrets")
    assert listed.status_code == 200
    assert [s["name"] for s in listed.json()] == ["shop_otp"]
    assert TOTP_SEED not in listed.content.decode()
    assert all("value" not in s for s in listed.json())
    assert TOTP_SEED not in stored_text(RunEvent.objects.filter(run_id=run["id"]).values())
