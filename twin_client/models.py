"""What the API answers, as dataclasses; ``raw`` keeps every field (the API may add some)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SETTLED = frozenset({"awaiting_approval", "completed", "failed", "rejected", "cancelled", "expired"})
TERMINAL = SETTLED - {"awaiting_approval"}


@dataclass
class Step:
    index: int
    action: str
    status: str
    label: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Step:
        return cls(
            index=data["index"],
            action=data.get("action", ""),
            status=data.get("status", ""),
            label=data.get("label", "") or "",
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            raw=data,
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
            raw=data,
        )


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
    created_at: str | None = None
    updated_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def settled(self) -> bool:
        """Paused for a person, or over: nothing happens until someone acts (or ever)."""
        return self.status in SETTLED

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Run:
        pending = data.get("pending_step")
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
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
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
