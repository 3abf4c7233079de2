"""Skills: compiling a completed run into a version, running a version, archiving.

Everything that changes skills lives here (reads are in selectors.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runs.models import Run
from runs.program import Problem
from tenants.models import Tenant

from .models import Skill, SkillVersion


class CompileError(Exception):
    """A run that cannot be compiled as asked: ``code`` and ``http_status`` for the API."""

    def __init__(
        self, code: str, detail: str, *, http_status: int = 400, problems: list[Problem] | None = None
    ):
        super().__init__(detail)
        self.code, self.detail, self.http_status = code, detail, http_status
        self.problems = problems or []


class SkillParamsInvalid(ValueError):
    """Params for a skill run that are missing, unknown or of the wrong type (every problem at once)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass
class Preview:
    """What compiling the run would give, before anything is stored."""

    slug: str
    name: str
    version: int  # the number the new version would get
    steps: list[dict[str, Any]]
    params: list[dict[str, Any]]  # [{"name", "type", "example", "options"?}]
    # Literals that look like personal data (emails, card numbers) and are not parameters yet:
    # [{"name": suggested parameter name, "literal", "reason", "steps": [indexes]}]
    suggested: list[dict[str, Any]] = field(default_factory=list)
    # Source-run step indexes left out (skipped after a block), and folded answers, for the preview.
    left_out: list[int] = field(default_factory=list)
    changed_steps: list[int] = field(default_factory=list)


def compile_preview(
    run: Run, *, slug: str | None = None, name: str | None = None, params: dict[str, Any] | None = None
) -> Preview:
    raise NotImplementedError


def skill_compile(
    run: Run,
    *,
    actor: Any,
    slug: str | None = None,
    name: str | None = None,
    params: dict[str, Any] | None = None,
) -> SkillVersion:
    raise NotImplementedError


def skill_archive(skill: Skill, *, actor: Any) -> Skill:
    raise NotImplementedError


def skill_run(
    *,
    tenant: Tenant,
    skill: Skill,
    actor: Any,
    params: dict[str, Any] | None = None,
    version: int | None = None,
    record_video: bool = True,
) -> Run:
    raise NotImplementedError
