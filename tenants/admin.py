from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import ApiToken, FourEyes, Membership, Tenant

# What a run costs (runs.cost, docs/api.md "Cost"): set per tenant, by superusers only.
PRICE_FIELDS = ["currency", "price_browser_minute", "price_per_1k_tokens"]
# Where the agent sends page snapshots (its model endpoint) is a superuser's call too.
MODEL_FIELDS = ["llm_base_url", "llm_model", "llm_key_secret", "agent_vision"]
# Who decides every pause of the tenant, how many approvals it needs, whom to tell when it waits
# (approvals.rules): like four eyes, an approval control that only a superuser loosens.
RULE_FIELDS = ["default_approvers", "default_required", "default_escalate_after", "default_escalate_to"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = [
        "slug",
        "name",
        "require_two_factor",
        "four_eyes_effective",
        "currency",
        "price_browser_minute",
        "price_per_1k_tokens",
        "created_at",
    ]
    search_fields = ["slug", "name"]
    readonly_fields = ["four_eyes_effective"]
    inlines = [MembershipInline]

    @admin.display(description="Four eyes now")
    def four_eyes_effective(self, tenant: Tenant) -> str:
        """What the setting means today: "auto" depends on how many approvers there are."""
        if tenant.pk is None:
            return "—"
        approvers = tenant.approver_count()
        count = f"{approvers} approver{'' if approvers == 1 else 's'}"
        if tenant.four_eyes == FourEyes.AUTO:
            return f"{'On' if approvers >= 2 else 'Off'} (automatic: {count})"
        return f"{'On' if tenant.four_eyes == FourEyes.ON else 'Off'} (set explicitly; {count})"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Whether a tenant's approvers need a second factor is a superuser's call, not one
        # for any staff member who may edit tenants.
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields.append("require_two_factor")
            # What the tenant's runs cost (runs.cost) is a superuser's call too.
            fields.extend(PRICE_FIELDS)
            fields.extend(MODEL_FIELDS)
            fields.extend(RULE_FIELDS)
        return fields


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "tenant", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["tenant"]
    readonly_fields = ["prefix", "digest", "created_at", "last_used_at"]
