"""Pauses and decisions in Django admin: what the person saw, what they decided, a CSV export."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from twin_site.admin_site import AuditedTenantFilter, ReadOnlyAudit, audited_tenant_ids, run_filtered

from .models import Approval, ApprovalStatus
from .rules import describe_group

CSV_COLUMNS = [
    ("decided_at", "decided at (UTC)"),
    ("tenant", "tenant"),
    ("run_id", "run"),
    ("goal", "goal"),
    ("step", "step"),
    ("trigger", "trigger"),
    ("kind", "kind"),
    ("decision", "decision"),
    ("approvals", "approved by (pauses that needed several)"),
    ("choice", "choice"),
    ("input", "input"),
    ("decided_by", "decided by"),
    ("token_name", "API token"),
    ("channel", "channel"),
    ("ip", "IP"),
    ("user_agent", "user agent"),
    ("note", "note or reason"),
    ("page_url", "page URL"),
    ("page_title", "page title"),
    ("prompt", "prompt"),
]


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet will not run: formulas (= + - @, tab, CR) get a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text


def input_summary(approval: Approval) -> str:
    """What is kept of a supplied input: that it was supplied, its length, whether it matched."""
    if not approval.input_supplied:
        return ""
    summary = f"supplied: {approval.input_length} characters"
    if approval.input_matched_pattern is True:
        summary += ", matched the pattern"
    elif approval.input_matched_pattern is False:
        summary += ", did not match the pattern"
    return summary + " (the value is not kept)"


class ExportForm(forms.Form):
    start = forms.DateField(label="From (UTC date)", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To (UTC date, included)", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            raise forms.ValidationError("The end date is before the start date.")
        return data


class DecidedByFilter(admin.SimpleListFilter):
    title = "decided by"
    parameter_name = "decided_by"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[Any, str]]:
        people = (
            model_admin.get_queryset(request)
            .exclude(decided_by=None)
            .values_list("decided_by_id", "decided_by__username")
            .distinct()
            .order_by("decided_by__username")
        )
        return [(pk, name) for pk, name in people]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        return queryset.filter(decided_by_id=int(value)) if value and str(value).isdigit() else queryset


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAudit, admin.ModelAdmin):
    list_display = [
        "created_at",
        "run_link",
        "step",
        "trigger",
        "decision_shown",
        "decided_by",
        "channel",
        "decided_at",
    ]
    list_filter = [
        AuditedTenantFilter,
        "status",
        "decision",
        "trigger",
        DecidedByFilter,
        "channel",
        ("created_at", admin.DateFieldListFilter),
        ("decided_at", admin.DateFieldListFilter),
    ]
    search_fields = ["run__goal", "page_url", "decided_by__username", "prompt", "run__id"]
    list_select_related = ["run", "decided_by", "tenant"]
    date_hierarchy = "created_at"
    fieldsets = [
        (
            "The pause",
            {
                "fields": [
                    "run_link",
                    "tenant_slug",
                    "step",
                    "action",
                    "cause",
                    "trigger",
                    "kind",
                    "status",
                    "created_at",
                    "expires_at",
                    "rule",
                    "escalated_at",
                ]
            },
        ),
        (
            "What the person saw",
            {
                "fields": [
                    "prompt",
                    "options",
                    "pattern",
                    "page_address",
                    "page_title",
                    "shot",
                    "shot_sha256",
                    "text",
                ]
            },
        ),
        (
            "The decision",
            {
                "fields": [
                    "decision_shown",
                    "votes_record",
                    "decider",
                    "api_token",
                    "channel",
                    "decided_at",
                    "ip_address",
                    "user_agent",
                    "choice",
                    "note",
                    "input_record",
                    "events_link",
                ]
            },
        ),
    ]
    readonly_fields = (
        "decision_shown",
        "votes_record",
        "rule",
        "escalated_at",
        "run_link",
        "tenant_slug",
        "step",
        "action",
        "cause",
        "trigger",
        "kind",
        "status",
        "created_at",
        "expires_at",
        "prompt",
        "options",
        "pattern",
        "page_address",
        "page_title",
        "shot",
        "shot_sha256",
        "text",
        "decider",
        "api_token",
        "channel",
        "decided_at",
        "ip_address",
        "user_agent",
        "choice",
        "note",
        "input_record",
        "events_link",
    )

    @admin.display(description="run", ordering="run__goal")
    def run_link(self, approval: Approval) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:runs_run_change", args=[approval.run_id]),
            approval.run.goal[:60] or approval.run_id,
        )

    @admin.display(description="decision", ordering="decision")
    def decision_shown(self, approval: Approval) -> str:
        """In the pause's words: a blocked step answered "fail" reads "Fail the run", not Approved."""
        return "Pending" if approval.status == ApprovalStatus.PENDING else approval.decision_label()

    @admin.display(description="approvals given")
    def votes_record(self, approval: Approval) -> str:
        votes = list(approval.votes.select_related("user").order_by("at", "pk"))
        if not votes:
            return f"0 of {approval.required}"
        return format_html_join(
            "",
            "<div>{} — {} via {}{}</div>",
            (
                (
                    vote.user.get_username(),
                    vote.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
                    vote.get_channel_display(),
                    f" ({vote.token_name})" if vote.token_name else "",
                )
                for vote in votes
            ),
        )

    @admin.display(description="rule")
    def rule(self, approval: Approval) -> str:
        plural = "" if approval.required == 1 else "s"
        text = f"{approval.required} approval{plural} from {describe_group(approval.approvers)}"
        if approval.escalate_at:
            at = approval.escalate_at.astimezone(UTC)
            text += f"; escalates to {describe_group(approval.escalate_to)} at {at:%Y-%m-%d %H:%M:%S} UTC"
        return text

    @admin.display(description="decided by")
    def decider(self, approval: Approval) -> str:
        return approval.decided_by.get_username() if approval.decided_by else "—"

    @admin.display(description="step")
    def step(self, approval: Approval) -> str:
        return f"{approval.step_index} of {approval.step_count}"

    @admin.display(description="screenshot")
    def shot(self, approval: Approval) -> str:
        if not approval.screenshot:
            return "— (none, or deleted by retention)" if approval.screenshot_sha256 else "—"
        url = reverse("admin:approvals_approval_screenshot", args=[approval.pk])
        return format_html(
            '<a class="twin-shot" href="{}" target="_blank" rel="noopener"><img src="{}" alt="{}"></a>',
            url,
            url,
            f"The page at step {approval.step_index}",
        )

    @admin.display(description="visible text of the page")
    def text(self, approval: Approval) -> str:
        return format_html('<pre class="twin-page-text">{}</pre>', approval.page_text or "—")

    @admin.display(description="page URL")
    def page_address(self, approval: Approval) -> str:
        return approval.page_url or "—"

    @admin.display(description="screenshot SHA-256")
    def shot_sha256(self, approval: Approval) -> str:
        return approval.screenshot_sha256 or "—"

    @admin.display(description="API token")
    def api_token(self, approval: Approval) -> str:
        return approval.token_name or "—"

    @admin.display(description="IP address")
    def ip_address(self, approval: Approval) -> str:
        return approval.decided_ip or "—"

    @admin.display(description="user agent")
    def user_agent(self, approval: Approval) -> str:
        return approval.decided_user_agent or "—"

    @admin.display(description="input")
    def input_record(self, approval: Approval) -> str:
        return input_summary(approval) or "—"

    @admin.display(description="trail")
    def events_link(self, approval: Approval) -> str:
        url = run_filtered("admin:runs_runevent_changelist", approval.run_id)
        return format_html('<a href="{}">the run\'s events</a>', url)

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<uuid:pk>/screenshot/",
                self.admin_site.admin_view(self.screenshot_view),
                name="approvals_approval_screenshot",
            ),
            path("export/", self.admin_site.admin_view(self.export_view), name="approvals_approval_export"),
            *super().get_urls(),
        ]

    def screenshot_view(self, request: HttpRequest, pk: Any) -> FileResponse:
        approval = self.get_queryset(request).filter(pk=pk).first()
        if approval is None or not approval.screenshot or not default_storage.exists(approval.screenshot):
            raise Http404("no such screenshot")
        return FileResponse(default_storage.open(approval.screenshot, "rb"), content_type="image/jpeg")

    def export_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise Http404("nothing to export")
        form = ExportForm(request.GET or None)
        if request.GET and form.is_valid():
            return self._csv(request, form.cleaned_data["start"], form.cleaned_data["end"])
        today = timezone.now().date()
        if not request.GET:
            form = ExportForm(initial={"start": today - timedelta(days=30), "end": today})
        context = {
            **self.admin_site.each_context(request),
            "title": "Export decisions (CSV)",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(
            request, "admin/approvals/approval/export.html", context, status=400 if request.GET else 200
        )

    def _csv(self, request: HttpRequest, start: Any, end: Any) -> HttpResponse:
        since = datetime.combine(start, time.min, tzinfo=UTC)
        until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
        decided = (
            self.get_queryset(request)
            .filter(decided_at__gte=since, decided_at__lt=until)
            .exclude(status=ApprovalStatus.PENDING)
            .select_related("run", "tenant", "decided_by")
            .order_by("decided_at", "pk")
        )
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="twin-decisions-{start}-to-{end}.csv"'
        writer = csv.writer(response)
        writer.writerow([label for _, label in CSV_COLUMNS])
        for a in decided.iterator():
            row = {
                "decided_at": a.decided_at.astimezone(UTC).isoformat() if a.decided_at else "",
                "tenant": a.tenant.slug,
                "run_id": a.run_id,
                "goal": a.run.goal,
                "step": f"{a.step_index} of {a.step_count}",
                "trigger": a.trigger,
                "kind": a.kind,
                "decision": a.decision or a.status,
                "approvals": ", ".join(a.voter_names) if a.required > 1 else "",
                "choice": a.choice,
                "input": input_summary(a),
                "decided_by": a.decided_by.get_username() if a.decided_by else "",
                "token_name": a.token_name,
                "channel": a.channel,
                "ip": a.decided_ip or "",
                "user_agent": a.decided_user_agent,
                "note": a.note,
                "page_url": a.page_url,
                "page_title": a.page_title,
                "prompt": a.prompt,
            }
            writer.writerow([csv_cell(row[key]) for key, _ in CSV_COLUMNS])
        return response

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        extra = {"export_url": reverse("admin:approvals_approval_export"), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    class Media:
        css = {"all": ["twin/admin.css"]}


__all__ = ["ApprovalAdmin", "audited_tenant_ids"]
