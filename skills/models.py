"""Skills: step programs compiled from completed runs, versioned and immutable, per tenant."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models

from tenants.models import Tenant


class Skill(models.Model):
    """A named job of a tenant; what it does is in its versions (the newest is the one run)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="skills")
    slug = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    # What the agent matches a goal-only run against: the normalized goal, the URL's origin and path.
    goal = models.TextField(blank=True)
    goal_key = models.CharField(max_length=500, blank=True, db_index=True)
    url = models.CharField(max_length=2048, blank=True)
    latest_version = models.PositiveIntegerField(default=0)
    # A goal-only run whose goal, URL and parameter names match replays this skill instead of asking
    # a model (on for skills compiled from planned runs).
    answers_goals = models.BooleanField(default=False)
    # The parameter names such a run gives (sorted, comma-separated): part of the goal's key.
    param_key = models.CharField(max_length=1000, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [models.UniqueConstraint(fields=["tenant", "slug"], name="one_skill_slug_per_tenant")]

    def __str__(self) -> str:
        return self.slug


class SkillVersion(models.Model):
    """One immutable version: its steps (with locator bundles), its parameters, where it came from."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    skill = models.ForeignKey(Skill, on_delete=models.PROTECT, related_name="versions")
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    version = models.PositiveIntegerField()
    steps = models.JSONField(help_text="The step program, element steps with their locator bundles.")
    # [{"name", "type": "string"|"number"|"boolean"|"enum", "example", "options"?}]
    params = models.JSONField(default=list, blank=True)
    source_run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="compiled_versions"
    )
    # 1-based indexes of the steps that differ from the previous version (a repair's fixed steps).
    changed_steps = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["skill", "-version"]
        constraints = [models.UniqueConstraint(fields=["skill", "version"], name="one_skill_version_number")]

    def __str__(self) -> str:
        return f"{self.skill.slug} v{self.version}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise RuntimeError("skill versions are immutable: compile a new version instead")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise RuntimeError("skill versions are immutable: archive the skill instead")
