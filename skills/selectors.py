"""Reads of skills (changes are in services.py)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from tenants.models import Tenant

from .models import Skill, SkillVersion


def skills_for_tenant(tenant: Tenant, *, archived: bool = False) -> QuerySet[Skill]:
    skills = Skill.objects.filter(tenant=tenant)
    if not archived:
        skills = skills.filter(archived_at__isnull=True)
    return skills.order_by("-updated_at", "slug")


def get_skill(tenant: Tenant, id_or_slug: str, *, archived: bool = True) -> Skill:
    """The tenant's skill by id or slug, or Http404 (another tenant's skill does not exist for you)."""
    skills = skills_for_tenant(tenant, archived=archived)
    try:
        key = uuid.UUID(str(id_or_slug))
    except ValueError:
        skill = skills.filter(slug=id_or_slug).first()
    else:
        skill = skills.filter(pk=key).first()
    if skill is None:
        raise Http404("no such skill")
    return skill


def get_version(skill: Skill, number: int | None = None) -> SkillVersion:
    """A version of the skill (the newest when ``number`` is None), or Http404."""
    versions = SkillVersion.objects.filter(skill=skill).select_related("skill")
    version = versions.filter(version=number).first() if number is not None else versions.first()
    if version is None:
        raise Http404("no such version")
    return version


def skill_stats(skill: Skill) -> dict[str, Any]:
    """{"runs", "completed", "success_rate", "median_duration_s", "last_run_at", "avg_amount"}."""
    raise NotImplementedError
