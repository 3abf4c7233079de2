"""Django admin as the audit trail: auditors read their tenants' runs, pauses and events; nobody
changes or deletes anything there; decisions export as CSV."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from approvals.models import Approval
from approvals.services import Decision, approval_decide
from runs.media import video_storage
from runs.models import Recording, RecordingStatus, Run, RunEvent, Step
from tenants.models import Role
from tenants.services import tenant_create
from tests.test_api_video import tiny_webm
from tests.test_state_machine import paused_run

pytestmark = pytest.mark.usefixtures("private_urls")
PASSWORD = "correct horse battery staple"


def auditor(username: str, tenant: str) -> Client:
    tenant_create(slug=tenant, owner_username=username, password=PASSWORD, role=Role.AUDITOR)
    client = Client()
    response = client.post("/admin/login/", {"username": username, "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302, response.content.decode()[:2000]
    return client


@pytest.fixture
def acme_trail(alice: Any, carol: Any) -> Iterator[dict[str, Any]]:
    """A decided pause in acme (with a screenshot) and a pending one in globex."""
    run, approval = paused_run(alice.tenant, alice.user)
    shot = default_storage.save(f"screenshots/{run.pk}/{approval.pk}.jpg", ContentFile(b"\xff\xd8acme-shot"))
    Approval.objects.filter(pk=approval.pk).update(
        screenshot=shot, page_text="Pay $42 to ACME Corp\nConfirm", screenshot_sha256="cd" * 32
    )
    approval_decide(
        run=run, decision=Decision(approve=False, note='=HYPERLINK("http://evil")'), actor=alice.user
    )
    other, other_approval = paused_run(carol.tenant, carol.user)
    yield {"run": run, "approval": approval, "other": other, "other_approval": other_approval}
    default_storage.delete(shot)


def test_an_auditor_signs_in_to_the_admin_and_sees_only_the_trail(acme_trail):
    ada = auditor("ada", "acme")

    index = ada.get("/admin/").content.decode()

    for name in ("Runs", "Approvals", "Run events", "Steps", "Skills", "Skill versions"):
        assert name in index
    assert "Api tokens" not in index and "Tenants" not in index and "Users" not in index
    models = set(re.findall(r'href="/admin/(\w+/\w+)/"', index))
    assert models == {
        "runs/run",
        "runs/step",
        "runs/runevent",
        "approvals/approval",
        "skills/skill",
        "skills/skillversion",
    }
    assert ada.get("/admin/tenants/tenant/").status_code == 403
    assert ada.get("/admin/auth/user/").status_code == 403


def test_the_trail_pages_render_for_an_auditor_with_what_was_seen_and_decided(acme_trail):
    ada = auditor("ada", "acme")
    run, approval = acme_trail["run"], acme_trail["approval"]
    event = RunEvent.objects.filter(run=run).first()
    assert event is not None
    step = Step.objects.filter(run=run).first()
    assert step is not None

    pages = {
        "runs": ada.get("/admin/runs/run/"),
        "run": ada.get(f"/admin/runs/run/{run.pk}/change/"),
        "approvals": ada.get("/admin/approvals/approval/?trigger__exact=approval&status__exact=rejected"),
        "approval": ada.get(f"/admin/approvals/approval/{approval.pk}/change/"),
        "events": ada.get(f"/admin/runs/runevent/?run__id__exact={run.pk}"),
        "event": ada.get(f"/admin/runs/runevent/{event.pk}/change/"),
        "steps": ada.get("/admin/runs/step/"),
        "step": ada.get(f"/admin/runs/step/{step.pk}/change/"),
        "search": ada.get("/admin/runs/run/?q=alice"),
        "export": ada.get("/admin/approvals/approval/export/"),
    }

    assert {name: r.status_code for name, r in pages.items()} == dict.fromkeys(pages, 200)
    shown = pages["approval"].content.decode()
    assert "Pay $42 to ACME Corp" in shown
    assert f"/admin/approvals/approval/{approval.pk}/screenshot/" in shown
    assert (
        "2 of 3" in shown and "alice" in shown and "Export decisions" in pages["approvals"].content.decode()
    )
    assert "sealed_input" not in shown and "checkpoint" not in pages["run"].content.decode()
    assert str(run.pk) in pages["search"].content.decode()  # found by the approver's name
    run_page = pages["run"].content.decode()
    assert f"/admin/runs/runevent/?run__id__exact={run.pk}" in run_page
    assert f"/admin/approvals/approval/{approval.pk}/change/" in run_page  # its pauses, linked
    assert f'<img src="/admin/approvals/approval/{approval.pk}/screenshot/"' in run_page  # thumbnail
    assert "Step 2 of 3: Approval" in run_page and "Rejected by alice (API)" in run_page
    assert f"/admin/runs/run/{run.pk}/change/" in pages["event"].content.decode()
    assert f"/admin/runs/runevent/?run__id__exact={run.pk}" in shown
    assert ada.get(f"/admin/approvals/approval/{approval.pk}/screenshot/").getvalue() == b"\xff\xd8acme-shot"


def test_an_auditor_sees_nothing_of_another_tenant(acme_trail):
    ada = auditor("ada", "acme")
    other, other_approval = acme_trail["other"], acme_trail["other_approval"]

    assert str(other.pk) not in ada.get("/admin/runs/run/").content.decode()
    assert ada.get(f"/admin/runs/run/{other.pk}/change/").status_code in {302, 404}
    assert ada.get(f"/admin/approvals/approval/{other_approval.pk}/screenshot/").status_code == 404
    assert "globex" not in ada.get("/admin/runs/run/").content.decode()
    assert ada.get(f"/admin/approvals/approval/{other_approval.pk}/change/").status_code in {302, 404}
    other_event = RunEvent.objects.filter(run=other).first()
    other_step = Step.objects.filter(run=other).first()
    assert other_event is not None and other_step is not None
    assert ada.get(f"/admin/runs/runevent/{other_event.pk}/change/").status_code in {302, 404}
    assert ada.get(f"/admin/runs/step/{other_step.pk}/change/").status_code in {302, 404}
    for listing in ("/admin/approvals/approval/", "/admin/runs/runevent/", "/admin/runs/step/"):
        assert str(other.pk) not in ada.get(listing).content.decode()
    # Asking for the other tenant through the filter gives nothing either.
    filtered = ada.get(f"/admin/runs/run/?tenant={other.tenant_id}").content.decode()
    assert str(other.pk) not in filtered


@pytest.mark.parametrize("who", ["auditor", "superuser"])
def test_changes_and_deletes_are_refused_even_when_crafted(acme_trail, who):
    if who == "auditor":
        client = auditor("ada", "acme")
    else:
        root = get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
        client = Client()
        # force_login: django-axes refuses Client.login's authenticate() without a request.
        client.force_login(root)
    run, approval = acme_trail["run"], acme_trail["approval"]
    event = RunEvent.objects.filter(run=run).first()
    assert event is not None
    step = Step.objects.filter(run=run).first()
    assert step is not None

    def state() -> tuple[Any, ...]:
        return (
            Run.objects.get(pk=run.pk).status,
            Run.objects.get(pk=run.pk).goal,
            RunEvent.objects.count(),
            Approval.objects.count(),
            Approval.objects.get(pk=approval.pk).note,
            Step.objects.count(),
            Step.objects.get(pk=step.pk).status,
        )

    before = state()

    answers = [
        client.post(f"/admin/runs/run/{run.pk}/change/", {"goal": "rewritten", "status": "completed"}),
        client.post(f"/admin/runs/run/{run.pk}/delete/", {"post": "yes"}),
        client.post(f"/admin/runs/runevent/{event.pk}/change/", {"type": "run.completed"}),
        client.post(f"/admin/runs/runevent/{event.pk}/delete/", {"post": "yes"}),
        client.post(f"/admin/approvals/approval/{approval.pk}/change/", {"note": "nothing happened"}),
        client.post(f"/admin/approvals/approval/{approval.pk}/delete/", {"post": "yes"}),
        client.post(f"/admin/runs/step/{step.pk}/change/", {"status": "failed"}),
        client.post(f"/admin/runs/step/{step.pk}/delete/", {"post": "yes"}),
        client.post("/admin/runs/run/add/", {"goal": "forged"}),
        client.post("/admin/approvals/approval/add/", {"prompt": "forged"}),
        client.post(
            "/admin/runs/runevent/",
            {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
        ),
    ]

    assert [a.status_code for a in answers[:-1]] == [403] * (len(answers) - 1)
    assert answers[-1].status_code in {200, 302}  # no such action: the list is shown again
    assert state() == before
    for url in ("/admin/runs/run/", "/admin/approvals/approval/", "/admin/runs/runevent/"):
        page = client.get(url).content.decode()
        assert 'value="delete_selected"' not in page and f'href="{url}add/"' not in page


def test_people_without_staff_or_auditor_rights_cannot_enter(acme_trail, bob):
    bob.user.set_password(PASSWORD)
    bob.user.save()
    client = Client()

    assert client.get("/admin/").status_code == 302
    refused = client.post("/admin/login/", {"username": "bob", "password": PASSWORD, "next": "/admin/"})
    assert refused.status_code == 200  # the form again, with its error
    assert "staff account" in refused.content.decode() or "correct username" in refused.content.decode()
    assert client.get("/admin/runs/run/").status_code == 302


def test_decisions_export_as_csv_for_a_date_range_without_running_formulas(acme_trail):
    ada = auditor("ada", "acme")
    today = timezone.now().date()

    answer = ada.get(f"/admin/approvals/approval/export/?start={today - timedelta(days=1)}&end={today}")

    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.content.decode())))
    assert len(rows) == 1  # acme's decided pause; globex's is not this auditor's, and pending anyway
    row = rows[0]
    assert row["decision"] == "rejected"
    assert row["decided by"] == "alice"
    assert row["step"] == "2 of 3"
    assert row["note or reason"] == '\'=HYPERLINK("http://evil")'
    assert row["tenant"] == "acme"
    earlier = ada.get(
        f"/admin/approvals/approval/export/?start={today - timedelta(days=9)}&end={today - timedelta(days=2)}"
    )
    assert len(list(csv.DictReader(io.StringIO(earlier.content.decode())))) == 0

    bad = ada.get("/admin/approvals/approval/export/?start=yesterday&end=2026-13-01")
    assert bad.status_code == 400
    assert "Enter a valid date" in bad.content.decode()
    backwards = ada.get(f"/admin/approvals/approval/export/?start={today}&end={today - timedelta(days=3)}")
    assert "The end date is before the start date" in backwards.content.decode()


def test_the_run_page_embeds_its_video_served_in_ranges(acme_trail):
    ada = auditor("ada", "acme")
    run = acme_trail["run"]
    data = tiny_webm()
    stored = video_storage().save(f"{run.pk}/video.webm", ContentFile(data))
    Recording.objects.create(
        run=run,
        status=RecordingStatus.READY,
        path=stored,
        content_type="video/webm",
        duration=1.0,
        size=len(data),
        chapters=[{"step_index": 1, "offset": 0.0, "label": "goto"}],
    )

    page = ada.get(f"/admin/runs/run/{run.pk}/change/").content.decode()
    part = ada.get(f"/admin/runs/run/{run.pk}/video/", HTTP_RANGE="bytes=0-99")

    assert f'src="/admin/runs/run/{run.pk}/video/"' in page
    assert part.status_code == 206
    assert part.getvalue() == data[:100]
    assert "WEBVTT" in ada.get(f"/admin/runs/run/{run.pk}/video/chapters.vtt").content.decode()
    video_storage().delete(stored)


def test_cells_a_spreadsheet_would_run_get_an_apostrophe_and_inputs_only_their_length():
    from approvals.admin import csv_cell, input_summary

    assert [csv_cell(v) for v in ("=1+1", "+1", "-2", "@SUM(A1)", "\tx", "ok", None, 3)] == [
        "'=1+1",
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "ok",
        "",
        "3",
    ]
    code = Approval(input_supplied=True, input_length=6, input_matched_pattern=True, sealed_input="x")
    assert input_summary(code) == "supplied: 6 characters, matched the pattern (the value is not kept)"
    assert input_summary(Approval(input_supplied=False)) == ""


def test_staff_keep_the_tenant_admin_and_see_no_trail_without_the_permission(acme_trail):
    user_model = get_user_model()
    root_user = user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    sam_user = user_model.objects.create_user("sam", password=PASSWORD, is_staff=True)
    root, sam = Client(), Client()
    # force_login: django-axes refuses Client.login's authenticate() without a request.
    root.force_login(root_user)
    sam.force_login(sam_user)

    for url in ("/admin/tenants/tenant/", "/admin/tenants/apitoken/", "/admin/runs/run/"):
        assert root.get(url).status_code == 200, url
    assert str(acme_trail["other"].pk) in root.get("/admin/runs/run/").content.decode()  # all tenants
    assert sam.get("/admin/").status_code == 200
    assert sam.get("/admin/runs/run/").status_code == 403
    assert sam.get(f"/admin/approvals/approval/{acme_trail['approval'].pk}/screenshot/").status_code == 404
