"""The Python client and approval rules: a pause that needs two approvals stays paused after the
first (``run.approvals`` says how many), approving twice raises ``AlreadyApproved``, and the
stored decision reads in the pause's own words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tenants.models import Role
from tests.client.test_client_skills import RUN_ID, Server, a_run, ok
from tests.dashboard.conftest import Person
from twin_client import AlreadyApproved, Approvals, Conflict, Forbidden, Twin

PENDING = {
    "index": 2,
    "action": "click",
    "trigger": "approval",
    "kind": "approval",
    "prompt": "Pay $42?",
    "options": None,
    "approval_id": "a1",
}


def paused(given: int, by: list[str], required: int = 2) -> dict[str, Any]:
    step = {
        **PENDING,
        "approvals": {"required": required, "given": given, "by": by},
        "approvers": ["dave", "erin"],
    }
    return a_run("awaiting_approval", pending_step=step)


def test_an_approve_that_is_not_the_last_returns_the_still_paused_run_with_its_counts() -> None:
    server = Server({("POST", f"/api/runs/{RUN_ID}/approve"): [ok(paused(1, ["dave"]), 202)]})

    run = server.twin().runs.approve(RUN_ID, note="ok")

    assert run.status == "awaiting_approval" and not run.finished
    assert run.approvals == Approvals(required=2, given=1, by=["dave"])
    assert run.approvals is not None and run.approvals.missing == 1
    assert run.pending_step is not None and run.pending_step.approvers == ["dave", "erin"]


def test_approving_twice_raises_already_approved_a_kind_of_conflict() -> None:
    answer = httpx.Response(
        409,
        json={
            "error": "already_approved",
            "detail": "dave already approved this pause",
            "status": "awaiting_approval",
        },
        headers={"X-Twin-Status": "awaiting_approval"},
    )
    server = Server({("POST", f"/api/runs/{RUN_ID}/approve"): [answer]})

    with pytest.raises(AlreadyApproved) as raised:
        server.twin().runs.approve(RUN_ID)

    assert isinstance(raised.value, Conflict) and raised.value.run_status == "awaiting_approval"


def test_an_older_server_reads_as_one_approval_none_given() -> None:
    server = Server({("GET", f"/api/runs/{RUN_ID}"): [ok(a_run("awaiting_approval", pending_step=PENDING))]})

    run = server.twin().runs.get(RUN_ID)

    assert run.approvals == Approvals(required=1, given=0, by=[])
    assert run.pending_step is not None and run.pending_step.approvers == "role:approver"


def test_a_finished_run_has_no_approvals_and_approvals_list_reads_the_decision() -> None:
    listed = [{"id": "a1", "run_id": RUN_ID, "status": "approved", "decision": "fail", "approvals": None}]
    server = Server({("GET", "/api/approvals"): [ok(listed)]})

    (approval,) = server.twin().approvals.list()

    assert approval.decision == "fail" and approval.approvals == Approvals()


# -- against the live server -------------------------------------------------------------------------
def test_two_approvers_through_the_client_complete_the_run(
    alice: Person, person: Callable[..., Person], site: Any, worker: Any
) -> None:
    dave = person("dave", "acme", Role.APPROVER)
    erin = person("erin", "acme", Role.APPROVER)
    frank = person("frank", "acme", Role.APPROVER)
    steps = [
        {"action": "goto", "url": site.url("/pay")},
        {
            "action": "click",
            "selector": "#pay",
            "gate": {"kind": "approval", "prompt": "Pay $42?", "required": 2, "approvers": ["dave", "erin"]},
        },
        {"action": "assert_text", "text": "Payment complete"},
    ]
    with Twin(alice.base_url, alice.token) as twin:
        run = twin.agents.run(goal="pay with two approvers", url=site.url("/pay"), steps=steps, timeout=60)
    assert run.status == "awaiting_approval" and run.approvals == Approvals(2, 0, [])

    with Twin(dave.base_url, dave.token) as as_dave:
        after_one = as_dave.runs.approve(run.id)
        assert after_one.status == "awaiting_approval"
        assert after_one.approvals == Approvals(2, 1, ["dave"])
        with pytest.raises(AlreadyApproved):
            as_dave.runs.approve(run.id)
    with Twin(frank.base_url, frank.token) as as_frank, pytest.raises(Forbidden) as refused:
        as_frank.runs.approve(run.id)
    assert refused.value.code == "not_an_approver"
    with Twin(erin.base_url, erin.token) as as_erin:
        as_erin.runs.approve(run.id)
        done = as_erin.runs.wait(run.id, timeout=60)
    assert done.status == "completed" and site.count("payment") == 1
    with Twin(alice.base_url, alice.token) as twin:
        (approval,) = twin.approvals.list()
    assert approval.decision == "approved" and approval.approvals.by == ["dave", "erin"]
