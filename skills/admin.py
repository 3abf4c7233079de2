"""Skills and their versions in Django admin: read-only for everyone (versions are immutable, a
skill changes only through compiling and archiving), tenant-scoped for auditors."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from runs.admin import pretty_json
from twin_site.admin_site import AuditedTenantFilter, NoEditing, ReadOnlyAudit

from .models import Skill, SkillVersion

VERSION_FIELDS = ("version", "created_at", "created_by", "source_run", "changed_steps")


class VersionInline(NoEditing, admin.TabularInline):
    model = SkillVersion
    extra = 0
    can_delete = False
    fields = VERSION_FIELDS
    readonly_fields = VERSION_FIELDS
    show_change_link = True
    ordering = ["-version"]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True  # the skill's own page decided already


class SkillTenantFilter(AuditedTenantFilter):
    pass


@admin.register(Skill)
class SkillAdmin(ReadOnlyAudit, admin.ModelAdmin):
    list_display = ["name", "slug", "tenant", "latest_version", "archived_at", "updated_at"]
    list_filter = [SkillTenantFilter, ("archived_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "slug", "goal", "id"]
    list_select_related = ["tenant"]
    inlines = [VersionInline]
    fields = SKILL_FIELDS = (
        "id",
        "tenant_slug",
        "slug",
        "name",
        "goal",
        "url",
        "latest_version",
        "archived_at",
        "created_by",
        "created_at",
        "updated_at",
    )
    readonly_fields = SKILL_FIELDS


class VersionTenantFilter(AuditedTenantFilter):
    pass


@admin.register(SkillVersion)
class SkillVersionAdmin(ReadOnlyAudit, admin.ModelAdmin):
    list_display = ["__str__", "tenant", "version", "created_at", "created_by", "source_run"]
    list_filter = [VersionTenantFilter, ("created_at", admin.DateFieldListFilter)]
    search_fields = ["skill__slug", "skill__name", "id"]
    list_select_related = ["skill", "tenant", "created_by", "source_run"]
    ordering = ["-created_at"]
    fields = VERSION_DETAIL_FIELDS = (
        "id",
        "tenant_slug",
        "skill_link",
        "version",
        "created_by",
        "created_at",
        "source_run_link",
        "changed_steps",
        "params_json",
        "steps_json",
    )
    readonly_fields = VERSION_DETAIL_FIELDS

    @admin.display(description="skill")
    def skill_link(self, version: SkillVersion) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:skills_skill_change", args=[version.skill_id]),
            version.skill,
        )

    @admin.display(description="compiled from run")
    def source_run_link(self, version: SkillVersion) -> str:
        if version.source_run_id is None:
            return "—"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:runs_run_change", args=[version.source_run_id]),
            version.source_run_id,
        )

    @admin.display(description="parameters")
    def params_json(self, version: SkillVersion) -> str:
        return pretty_json(version.params)

    @admin.display(description="steps")
    def steps_json(self, version: SkillVersion) -> str:
        return pretty_json(version.steps)

    class Media:
        css = {"all": ["twin/admin.css"]}
