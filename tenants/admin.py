from django.contrib import admin

from .models import ApiToken, FourEyes, Membership, Tenant


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "four_eyes_effective", "created_at"]
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


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "tenant", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["tenant"]
    readonly_fields = ["prefix", "digest", "created_at", "last_used_at"]
