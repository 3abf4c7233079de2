"""The scrub list's parts: encodings, short values, TOTP codes, the sealed list, events and logs."""

from __future__ import annotations

import logging
from typing import Any

from approvals.models import Approval
from engine.executor import approval_scope
from engine.scrub import MASK, Scrubber, scrubber_for_run, scrubbing, seal_values, sealed_values
from runs.events import record_event
from runs.models import Run, RunEvent, RunStatus
from runs.states import run_transition
from tests.site.server import TOTP_SEED
from vault.crypto import seal_text
from vault.services import secret_put, secret_scrub_values
from vault.totp import totp


def test_a_value_is_scrubbed_as_typed_url_encoded_html_escaped_and_json_escaped() -> None:
    scrubber = Scrubber(["p@ss w&rd!"])
    text = (
        "typed p@ss w&rd! url ?v=p%40ss+w%26rd%21 path p%40ss%20w%26rd%21 html p@ss w&amp;rd! "
        'json "p@ss w&rd!"'
    )
    clean = scrubber.text(text)
    assert "p@ss" not in clean and "p%40ss" not in clean
    assert clean.count(MASK) == 5
    assert scrubber.data({"k p@ss w&rd!": ["p@ss w&rd!", 3, None]}) == {f"k {MASK}": [MASK, 3, None]}


def test_a_short_value_is_scrubbed_only_where_it_is_the_whole_text() -> None:
    scrubber = Scrubber(["42"])
    assert scrubber.text("Invoice 2024-042: 42.00") == "Invoice 2024-042: 42.00"
    assert scrubber.text(" 42 ") == MASK
    assert scrubber.short_values() == ["42"]


def test_a_totp_secret_scrubs_its_seed_and_the_codes_around_now(alice: Any) -> None:
    secret_put(tenant=alice.tenant, name="otp", value=TOTP_SEED, kind="totp")
    at = 1_800_000_000.0
    values = secret_scrub_values(tenant_id=alice.tenant.pk, name="otp", at=at)
    assert values == [
        TOTP_SEED,
        totp(TOTP_SEED, at=at - 30),
        totp(TOTP_SEED, at=at),
        totp(TOTP_SEED, at=at + 30),
    ]


def test_the_scrub_list_is_rebuilt_from_secrets_inputs_and_the_sealed_list_which_the_end_erases(
    alice: Any,
) -> None:
    secret_put(tenant=alice.tenant, name="pw", value="correct horse")
    run = Run.objects.create(
        tenant=alice.tenant,
        status=RunStatus.AWAITING_APPROVAL,
        program=[
            {"action": "fill", "selector": "#p", "value": "{{secrets.pw}}"},
            {"action": "fill", "selector": "#c", "value": "{{input}}"},
        ],
    )
    Approval.objects.create(
        tenant=alice.tenant,
        run=run,
        step_index=2,
        action="fill",
        trigger="mfa",
        kind="input",
        expires_at="2099-01-01T00:00:00Z",
        sealed_input=seal_text("55119933", scope=approval_scope(alice.tenant.pk)),
    )
    seal_values(run, ["code-of-an-earlier-execution"])
    assert "code-of-an-earlier" not in Run.objects.get(pk=run.pk).scrub_sealed  # sealed, not clear

    run.refresh_from_db()
    assert set(scrubber_for_run(run).values) == {"correct horse", "55119933", "code-of-an-earlier-execution"}

    assert run_transition(run, to=RunStatus.CANCELLED, expect=[RunStatus.AWAITING_APPROVAL])
    run.refresh_from_db()
    assert run.scrub_sealed == "" and sealed_values(run) == []


def test_events_and_log_records_made_during_an_execution_are_scrubbed(alice: Any, caplog: Any) -> None:
    run = Run.objects.create(tenant=alice.tenant, program=[{"action": "goto", "url": "https://a.example"}])
    with scrubbing(Scrubber(["hunter22"])):
        record_event(run, "step.retried_after_reload", data={"url": "https://a.example/?q=hunter22"})
        with caplog.at_level(logging.INFO):
            logging.getLogger("engine.executor").warning("could not open %s", "https://a.example/?q=hunter22")
    event = RunEvent.objects.get(run=run)
    assert event.data == {"url": f"https://a.example/?q={MASK}"}
    assert "hunter22" not in caplog.text and MASK in caplog.text
    record_event(run, "outside", data={"note": "hunter22"})  # no execution: nothing to scrub with
    assert RunEvent.objects.filter(run=run, type="outside").get().data == {"note": "hunter22"}
