"""The audit trail: hash-chained events, ``verifyaudit``, and what a decision records.

What a person saw and decided is kept beside the run; an event edited, removed or inserted
behind the application's back is reported; a one-time code is recorded as supplied (length,
pattern matched) and its value is in no table once the step has used it.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import threading
from typing import Any
from unittest import mock

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models.deletion import ProtectedError
from django.test import Client

from approvals.models import Approval, ApprovalStatus
from approvals.services import Decision, approval_decide
from runs import events as events_mod
from runs.audit import digest_of
from runs.events import record_event
from runs.models import Run, RunEvent
from tests.conftest import in_browser_thread, start_run, wait_run
from tests.site.server import TOTP_SEED
from tests.test_input_gate import OTP_GATE, OTP_STEP, login_then_otp
from tests.test_state_machine import paused_run
from vault.totp import totp

pytestmark = pytest.mark.usefixtures("private_urls")


def verify(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verifyaudit", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def trail(run: Run) -> list[RunEvent]:
    return list(RunEvent.objects.filter(run=run).order_by("seq"))


def tamper(sql: str, params: list[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# -- the chain ------------------------------------------------------------------------------------
def test_every_event_is_numbered_and_chained_to_the_one_before_it(alice):
    run, _ = paused_run(alice.tenant, alice.user)
    approval_decide(run=run, decision=Decision(approve=True), actor=alice.user)

    events = trail(run)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].prev_hash == ""
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    assert all(digest_of(e) == e.hash for e in events)
    head = Run.objects.get(pk=run.pk)
    assert (head.audit_seq, head.audit_head) == (events[-1].seq, events[-1].hash)
    code, out = verify()
    assert code == 0, out
    assert f"{len(events)} events checked: every trail is intact" in out


def test_an_event_edited_behind_the_orms_back_is_reported(alice):
    run, _ = paused_run(alice.tenant, alice.user)
    other, _ = paused_run(alice.tenant, alice.user)
    resumed = trail(run)[3]

    tamper(f"UPDATE {RunEvent._meta.db_table} SET type = %s WHERE id = %s", ["run.completed", resumed.pk])

    code, out = verify()
    assert code == 1
    assert f"BREAK run {run.pk}, event #{resumed.seq} (id {resumed.pk}): its content was changed" in out
    assert str(other.pk) not in out
    assert "1 runs have a broken trail" in out
    assert verify("--run", str(other.pk))[0] == 0


def test_a_changed_payload_or_actor_is_reported_too(alice, bob):
    run, _ = paused_run(alice.tenant, alice.user)
    first = trail(run)[0]
    tamper(f"UPDATE {RunEvent._meta.db_table} SET actor_id = %s WHERE id = %s", [bob.user.pk, first.pk])

    code, out = verify("--tenant", alice.tenant.slug)

    assert code == 1
    assert f"event #{first.seq} (id {first.pk}): its content was changed" in out


def test_a_removed_event_is_reported_in_the_middle_and_at_the_end(alice):
    run, _ = paused_run(alice.tenant, alice.user)
    events = trail(run)
    middle, last = events[2], events[-1]

    tamper(f"DELETE FROM {RunEvent._meta.db_table} WHERE id = %s", [middle.pk])
    code, out = verify()
    assert code == 1
    assert f"event #{middle.seq + 1} (id {events[3].pk}): events #{middle.seq} are missing" in out

    tamper(f"DELETE FROM {RunEvent._meta.db_table} WHERE id = %s", [last.pk])
    code, out = verify()
    assert f"the trail ends at #{last.seq - 1} but the run's head says #{last.seq}" in out


def test_a_forged_event_inserted_with_a_fresh_hash_still_breaks_the_chain(alice):
    run, _ = paused_run(alice.tenant, alice.user)
    events = trail(run)
    # Someone rewrites an event and recomputes its own hash: the next event no longer links to it.
    forged = events[1]
    forged.data = {**forged.data, "to": "completed"}
    new_hash = digest_of(forged)
    tamper(
        f"UPDATE {RunEvent._meta.db_table} SET data = %s, hash = %s WHERE id = %s",
        ['{"from": "queued", "to": "completed"}', new_hash, forged.pk],
    )

    code, out = verify()

    assert code == 1
    assert f"event #{events[2].seq} (id {events[2].pk}): does not link to the event before it" in out


def test_the_orm_cannot_update_or_delete_events_nor_delete_what_they_belong_to(alice):
    run, _ = paused_run(alice.tenant, alice.user)
    count = RunEvent.objects.filter(run=run).count()

    with pytest.raises(RuntimeError, match="append-only"):
        RunEvent.objects.filter(run=run).update(type="run.completed")
    with pytest.raises(RuntimeError, match="append-only"):
        RunEvent.objects.filter(run=run).delete()
    with pytest.raises(ProtectedError):
        Run.objects.get(pk=run.pk).delete()
    with pytest.raises(ProtectedError):
        alice.user.delete()  # an actor of the trail: deactivate instead

    assert RunEvent.objects.filter(run=run).count() == count
    assert verify()[0] == 0


def test_writers_racing_on_one_run_make_one_unbroken_chain(transactional_db, alice):
    with mock.patch("runs.services._enqueue_start"):  # committed here: keep any worker off this run
        run, _ = paused_run(alice.tenant, alice.user)
    before = Run.objects.get(pk=run.pk).audit_seq
    writers, each = 6, 5
    barrier = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            for i in range(each):
                with transaction.atomic():
                    record_event(run, "test.note", data={"writer": n, "i": i})
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    events = trail(run)
    assert [e.seq for e in events] == list(range(1, before + writers * each + 1))
    assert verify("--run", str(run.pk))[0] == 0


# -- what a decision records ----------------------------------------------------------------------
def test_an_api_decision_records_who_with_which_token_from_where_and_what_they_saw(alice):
    run, approval = paused_run(alice.tenant, alice.user)
    Approval.objects.filter(pk=approval.pk).update(
        page_text="Pay $42 to ACME?\nConfirm", screenshot_sha256="ab" * 32
    )

    response = alice.post(
        f"/api/runs/{run.pk}/approve",
        {"note": "checked the amount"},
        HTTP_USER_AGENT="billing-bot/2.1",
        REMOTE_ADDR="203.0.113.7",
    )

    assert response.status_code == 202, response.content
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    assert approval.decided_by == alice.user
    assert approval.channel == "api"
    assert approval.token_name == "alice@acme"
    assert approval.decided_ip == "203.0.113.7"
    assert approval.decided_user_agent == "billing-bot/2.1"
    assert approval.note == "checked the amount"
    decided = RunEvent.objects.get(run=run, type="approval.decided")
    assert decided.actor == alice.user
    assert decided.data["ip"] == "203.0.113.7"
    assert decided.data["user_agent"] == "billing-bot/2.1"
    assert decided.data["token_name"] == "alice@acme"
    assert decided.data["note"] == "checked the amount"
    assert decided.data["seen"] == {
        "step": "2 of 3",
        "prompt": "Pay $42?",
        "options": None,
        "page_url": "https://shop.example/pay",
        "page_title": "Pay",
        "page_text_sha256": hashlib.sha256(b"Pay $42 to ACME?\nConfirm").hexdigest(),
        "screenshot_sha256": "ab" * 32,
    }


def test_the_address_and_user_agent_stay_out_of_live_messages(alice, django_capture_on_commit_callbacks):
    run, _ = paused_run(alice.tenant, alice.user)
    with (
        mock.patch.object(events_mod, "fan_out") as fan_out,
        django_capture_on_commit_callbacks(execute=True),
    ):
        record_event(run, "test.private", data={"ip": "203.0.113.7", "user_agent": "x", "ok": 1})

    (_run_id, _tenant_id, message), _ = fan_out.call_args
    assert message["data"] == {"ok": 1}
    assert RunEvent.objects.get(run=run, type="test.private").data["ip"] == "203.0.113.7"


@pytest.mark.parametrize("took_over", [True, False])
def test_deciding_after_taking_the_page_over_is_recorded_as_a_take_over(alice, took_over):
    run, approval = paused_run(alice.tenant, alice.user)
    if took_over:
        with transaction.atomic():
            record_event(run, "takeover.started", step_index=2, actor=alice.user)
    browser = Client(HTTP_USER_AGENT="Mozilla/5.0 (dashboard test)")
    browser.force_login(alice.user)

    response = browser.post(f"/inbox/{approval.pk}/decide", {"action": "reject", "note": "wrong payee"})

    assert response.status_code == 302
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.REJECTED
    assert approval.channel == ("takeover" if took_over else "dashboard")
    assert approval.note == "wrong payee"
    assert approval.decided_ip == "127.0.0.1"
    assert approval.decided_user_agent == "Mozilla/5.0 (dashboard test)"
    assert approval.token_name == ""


# -- a one-time code, end to end --------------------------------------------------------------------
def every_stored_value() -> str:
    """Every row of every table, as text (to search for a value that must not be there)."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                chunks.append(
                    " ".join(
                        bytes(v).decode("latin-1") if isinstance(v, bytes | memoryview) else str(v)
                        for v in row
                    )
                )
    return "\n".join(chunks)


