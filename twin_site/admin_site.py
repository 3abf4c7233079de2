"""Django admin as the audit trail: auditors (a tenant role) sign in here and read, nobody edits.

Staff keep the usual admin. A member with the ``auditor`` role may sign in too, without being
staff, and sees the runs, steps, pauses and events of the tenants they audit — read-only, like
everyone: the trail's models refuse adds, changes and deletes for superusers as well.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from tenants.models import Membership, Role


def audited_tenant_ids(user: Any) -> list[int] | None:
    """The tenants whose trail ``user`` may read in the admin; None means every tenant."""
    if not getattr(user, "is_active", False):
        return []
    if user.is_superuser:
        return None
    ids = list(
        Membership.objects.filter(user_id=user.pk, role=Role.AUDITOR).values_list("tenant_id", flat=True)
    )
    if user.is_staff and user.has_perm("runs.view_run"):
        return None
    return ids


def is_auditor(user: Any) -> bool:
    return (
        bool(getattr(user, "pk", None))
        and Membership.objects.filter(user_id=user.pk, role=Role.AUDITOR).exists()
    )


class AuditorLoginForm(AdminAuthenticationForm):
    def confirm_login_allowed(self, user: Any) -> None:
        if not user.is_active or not (user.is_staff or is_auditor(user)):
            raise ValidationError(
                self.error_messages["invalid_login"], code="invalid_login", params={"username": "username"}
            )


class TwinAdminSite(admin.AdminSite):
    site_header = "Twin — audit trail"
    site_title = "Twin admin"
    index_title = "Runs, pauses and what was decided"
    login_form = AuditorLoginForm
    # The trail's lists are wide (and an auditor has four of them, linked from every page).
    enable_nav_sidebar = False

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and (user.is_staff or is_auditor(user)))


class NoEditing:
    """Mixin for admin classes and inlines: nobody adds, changes or deletes, superusers included."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAudit(NoEditing):
    """Mixin for the trail's admin classes: view only, for everyone; auditors see their tenants."""

    tenant_path = "tenant"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        tenants = audited_tenant_ids(request.user)
        if tenants is None:
            return True
        if obj is None:
            return bool(tenants)
        return int(self._tenant_of(obj).pk) in tenants

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def _tenant_of(self, obj: Any) -> Any:
        value = obj
        for part in self.tenant_path.split("__"):
            value = getattr(value, part)
        return value

    def get_queryset(self, request: HttpRequest) -> Any:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        tenants = audited_tenant_ids(request.user)
        if tenants is None:
            return queryset
        return queryset.filter(**{f"{self.tenant_path}__in": tenants})

    @admin.display(description="tenant")
    def tenant_slug(self, obj: Any) -> str:
        return str(self._tenant_of(obj).slug)


class AuditedTenantFilter(admin.SimpleListFilter):
    """Filter by tenant, offering only the tenants this person may audit."""

    title = "tenant"
    parameter_name = "tenant"
    tenant_path = "tenant"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[Any, str]]:
        from tenants.models import Tenant

        tenants = Tenant.objects.order_by("slug")
        allowed = audited_tenant_ids(request.user)
        if allowed is not None:
            tenants = tenants.filter(pk__in=allowed)
        return [(t.pk, t.slug) for t in tenants]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        if value and str(value).isdigit():
            return queryset.filter(**{f"{self.tenant_path}_id": int(value)})
        return queryset


def run_filtered(changelist: str, run_id: Any) -> str:
    """The admin list ``changelist`` (a URL name) narrowed to one run's rows."""
    from django.urls import reverse
    from django.utils.http import urlencode

    return reverse(changelist) + "?" + urlencode({"run__id__exact": str(run_id)})
