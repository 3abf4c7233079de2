"""Webhooks in Django admin: endpoints, messages with their attempts, what happened to endpoints.

Read-only for everyone; staff with the change permission may switch an endpoint on or off (the
service does it, so enabling sends what waited). The signing secret is never shown.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from twin_site.admin_site import NoEditing

from .models import Attempt, Delivery, Endpoint, EndpointEvent
from .services import endpoint_update

ENDPOINT_FIELDS = (
    "id",
    "tenant",
    "url",
    "description",
    "events",
    "enabled",
    "disabled_reason",
    "failure_streak",
    "last_success_at",
    "last_failure_at",
    "created_by",
    "created_at",
)


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ("url", "tenant", "enabled", "failure_streak", "last_success_at", "last_failure_at")
    list_filter = ("enabled", "tenant")
    search_fields = ("url", "description")
    fields = ENDPOINT_FIELDS  # not sealed_secret
    readonly_fields = tuple(f for f in ENDPOINT_FIELDS if f != "enabled")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff) and super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Endpoint, form: Any, change: bool) -> None:
        if "enabled" in form.changed_data:
            wanted = obj.enabled
            current = Endpoint.objects.get(pk=obj.pk)
            endpoint_update(endpoint=current, actor=request.user, enabled=wanted)


class AttemptInline(NoEditing, admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = ("number", "started_at", "duration_ms", "status_code", "ok", "error", "response_excerpt")
    readonly_fields = fields


@admin.register(Delivery)
class DeliveryAdmin(NoEditing, admin.ModelAdmin):
    list_display = ("event_type", "endpoint", "run", "status", "attempts", "created_at", "delivered_at")
    list_filter = ("status", "event_type", "tenant")
    search_fields = ("endpoint__url",)
    list_select_related = ("endpoint",)
    raw_id_fields = ("run",)
    readonly_fields = (
        "id",
        "webhook_id",
        "tenant",
        "endpoint",
        "run",
        "event_id",
        "event_type",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
        "delivered_at",
        "body",
    )
    fields = readonly_fields
    inlines = (AttemptInline,)

    @admin.display(description="webhook-id")
    def webhook_id(self, obj: Delivery) -> str:
        return obj.message_id


@admin.register(EndpointEvent)
class EndpointEventAdmin(NoEditing, admin.ModelAdmin):
    list_display = ("type", "endpoint", "actor", "created_at")
    list_filter = ("type",)
    list_select_related = ("endpoint", "actor")
    fields = ("endpoint", "type", "actor", "data", "created_at")
    readonly_fields = fields
