"""Four eyes by default: in a tenant with two or more approvers, whoever started a run cannot
decide its pauses, unless the tenant turned four eyes off explicitly; a tenant with one
approver (such as the demo) keeps working.

Issue 9, "must hold" 7: four eyes defaulted to off for every tenant.
"""

from __future__ import annotations

import pytest
from django.test import Client

from approvals.models import Approval, ApprovalStatus
from runs.models import RunStatus
from tenants.models import FourEyes, Role, Tenant
from tests.conftest import Persona, start_run, wait_run
from tests.test_approval_flow import pay_program
from tests.test_state_machine import paused_run

pytestmark = pytest.mark.usefixtures("private_urls")


def set_four_eyes(tenant: Tenant, value: str) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(four_eyes=value)


def test_with_two_approvers_the_starter_cannot_decide_and_the_other_approver_can(alice, site, worker):
    dave = Persona("dave", "acme", Role.APPROVER)
    assert Tenant.objects.get(pk=alice.tenant.pk).four_eyes == FourEyes.AUTO  # nobody chose it
    run = start_run(alice, pay_program(site))
    assert run["status"] == "awaiting_approval", run

    for verb, body in (("approve", {}), ("reject", {"reason": "mine"})):
        refused = alice.post(f"/api/runs/{run['id']}/{verb}", body)
        assert refused.status_code == 403, refused.content
        assert refused.json()["error"] == "four_eyes"
    assert Approval.objects.get(run_id=run["id"]).status == ApprovalStatus.PENDING
    assert site.count("payment") == 0

    approved = dave.post(f"/api/runs/{run['id']}/approve")
    assert approved.status_code == 202, approved.content
    assert wait_run(alice, run["id"])["status"] == "completed"
    assert site.count("payment") == 1
    assert Approval.objects.get(run_id=run["id"]).decided_by == dave.user


def test_with_one_approver_the_starter_decides_as_before(alice, bob, site, worker):
    Persona("olga", "acme", Role.OPERATOR)  # viewers and operators decide nothing: they do not count
    run = start_run(alice, pay_program(site))
    assert run["status"] == "awaiting_approval", run

    approved = alice.post(f"/api/runs/{run['id']}/approve")

    assert approved.status_code == 202, approved.content
    assert wait_run(alice, run["id"])["status"] == "completed"
    assert site.count("payment") == 1


def test_a_tenant_that_turned_four_eyes_off_lets_the_starter_decide(alice):
    Persona("dave", "acme", Role.APPROVER)
    set_four_eyes(alice.tenant, FourEyes.OFF)
    run, _ = paused_run(alice.tenant, alice.user)

    approved = alice.post(f"/api/runs/{run.pk}/approve")

    assert approved.status_code == 202, approved.content
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_a_deactivated_second_approver_does_not_count_and_on_means_on(alice):
    dave = Persona("dave", "acme", Role.APPROVER)
    dave.user.is_active = False
    dave.user.save(update_fields=["is_active"])
    run, _ = paused_run(alice.tenant, alice.user)
    assert not Tenant.objects.get(pk=alice.tenant.pk).four_eyes_applies()

    set_four_eyes(alice.tenant, FourEyes.ON)  # explicitly on: even with one active approver
    refused = alice.post(f"/api/runs/{run.pk}/approve")
    assert refused.status_code == 403, refused.content
    assert refused.json()["error"] == "four_eyes"


def test_the_admin_shows_whether_four_eyes_applies_now(alice, admin_user):
    browser = Client()
    browser.force_login(admin_user)

    assert "Off (automatic: 1 approver)" in browser.get("/admin/tenants/tenant/").content.decode()

    Persona("dave", "acme", Role.APPROVER)
    form = browser.get(f"/admin/tenants/tenant/{alice.tenant.pk}/change/").content.decode()
    assert "On (automatic: 2 approvers)" in form

    set_four_eyes(alice.tenant, FourEyes.OFF)
    listing = browser.get("/admin/tenants/tenant/").content.decode()
    assert "Off (set explicitly; 2 approvers)" in listing
