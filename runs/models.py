from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.models import Tenant


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


TERMINAL_STATUSES = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.REJECTED, RunStatus.CANCELLED, RunStatus.EXPIRED}
)
# What ``?wait=`` waits for: the run needs nobody but a human, or nobody at all.
SETTLED_STATUSES = TERMINAL_STATUSES | {RunStatus.AWAITING_APPROVAL}


class StepStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


class Run(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="runs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    goal = models.TextField(blank=True)
    url = models.CharField(max_length=2048, blank=True)
    program = models.JSONField(help_text="The validated step program.")
    step_total = models.PositiveIntegerField(default=0, help_text="How many steps the program has.")
    params = models.JSONField(default=dict, blank=True)
    # The skill version this run replays (null: a hand-written program or a planned run).
    skill_version = models.ForeignKey(
        "skills.SkillVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    # Who decided the steps: null (a hand-written program), "skill" (a replay) or "model" (the agent).
    planner = models.CharField(max_length=16, null=True, blank=True)
    model_calls = models.PositiveIntegerField(default=0)
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    # The agent's state (engine.planner): {"rounds": n, "finished": bool, "summary": str,
    # "paused_for": "limit" | "errors" | "model" | ""}; empty for runs no model plans.
    plan = models.JSONField(default=dict, blank=True)
    # What the run cost (runs.cost), kept when it ended: at the tenant's prices of that moment.
    cost_final = models.JSONField(null=True, blank=True, editable=False)
    record_video = models.BooleanField(
        default=True, help_text="Record the session video (when TWIN_VIDEO is on)."
    )
    status = models.CharField(max_length=32, choices=RunStatus.choices, default=RunStatus.QUEUED)
    current_step = models.PositiveIntegerField(default=0, help_text="1-based index of the step at hand.")
    resumed_from = models.PositiveIntegerField(null=True, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    # Where the run's page lives while it is parked; empty when it has none.
    host = models.CharField(max_length=200, blank=True)
    browser_context_id = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    # What a restore needs (cookies, storage, URL), encrypted: cookies are credentials.
    checkpoint = models.TextField(blank=True)
    checkpoint_step = models.PositiveIntegerField(default=0)
    # What the run's executions typed from the vault or from a human (engine.scrub), sealed, so a
    # later execution keeps them out of what it records too; erased when the run ends.
    scrub_sealed = models.TextField(blank=True)

    # Which task execution owns the run; a crashed owner's lease is taken over.
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    # The head of the run's event hash chain: how many events it has, and the last one's hash.
    # A deleted or rewritten latest event no longer matches it (``manage.py verifyaudit``).
    audit_seq = models.PositiveIntegerField(default=0)
    audit_head = models.CharField(max_length=64, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="run_tenant_recent"),
            models.Index(fields=["tenant", "status", "-created_at"], name="run_tenant_status"),
            models.Index(fields=["status", "lease_until"], name="run_status_lease"),
            # Which tenant a free slot served least recently (runs.admission).
            models.Index(fields=["tenant", "-started_at"], name="run_tenant_started"),
        ]

    def __str__(self) -> str:
        return f"{self.goal[:40] or 'run'} ({self.status})"

    @property
    def step_count(self) -> int:
        return self.step_total or len(self.program)


class Step(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField()
    action = models.CharField(max_length=32)
    label = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=32, choices=StepStatus.choices, default=StepStatus.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The element the step acted on, described when it acted (engine.locators): what a skill
    # compiled from the run finds it by. Never the value typed into it.
    locator = models.JSONField(null=True, blank=True)
    # A skill replay that found the element by a fallback locator: which one ("" when the primary held).
    healed_by = models.CharField(max_length=32, blank=True)
    # A step the model planned: {"tool", "arguments", "intent", "calls", "errors", "tokens_in",
    # "tokens_out", "latency_ms", "policy"?, "answer"?}; null for a written or replayed step.
    planned = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="one_step_per_index")]

    def __str__(self) -> str:
        return f"{self.index}. {self.label or self.action} ({self.status})"


class AppendOnlyQuerySet(models.QuerySet["RunEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise RuntimeError("run events are append-only")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise RuntimeError("run events are append-only")


class RunEvent(models.Model):
    """Append-only: every status change, step start/finish, pause and decision.

    Each event carries ``hash`` = HMAC-SHA256, keyed from the master key (``runs.audit``), over
    its content and the previous event's hash in the same run (``prev_hash``), so an edited,
    removed or inserted event breaks the chain.
    """

    # PROTECT throughout: deleting a run, a tenant or a user must not take its trail with it
    # (deactivate users instead).
    run = models.ForeignKey(Run, on_delete=models.PROTECT, related_name="events")
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    seq = models.PositiveIntegerField(help_text="1-based position in the run's trail.")
    type = models.CharField(max_length=64)
    step_index = models.PositiveIntegerField(null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "id"], name="event_run_order")]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="one_event_per_run_seq")]

    def __str__(self) -> str:
        return f"{self.type} @ {self.created_at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise RuntimeError("run events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise RuntimeError("run events are append-only")


class RecordingStatus(models.TextChoices):
    RECORDING = "recording", "Recording"
    ENCODING = "encoding", "Encoding"
    READY = "ready", "Ready"
    EMPTY = "empty", "No frames"
    FAILED = "failed", "Failed"
    PURGED = "purged", "Deleted by retention"


class Recording(models.Model):
    """The session video of a run: its segments joined into one file, paused time cut out."""

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="recording")
    status = models.CharField(
        max_length=16, choices=RecordingStatus.choices, default=RecordingStatus.RECORDING
    )
    path = models.CharField(max_length=500, blank=True, help_text="Storage path of the video file.")
    content_type = models.CharField(max_length=64, blank=True)
    duration = models.FloatField(default=0, help_text="Seconds of video (paused time is cut out).")
    size = models.PositiveBigIntegerField(default=0)
    frames = models.PositiveIntegerField(default=0)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    # [{"step_index", "offset", "label"}]: where each step starts in the video, in seconds.
    chapters = models.JSONField(default=list, blank=True)
    # [{"offset", "paused_seconds", "approval_id"}]: where the video joins across a pause.
    pauses = models.JSONField(default=list, blank=True)
    encode_seconds = models.FloatField(default=0, help_text="CPU seconds spent encoding.")
    sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"video of {self.run_id} ({self.status})"


class VideoSegment(models.Model):
    """Frames of one execution (start to pause, resume to end) as recorded, before joining."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="video_segments")
    seq = models.PositiveIntegerField()
    path = models.CharField(max_length=500, help_text="Storage path of the raw (MJPEG) segment.")
    host = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    duration = models.FloatField(default=0)
    frames = models.PositiveIntegerField(default=0)
    size = models.PositiveBigIntegerField(default=0)
    # [{"step_index", "t"}]: when each step started, in seconds from the segment's start.
    marks = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="one_segment_per_run_seq")]

    def __str__(self) -> str:
        return f"segment {self.seq} of {self.run_id}"
