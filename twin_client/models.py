"""What the API answers, as dataclasses; ``raw`` keeps every field (the API may add some)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SETTLED = frozenset({"awaiting_approval", "completed", "failed", "rejected", "cancelled", "expired"})
TERMINAL = SETTLED - {"awaiting_approval"}


@dataclass(frozen=True)
class PlannedStep:
    """What the agent's model decided for a step: the tool it called and what that took.

    ``intent`` is the step's label (for ``done``, its summary); ``errors`` are why earlier calls
    for this step were refused; ``policy`` says why a person must decide before it acts (e.g.
    "'Pay $42.00' matches the policy pattern 'pay'"), ``answer`` is an ``ask_human`` step's answer.
    """

    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)
    intent: str = ""
    calls: int = 0
    errors: list[str] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: int = 0
    policy: str | None = None
    answer: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> PlannedStep:
        arguments, errors = data.get("arguments"), data.get("errors")
        return cls(
            tool=str(data.get("tool", "")),
            arguments=dict(arguments) if isinstance(arguments, dict) else {},
            intent=str(data.get("intent") or ""),
            calls=_int(data.get("calls")) or 0,
            errors=[str(e) for e in errors] if isinstance(errors, list) else [],
            tokens_in=_int(data.get("tokens_in")) or 0,
            tokens_out=_int(data.get("tokens_out")) or 0,
            latency_ms=_int(data.get("latency_ms")) or 0,
            policy=data.get("policy") or None,
            answer=data.get("answer"),
            raw=data,
        )


@dataclass
class Step:
    index: int
    action: str
    status: str
    label: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    planned: PlannedStep | None = None  # None unless the agent's model planned the step
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Step:
        planned = data.get("planned")
        return cls(
            index=data["index"],
            action=data.get("action", ""),
            status=data.get("status", ""),
            label=data.get("label", "") or "",
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            planned=PlannedStep.from_api(planned) if isinstance(planned, dict) else None,
            raw=data,
        )


@dataclass(frozen=True)
class Approvals:
    """How many approvals a pause needs (its gate's ``required``), has so far, and from whom.

    With ``required`` > 1 an approve that is not the last leaves the run ``awaiting_approval``;
    the same person approving again is a ``Conflict`` (``AlreadyApproved``)."""

    required: int = 1
    given: int = 0
    by: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return max(self.required - self.given, 0)

    @classmethod
    def from_api(cls, data: Any) -> Approvals:
        if not isinstance(data, dict):
            return cls()
        by = data.get("by")
        return cls(
            required=_int(data.get("required")) or 1,
            given=_int(data.get("given")) or 0,
            by=[str(name) for name in by] if isinstance(by, list) else [],
        )


@dataclass
class PendingStep:
    """The step a paused run waits at, and what the person deciding is shown."""

    index: int
    action: str
    trigger: str
    kind: str
    prompt: str
    options: list[str] | None
    approval_id: str
    page_url: str = ""
    screenshot_url: str | None = None
    decision_url: str | None = None
    pattern: str = ""
    expires_at: str | None = None
    # Required / given / by; an older server says nothing: one approval, none given yet.
    approvals: Approvals = field(default_factory=Approvals)
    # Who may decide: usernames, or "role:approver" (every approver of the tenant).
    approvers: list[str] | str = "role:approver"
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> PendingStep:
        return cls(
            index=data["index"],
            action=data.get("action", ""),
            trigger=data.get("trigger", ""),
            kind=data.get("kind", ""),
            prompt=data.get("prompt", ""),
            options=data.get("options"),
            approval_id=str(data.get("approval_id", "")),
            page_url=data.get("page_url", ""),
            screenshot_url=data.get("screenshot_url"),
            decision_url=data.get("decision_url"),
            pattern=data.get("pattern", "") or "",
            expires_at=data.get("expires_at"),
            approvals=Approvals.from_api(data.get("approvals")),
            approvers=_approvers(data.get("approvers")),
            raw=data,
        )


def _approvers(value: Any) -> list[str] | str:
    if isinstance(value, list):
        return [str(name) for name in value]
    return value if isinstance(value, str) and value else "role:approver"


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _ints(values: Any) -> list[int]:
    return [int(v) for v in values or [] if isinstance(v, (int, float)) or str(v).isdigit()]


@dataclass(frozen=True)
class RunCost:
    """What a run cost; a server that does not report a figure leaves it None."""

    wall_s: float | None = None
    browser_s: float | None = None
    steps: int | None = None
    pauses: int | None = None
    human_wait_s: float | None = None
    model_calls: int | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    amount: float | None = None  # in ``currency``, at the tenant's prices
    currency: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> RunCost:
        return cls(
            wall_s=_float(data.get("wall_s")),
            browser_s=_float(data.get("browser_s")),
            steps=_int(data.get("steps")),
            pauses=_int(data.get("pauses")),
            human_wait_s=_float(data.get("human_wait_s")),
            model_calls=_int(data.get("model_calls")),
            tokens_in=_int(data.get("tokens_in")),
            tokens_out=_int(data.get("tokens_out")),
            amount=_float(data.get("amount")),
            currency=data.get("currency"),
            raw=data,
        )


@dataclass(frozen=True)
class RunSkill:
    """The skill version a run replays."""

    slug: str
    version: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> RunSkill:
        return cls(slug=str(data.get("slug", "")), version=_int(data.get("version")), raw=data)


@dataclass
class Run:
    id: str
    status: str
    goal: str = ""
    url: str = ""
    current_step: int = 0
    resumed_from: int | None = None
    steps: list[Step] = field(default_factory=list)
    pending_step: PendingStep | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    video_url: str | None = None
    poster_url: str | None = None  # the video's picture before it plays
    created_at: str | None = None
    updated_at: str | None = None
    cost: RunCost | None = None  # None from a server that does not report it
    planner: str | None = None  # None (the request's steps), "model" (the agent) or "skill" (a replay)
    skill: RunSkill | None = None  # the skill version it replays, if any
    summary: str | None = None  # a run the agent planned: the model's summary when it finished
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def settled(self) -> bool:
        """Paused for a person, or over: nothing happens until someone acts (or ever)."""
        return self.status in SETTLED

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def approvals(self) -> Approvals | None:
        """The pending pause's approvals (required, given, by); None unless the run is paused."""
        return self.pending_step.approvals if self.pending_step is not None else None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Run:
        pending = data.get("pending_step")
        cost, skill = data.get("cost"), data.get("skill")
        return cls(
            id=str(data["id"]),
            status=data["status"],
            goal=data.get("goal", ""),
            url=data.get("url", ""),
            current_step=data.get("current_step", 0),
            resumed_from=data.get("resumed_from"),
            steps=[Step.from_api(s) for s in data.get("steps") or []],
            pending_step=PendingStep.from_api(pending) if pending else None,
            outputs=dict(data.get("outputs") or {}),
            error=data.get("error"),
            video_url=data.get("video_url"),
            poster_url=data.get("poster_url"),
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
            cost=RunCost.from_api(cost) if isinstance(cost, dict) else None,
            planner=data.get("planner"),
            skill=RunSkill.from_api(skill) if isinstance(skill, dict) else None,
            summary=data.get("summary") or None,
            raw=data,
        )


@dataclass(frozen=True)
class RunEvent:
    """One entry of a run's trail (``GET /api/runs/{id}/events``), as webhooks carry it."""

    id: int
    event: str  # e.g. "run.queued", "step.finished", "approval.decided", "step.healed"
    step: int | None = None
    actor: str | None = None  # a username; None when Twin itself did it
    at: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> RunEvent:
        return cls(
            id=int(data["id"]),
            event=str(data.get("event", "")),
            step=_int(data.get("step")),
            actor=data.get("actor"),
            at=data.get("at"),
            data=dict(data.get("data") or {}),
            raw=data,
        )


@dataclass(frozen=True)
class SkillParam:
    """A parameter of a skill: ``type`` is "string", "number", "boolean" or "enum" (``options``)."""

    name: str
    type: str = "string"
    example: Any = None
    options: list[Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> SkillParam:
        options = data.get("options")
        return cls(
            name=str(data.get("name", "")),
            type=str(data.get("type") or "string"),
            example=data.get("example"),
            options=list(options) if isinstance(options, list) else None,
            raw=data,
        )


def _params(values: Any) -> list[SkillParam]:
    return [SkillParam.from_api(p) for p in values or [] if isinstance(p, dict)]


def _steps(values: Any) -> list[dict[str, Any]]:
    return [dict(s) for s in values or [] if isinstance(s, dict)]


@dataclass(frozen=True)
class SkillVersion:
    """One immutable version of a skill: its step program and parameters."""

    id: str  # the skill's id
    version_id: str
    slug: str
    name: str
    version: int
    params: list[SkillParam] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    changed_steps: list[int] = field(default_factory=list)  # indexes that differ from the previous one
    source_run: str | None = None  # the run it was compiled from
    created_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> SkillVersion:
        source = data.get("source_run")
        return cls(
            id=str(data.get("id", "")),
            version_id=str(data.get("version_id", "")),
            slug=str(data.get("slug", "")),
            name=str(data.get("name", "")),
            version=_int(data.get("version")) or 0,
            params=_params(data.get("params")),
            steps=_steps(data.get("steps")),
            changed_steps=_ints(data.get("changed_steps")),
            source_run=str(source) if source is not None else None,
            created_at=data.get("created_at"),
            raw=data,
        )


@dataclass(frozen=True)
class SkillSuggestion:
    """A literal of the run that looks like it should be a parameter (an email, a card number)."""

    name: str
    literal: str
    reason: str = ""
    steps: list[int] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> SkillSuggestion:
        return cls(
            name=str(data.get("name", "")),
            literal=str(data.get("literal", "")),
            reason=str(data.get("reason", "") or ""),
            steps=_ints(data.get("steps")),
            raw=data,
        )


@dataclass(frozen=True)
class SkillPreview:
    """What compiling a run would give, before anything is stored."""

    slug: str
    name: str
    version: int  # the number the new version would get
    params: list[SkillParam] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    changed_steps: list[int] = field(default_factory=list)
    suggested: list[SkillSuggestion] = field(default_factory=list)
    left_out: list[int] = field(default_factory=list)  # steps of the run that the skill leaves out
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> SkillPreview:
        return cls(
            slug=str(data.get("slug", "")),
            name=str(data.get("name", "")),
            version=_int(data.get("version")) or 0,
            params=_params(data.get("params")),
            steps=_steps(data.get("steps")),
            changed_steps=_ints(data.get("changed_steps")),
            suggested=[
                SkillSuggestion.from_api(s) for s in data.get("suggested") or [] if isinstance(s, dict)
            ],
            left_out=_ints(data.get("left_out")),
            raw=data,
        )


@dataclass(frozen=True)
class SkillStats:
    runs: int = 0
    completed: int = 0
    success_rate: float | None = None  # None before its first run
    median_duration_s: float | None = None
    last_run_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> SkillStats:
        return cls(
            runs=_int(data.get("runs")) or 0,
            completed=_int(data.get("completed")) or 0,
            success_rate=_float(data.get("success_rate")),
            median_duration_s=_float(data.get("median_duration_s")),
            last_run_at=data.get("last_run_at"),
            raw=data,
        )


@dataclass(frozen=True)
class Skill:
    """A skill with its newest version inline (``version``, ``params``, ``steps``)."""

    id: str
    slug: str
    name: str
    version: int
    params: list[SkillParam] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    goal: str = ""
    url: str = ""
    archived: bool = False
    archived_at: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    stats: SkillStats | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Skill:
        stats = data.get("stats")
        return cls(
            id=str(data["id"]),
            slug=str(data.get("slug", "")),
            name=str(data.get("name", "")),
            version=_int(data.get("version")) or 0,
            params=_params(data.get("params")),
            steps=_steps(data.get("steps")),
            goal=str(data.get("goal", "") or ""),
            url=str(data.get("url", "") or ""),
            archived=bool(data.get("archived", False)),
            archived_at=data.get("archived_at"),
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
            stats=SkillStats.from_api(stats) if isinstance(stats, dict) else None,
            raw=data,
        )


@dataclass
class Approval:
    id: str
    run_id: str
    index: int
    status: str
    trigger: str
    kind: str
    prompt: str
    decided_by: str | None = None
    channel: str = ""
    # In the pause's own words: approved, rejected, answered, chosen, retry, skip, fail, expired,
    # cancelled ("" while pending, or from an older server).
    decision: str = ""
    approvals: Approvals = field(default_factory=Approvals)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Approval:
        return cls(
            id=str(data["id"]),
            run_id=str(data.get("run_id", "")),
            index=data.get("index", 0),
            status=data.get("status", ""),
            trigger=data.get("trigger", ""),
            kind=data.get("kind", ""),
            prompt=data.get("prompt", ""),
            decided_by=data.get("decided_by"),
            channel=data.get("channel", "") or "",
            decision=data.get("decision", "") or "",
            approvals=Approvals.from_api(data.get("approvals")),
            raw=data,
        )


@dataclass
class Secret:
    name: str
    kind: str
    version: int
    origins: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Secret:
        return cls(
            data["name"],
            data.get("kind", ""),
            data.get("version", 0),
            list(data.get("origins") or []),
            raw=data,
        )


@dataclass
class WebhookEndpoint:
    id: str
    url: str
    events: list[str]
    enabled: bool = True
    secret: str | None = None  # only right after creating it
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> WebhookEndpoint:
        return cls(
            id=str(data["id"]),
            url=data.get("url", ""),
            events=list(data.get("events") or []),
            enabled=bool(data.get("enabled", True)),
            secret=data.get("secret"),
            raw=data,
        )
