"""The agent's tenant settings in Django admin: its model endpoint is a superuser's call, and a
policy pattern or origin Twin cannot use is refused with its reason."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from tenants.models import Tenant
from tests.conftest import Persona


def _form(tenant: Tenant, **changes: Any) -> dict[str, Any]:
    data = {
        "slug": tenant.slug,
        "name": tenant.name,
        "four_eyes": "auto",
        "approval_emails": "",
        "currency": "USD",
        "price_browser_minute": "0.002",
        "price_per_1k_tokens": "0.002",
        "agent_consequential_patterns": json.dumps(tenant.agent_consequential_patterns),
        "agent_approval_origins": "[]",
        "agent_auto_compile": "on",
        "agent_max_steps": "40",
        "agent_max_model_calls": "120",
        "agent_max_tokens": "1000000",
        # The tenant's default approval rule, as the form shows it.
        "default_approvers": "[]",
        "default_required": "1",
        "default_escalate_to": "[]",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return data


def test_a_superuser_points_a_tenant_at_its_own_model_and_edits_its_policy(alice: Persona, admin_user: Any):
    root = Client()
    root.force_login(admin_user)
    url = f"/admin/tenants/tenant/{alice.tenant.pk}/change/"
    answer = root.post(
        url,
        _form(
            alice.tenant,
            llm_base_url="http://127.0.0.1:11434/v1",
            llm_model="qwen2.5:7b",
            llm_key_secret="ollama_key",
            agent_consequential_patterns=json.dumps(["\\bsubmit\\b"]),
            agent_approval_origins=json.dumps(["HTTPS://Bank.example/"]),
        ),
    )
    assert answer.status_code == 302, answer.content.decode()[-3000:]
    tenant = Tenant.objects.get(pk=alice.tenant.pk)
    assert (tenant.llm_base_url, tenant.llm_model, tenant.llm_key_secret) == (
        "http://127.0.0.1:11434/v1",
        "qwen2.5:7b",
        "ollama_key",
    )
    assert tenant.agent_consequential_patterns == ["\\bsubmit\\b"]
    assert tenant.agent_approval_origins == ["https://bank.example"]


def test_a_pattern_twin_cannot_run_is_refused_and_nothing_is_saved(alice: Persona, admin_user: Any):
    root = Client()
    root.force_login(admin_user)
    url = f"/admin/tenants/tenant/{alice.tenant.pk}/change/"
    answer = root.post(url, _form(alice.tenant, agent_consequential_patterns=json.dumps(["(a)\\1"])))
    assert answer.status_code == 200
    assert "RE2 syntax" in answer.content.decode()
    assert Tenant.objects.get(pk=alice.tenant.pk).agent_consequential_patterns[0] == "\\bpay\\b"


def test_staff_see_the_model_endpoint_but_cannot_change_it(alice: Persona):
    from django.contrib.auth.models import Permission

    alice.user.is_staff = True
    alice.user.save()
    alice.user.user_permissions.add(*Permission.objects.filter(codename__in=["view_tenant", "change_tenant"]))
    staff = Client()
    staff.force_login(alice.user)
    page = staff.get(f"/admin/tenants/tenant/{alice.tenant.pk}/change/").content.decode()
    assert 'name="llm_base_url"' not in page and "llm base url" in page.lower()
    assert 'name="agent_consequential_patterns"' in page  # the policy is the tenant's staff's call
