"""Runs, their steps and their event trail in Django admin: read-only, tenant-scoped for auditors."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from twin_site.admin_site import AuditedTenantFilter, NoEditing, ReadOnlyAudit, run_filtered

from .media import chapters_response, poster_response, video_response
from .models import Run, RunEvent, Step
from .selectors import ready_recording


def pretty_json(value: Any) -> str:
    return format_html("<pre class='twin-json'>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


STEP_FIELDS = (
    "index",
    "action",
    "label",
    "status",
    "attempts",
    "started_at",
    "finished_at",
    "error",
)


class StepInline(NoEditing, admin.TabularInline):
    model = Step
    extra = 0
    can_delete = False
    fields = STEP_FIELDS
    readonly_fields = STEP_FIELDS
    show_change_link = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True  # the run's own page decided already


@admin.register(Run)
class RunAdmin(ReadOnlyAudit, admin.ModelAdmin):
    list_display = ["goal_short", "tenant", "status", "progress", "created_by", "created_at", "duration"]
    list_filter = [AuditedTenantFilter, "status", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["goal", "url", "approvals__decided_by__username", "id"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant", "created_by"]
    inlines = [StepInline]
    fields = RUN_FIELDS = (
        "id",
        "tenant_slug",
        "goal",
        "url",
        "status",
        "progress",
        "starter",
        "created_at",
        "started_at",
        "finished_at",
        "error",
        "trail",
        "pauses",
        "video",
        "outputs_json",
        "program_json",
        "audit_head",
    )
    readonly_fields = RUN_FIELDS

    @admin.display(description="goal", ordering="goal")
    def goal_short(self, run: Run) -> str:
        return (run.goal or "(no goal)")[:80]

    @admin.display(description="started by")
    def starter(self, run: Run) -> str:
        return run.created_by.get_username() if run.created_by else "—"

    @admin.display(description="step")
    def progress(self, run: Run) -> str:
        return f"{run.current_step} of {run.step_count}"

    @admin.display(description="duration")
    def duration(self, run: Run) -> str:
        if run.started_at and run.finished_at:
            return f"{(run.finished_at - run.started_at).total_seconds():.1f} s"
        return "—"

    @admin.display(description="pauses and events")
    def trail(self, run: Run) -> str:
        pauses = run_filtered("admin:approvals_approval_changelist", run.pk)
        events = run_filtered("admin:runs_runevent_changelist", run.pk)
        return format_html(
            '<a href="{}">{} pause(s) and their decisions</a> · <a href="{}">{} events</a> (head #{})',
            pauses,
            run.approvals.count(),
            events,
            run.events.count(),
            run.audit_seq,
        )

    @admin.display(description="session video")
    def video(self, run: Run) -> str:
        recording = ready_recording(run)
        if recording is None:
            return "—"
        video_url = reverse("admin:runs_run_video", args=[run.pk])
        try:
            template = get_template("runs/_video.html")
        except TemplateDoesNotExist:  # the dashboard's player is optional here: a plain one will do
            return format_html('<video controls preload="metadata" src="{}"></video>', video_url)
        return template.render(
            {
                "recording": recording,
                "video_url": video_url,
                "chapters_url": reverse("admin:runs_run_video_chapters", args=[run.pk]),
                "poster_url": reverse("admin:runs_run_video_poster", args=[run.pk]),
            }
        )

    @admin.display(description="pauses")
    def pauses(self, run: Run) -> str:
        approvals = list(run.approvals.select_related("decided_by").order_by("created_at"))
        if not approvals:
            return "—"
        rows = []
        for a in approvals:
            page = reverse("admin:approvals_approval_change", args=[a.pk])
            shot = (
                format_html(
                    '<img src="{}" alt="The page at step {}" loading="lazy">',
                    reverse("admin:approvals_approval_screenshot", args=[a.pk]),
                    a.step_index,
                )
                if a.screenshot
                else "no screenshot"
            )
            decided = (
                f"{a.decision_label()} by {a.decided_by.get_username() if a.decided_by else '—'}"
                f" ({a.get_channel_display() or '—'}), {a.decided_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
                if a.decided_at
                else a.get_status_display()
            )
            rows.append((page, shot, page, a.step_index, a.step_count, a.get_trigger_display(), decided))
        return format_html(
            '<table class="twin-pauses"><tbody>{}</tbody></table>',
            format_html_join(
                "",
                '<tr><td class="twin-thumb"><a href="{}">{}</a></td>'
                '<td><a href="{}">Step {} of {}: {}</a><br>{}</td></tr>',
                rows,
            ),
        )

    @admin.display(description="outputs")
    def outputs_json(self, run: Run) -> str:
        return pretty_json(run.outputs)

    @admin.display(description="program")
    def program_json(self, run: Run) -> str:
        return pretty_json(run.program)

    def get_urls(self) -> list[Any]:
        return [
            path("<uuid:pk>/video/", self.admin_site.admin_view(self.video_view), name="runs_run_video"),
            path(
                "<uuid:pk>/video/chapters.vtt",
                self.admin_site.admin_view(self.chapters_view),
                name="runs_run_video_chapters",
            ),
            path(
                "<uuid:pk>/video/poster.jpg",
                self.admin_site.admin_view(self.poster_view),
                name="runs_run_video_poster",
            ),
            *super().get_urls(),
        ]

    def _visible_recording(self, request: HttpRequest, pk: Any) -> Any:
        run = self.get_queryset(request).filter(pk=pk).first()
        recording = ready_recording(run) if run is not None else None
        if recording is None or not self.has_view_permission(request, run):
            raise Http404("no such video")
        return recording

    def video_view(self, request: HttpRequest, pk: Any) -> HttpResponseBase:
        recording = self._visible_recording(request, pk)
        return video_response(request, recording)

    def poster_view(self, request: HttpRequest, pk: Any) -> HttpResponseBase:
        recording = self._visible_recording(request, pk)
        return poster_response(request, recording)

    def chapters_view(self, request: HttpRequest, pk: Any) -> HttpResponse:
        recording = self._visible_recording(request, pk)
        return chapters_response(recording)

    class Media:
        css = {"all": ["twin/admin.css"]}
        js = ["twin/video.js", "twin/admin.js"]


class StepTenantFilter(AuditedTenantFilter):
    tenant_path = "run__tenant"


@admin.register(Step)
class StepAdmin(ReadOnlyAudit, admin.ModelAdmin):
    tenant_path = "run__tenant"
    list_display = ["run", "index", "action", "label", "status", "attempts", "started_at", "finished_at"]
    list_filter = [StepTenantFilter, "status", "action"]
    search_fields = ["run__goal", "label"]
    list_select_related = ["run"]
    readonly_fields = (
        "run",
        "index",
        "action",
        "label",
        "status",
        "attempts",
        "error",
        "started_at",
        "finished_at",
    )
    fields = readonly_fields


class EventTenantFilter(AuditedTenantFilter):
    pass


@admin.register(RunEvent)
class RunEventAdmin(ReadOnlyAudit, admin.ModelAdmin):
    list_display = ["created_at", "run_link", "seq", "type", "step_index", "actor", "short_hash"]
    list_filter = [EventTenantFilter, "type", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["run__goal", "type", "run__id"]
    list_select_related = ["run", "actor"]
    ordering = ["-id"]
    fields = EVENT_FIELDS = (
        "run_link",
        "tenant_slug",
        "seq",
        "type",
        "step_index",
        "actor_name",
        "created_at",
        "data_json",
        "prev_hash",
        "hash",
    )
    readonly_fields = EVENT_FIELDS

    @admin.display(description="run", ordering="run")
    def run_link(self, event: RunEvent) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:runs_run_change", args=[event.run_id]),
            event.run.goal[:60] or event.run_id,
        )

    @admin.display(description="actor")
    def actor_name(self, event: RunEvent) -> str:
        return event.actor.get_username() if event.actor else "—"

    @admin.display(description="hash")
    def short_hash(self, event: RunEvent) -> str:
        return event.hash[:12]

    @admin.display(description="data")
    def data_json(self, event: RunEvent) -> str:
        return pretty_json(event.data)
