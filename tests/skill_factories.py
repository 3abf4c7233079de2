"""Skills as the compiler leaves them, built straight in the database (no browser, no worker)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from runs.models import Run, RunStatus, Step, StepStatus
from skills.models import Skill, SkillVersion


def bundle(tag: str, role: str, name: str, unique: list[str], **extra: Any) -> dict[str, Any]:
    """A locator bundle as engine.locators records it."""
    return {
        "v": 1,
        "tag": tag,
        "role": role,
        "name": name,
        "testid": extra.pop("testid", ""),
        "testid_attr": "data-testid",
        "label": extra.pop("label", ""),
        "placeholder": extra.pop("placeholder", ""),
        "text": extra.pop("text", ""),
        "context": "",
        "attributes": extra.pop("attributes", {}),
        "css": extra.pop("css", ""),
        "xpath": extra.pop("xpath", ""),
        "fingerprint": {"tag": tag, "role": role, "name": name},
        "visible": True,
        "nth": 0,
        "lookalikes": 1,
        "unique": unique,
    }


EMAIL_FIELD = bundle(
    "input", "textbox", "Email", ["id", "label"], label="Email", attributes={"id": "email", "type": "email"}
)
PLAN_SELECT = bundle("select", "combobox", "Plan", ["label"], label="Plan")
SIGN_UP = bundle("button", "button", "Sign up", ["role", "text"], text="Sign up", css="form > button")
SIGN_UP_TESTID = bundle(
    "button", "button", "Sign up", ["testid", "role"], testid="signup", css="form > button"
)


def signup_steps(*, button: dict[str, Any] = SIGN_UP, label: str = "Sign up") -> list[dict[str, Any]]:
    return [
        {"action": "goto", "url": "https://shop.example/signup", "label": "Open the sign-up page"},
        {
            "action": "fill",
            "selector": "#email",
            "value": "{{params.email}}",
            "label": "Type the email",
            "locator": EMAIL_FIELD,
        },
        {
            "action": "select",
            "selector": "#plan",
            "value": "{{params.plan}}",
            "label": "Choose the plan",
            "locator": PLAN_SELECT,
        },
        {"action": "click", "selector": "button", "label": label, "locator": button},
        {"action": "assert_text", "text": "Welcome"},
    ]


SIGNUP_PARAMS = [
    {"name": "email", "type": "string", "example": "ann@example.com"},
    {"name": "plan", "type": "enum", "example": "pro", "options": ["free", "pro"]},
    {"name": "seats", "type": "number", "example": 3},
    {"name": "newsletter", "type": "boolean", "example": False},
]


def make_skill(
    tenant: Any, *, slug: str = "sign-up", name: str = "Sign up a customer", user: Any = None
) -> Skill:
    return Skill.objects.create(
        tenant=tenant, slug=slug, name=name, url="https://shop.example/signup", created_by=user
    )


def add_version(
    skill: Skill,
    *,
    steps: list[dict[str, Any]] | None = None,
    params: list[dict[str, Any]] | None = None,
    changed_steps: list[int] | None = None,
    source_run: Run | None = None,
) -> SkillVersion:
    number = skill.latest_version + 1
    version = SkillVersion.objects.create(
        skill=skill,
        tenant=skill.tenant,
        version=number,
        steps=steps if steps is not None else signup_steps(),
        params=params if params is not None else SIGNUP_PARAMS,
        changed_steps=changed_steps or [],
        source_run=source_run,
    )
    Skill.objects.filter(pk=skill.pk).update(latest_version=number)
    skill.latest_version = number
    return version


def finished_run(
    version: SkillVersion | None,
    *,
    tenant: Any = None,
    status: str = RunStatus.COMPLETED,
    seconds: float | None = 2.0,
    ago: timedelta = timedelta(hours=1),
    user: Any = None,
) -> Run:
    """A run of ``version`` created ``ago`` that took ``seconds`` (None: still running)."""
    created = timezone.now() - ago
    run = Run.objects.create(
        tenant=tenant if tenant is not None else version.tenant,  # type: ignore[union-attr]
        created_by=user,
        goal="Sign up a customer",
        url="https://shop.example/signup",
        program=version.steps if version else [{"action": "goto", "url": "https://shop.example/"}],
        step_total=len(version.steps) if version else 1,
        skill_version=version,
        planner="skill" if version else None,
        status=status,
        started_at=created,
        finished_at=created + timedelta(seconds=seconds) if seconds is not None else None,
    )
    Run.objects.filter(pk=run.pk).update(created_at=created)
    run.refresh_from_db()
    if seconds is not None:  # its steps, done one after the other (the run's browser time)
        share = timedelta(seconds=seconds) / max(len(run.program), 1)
        for i, step in enumerate(run.program):
            Step.objects.create(
                run=run,
                index=i + 1,
                action=step["action"],
                label=step.get("label", ""),
                status=StepStatus.DONE if status == RunStatus.COMPLETED else StepStatus.FAILED,
                started_at=created + share * i,
                finished_at=created + share * (i + 1),
            )
    return run
