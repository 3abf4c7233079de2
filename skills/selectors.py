"""Reads of skills (changes are in services.py)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from tenants.models import Tenant

from .models import Skill, SkillVersion


def skills_for_tenant(tenant: Tenant, *, archived: bool = False) -> QuerySet[Skill]:
    raise NotImplementedError


def get_skill(tenant: Tenant, id_or_slug: str, *, archived: bool = True) -> Skill:
    """The tenant's skill by id or slug, or Http404."""
    raise NotImplementedError


def get_version(skill: Skill, number: int | None = None) -> SkillVersion:
    """A version of the skill (the newest when ``number`` is None), or Http404."""
    raise NotImplementedError


def skill_stats(skill: Skill) -> dict[str, Any]:
    """{"runs", "completed", "success_rate", "median_duration_s", "last_run_at", "avg_amount"}."""
    raise NotImplementedError