def test_a_one_time_code_is_recorded_as_supplied_and_its_value_is_in_no_table(alice, site, worker):
    run = start_run(alice, login_then_otp(site, "{{input}}", gate=OTP_GATE))
    assert run["status"] == "awaiting_approval", run
    code = totp(TOTP_SEED)

    approved = alice.post(
        f"/api/runs/{run['id']}/approve",
        {"input": code},
        HTTP_USER_AGENT="otp-relay/1",
        REMOTE_ADDR="198.51.100.4",
    )
    assert approved.status_code == 202, approved.content
    assert wait_run(alice, run["id"])["status"] == "completed"

    approval = Approval.objects.get(run_id=run["id"])
    assert approval.step_index == OTP_STEP
    assert (approval.input_supplied, approval.input_length, approval.input_matched_pattern) == (True, 6, True)
    assert approval.sealed_input == ""
    assert approval.decided_ip == "198.51.100.4"
    assert approval.decided_user_agent == "otp-relay/1"
    assert approval.page_text.startswith("Two-step verification\nCode from your authenticator app")
    with default_storage.open(approval.screenshot, "rb") as shot:
        assert approval.screenshot_sha256 == hashlib.sha256(shot.read()).hexdigest()
    decided = RunEvent.objects.get(run_id=run["id"], type="approval.decided")
    assert decided.data["input"] == {"supplied": True, "length": 6, "matched_pattern": True}
    assert decided.data["seen"]["screenshot_sha256"] == approval.screenshot_sha256
    assert decided.data["seen"]["step"] == f"{OTP_STEP} of {len(login_then_otp(site, '{{input}}'))}"

    assert code not in every_stored_value()
    assert verify("--run", run["id"])[0] == 0


def test_a_secret_typed_into_the_page_shows_as_dots_on_screen(alice, site, worker):
    assert alice.post("/api/secrets", {"name": "shop_pin", "value": "4711-2842"}).status_code == 201
    steps = login_then_otp(site, "{{secrets.shop_pin}}")[:OTP_STEP]
    steps.append({"action": "click", "selector": "#verify", "gate": {"kind": "approval", "prompt": "Send?"}})
    run = start_run(alice, steps)
    assert run["status"] == "awaiting_approval", run
    assert run["pending_step"]["index"] == OTP_STEP + 1
    target_id = Run.objects.get(pk=run["id"]).target_id

    def field() -> tuple[str, str]:
        from engine.browser import session

        host = session()
        host.check()  # an earlier test may have restarted the host browser
        page = host.find_page(target_id)
        assert page is not None
        return page.evaluate(
            "() => { const el = document.querySelector('#otp');"
            " return [el.value, getComputedStyle(el).webkitTextSecurity]; }"
        )

    value, security = in_browser_thread(field)
    assert value == "4711-2842"  # the page has the secret, to submit it
    assert security == "disc"  # but screenshots and the video show dots
    alice.post(f"/api/runs/{run['id']}/cancel")
