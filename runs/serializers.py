from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from approvals.models import Approval, GateKind, Trigger
from twin_site import limits

from .cost import run_cost
from .models import Run, Step
from .program import ACTIONS, FIELD_LIMITS, GATE_KINDS, MAX_EXPIRES_IN, MAX_STEPS, MAX_TIMEOUT, TRIGGERS


class PlannedSerializer(serializers.Serializer[Any]):
    tool = serializers.CharField(help_text="The tool the model called.")
    arguments = serializers.DictField(help_text="Its arguments (scrubbed).")
    intent = serializers.CharField(help_text="What the model said the action is for (the step's label).")
    calls = serializers.IntegerField(help_text="Model calls it took (refused calls included).")
    errors = serializers.ListField(  # type: ignore[assignment]
        child=serializers.CharField(), help_text="Why earlier calls were refused."
    )
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    latency_ms = serializers.IntegerField()
    policy = serializers.CharField(required=False, help_text="Why a person must decide first, if they must.")
    answer = serializers.CharField(required=False, help_text="An ask_human step: the person's answer.")


PLANNED_KEYS = ("tool", "arguments", "intent", "calls", "errors", "tokens_in", "tokens_out", "latency_ms")


class StepSerializer(serializers.ModelSerializer[Step]):
    healed_by = serializers.SerializerMethodField(
        help_text="A skill replay that found the element by a fallback locator: which one (else null)."
    )
    planned = serializers.SerializerMethodField(help_text="A step the model planned: its call (else null).")

    class Meta:
        model = Step
        fields = [
            "index",
            "action",
            "label",
            "status",
            "attempts",
            "started_at",
            "finished_at",
            "healed_by",
            "planned",
        ]

    def get_healed_by(self, step: Step) -> str | None:
        return step.healed_by or None

    @extend_schema_field(PlannedSerializer(allow_null=True))
    def get_planned(self, step: Step) -> dict[str, Any] | None:
        planned = step.planned
        if not isinstance(planned, dict):
            return None
        out = {key: planned.get(key) for key in PLANNED_KEYS}
        for key in ("policy", "answer"):
            if planned.get(key):
                out[key] = planned[key]
        return out


def decision_url(approval: Approval, request: Any) -> str | None:
    from approvals.links import link_path

    if approval.status != "pending":
        return None
    path = link_path(approval)
    return request.build_absolute_uri(path) if request is not None else path


def screenshot_url(approval: Approval, request: Any) -> str | None:
    if not approval.screenshot:
        return None
    path = reverse("api-screenshot", args=[approval.pk])
    return request.build_absolute_uri(path) if request is not None else path


class ApprovalsCountSerializer(serializers.Serializer[Any]):
    # DRF's metaclass takes declared fields off the class, so this shadows Field.required only for mypy.
    required = serializers.IntegerField()  # type: ignore[assignment]
    given = serializers.IntegerField()
    by = serializers.ListField(child=serializers.CharField())


# How a pause's links and rules read, the same in a run's ``pending_step`` and in ``/api/approvals``
# (each declares the fields, in its own order). (A comment: a docstring would become the schema's
# description of both.)
class PauseFields(serializers.Serializer[Approval]):
    def get_screenshot_url(self, approval: Approval) -> str | None:
        return screenshot_url(approval, self.context.get("request"))

    def get_decision_url(self, approval: Approval) -> str | None:
        return decision_url(approval, self.context.get("request"))

    @extend_schema_field(ApprovalsCountSerializer)
    def get_approvals(self, approval: Approval) -> dict[str, Any]:
        from approvals.services import approvals_of

        return approvals_of(approval)

    @extend_schema_field(serializers.JSONField())
    def get_approvers(self, approval: Approval) -> list[str] | str:
        return approval.approvers if approval.approvers is not None else "role:approver"


class PendingStepSerializer(PauseFields):
    index = serializers.IntegerField(source="step_index")
    action = serializers.CharField()
    trigger = serializers.ChoiceField(choices=Trigger.choices)
    kind = serializers.ChoiceField(choices=GateKind.choices)
    prompt = serializers.CharField()
    options = serializers.ListField(child=serializers.CharField(), allow_null=True)
    pattern = serializers.CharField(allow_blank=True)
    page_url = serializers.CharField()
    page_title = serializers.CharField()
    screenshot_url = serializers.SerializerMethodField()
    expires_at = serializers.DateTimeField()
    approval_id = serializers.UUIDField(source="pk")
    created_at = serializers.DateTimeField()
    decision_url = serializers.SerializerMethodField(
        help_text="A signed link to this pause for an email or chat: an approver signs in and decides."
    )
    approvals = serializers.SerializerMethodField(
        help_text="How many approvals the pause needs (the gate's required), has, and from whom."
    )
    approvers = serializers.SerializerMethodField(
        help_text='Who may decide: usernames, or "role:approver" (every approver of the tenant).'
    )


class CostSerializer(serializers.Serializer[Any]):
    """What a run cost (``runs.cost.run_cost``); seconds to the millisecond."""

    wall_s = serializers.FloatField(help_text="From the start (or creation) to the end, or to now.")
    browser_s = serializers.FloatField(
        help_text="The steps' durations (their last attempt), without time spent waiting for a human."
    )
    steps = serializers.IntegerField(help_text="Steps done.")
    pauses = serializers.IntegerField(help_text="Times the run paused for a human.")
    human_wait_s = serializers.FloatField(
        help_text="Time the pauses waited for a decision (an undecided one: until the end, or now)."
    )
    model_calls = serializers.IntegerField(help_text="Language model calls (0 for a replay).")
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    amount = serializers.FloatField(
        help_text="Browser minutes and 1,000s of tokens at the tenant's prices, in its currency."
    )
    currency = serializers.CharField(help_text="The tenant's currency, e.g. USD.")


class SkillRefSerializer(serializers.Serializer[Any]):
    slug = serializers.CharField()
    version = serializers.IntegerField()


class RunSerializer(serializers.ModelSerializer[Run]):
    steps = StepSerializer(many=True, read_only=True)
    outputs = serializers.DictField(
        child=serializers.JSONField(), read_only=True, help_text="What the run extracted, by name."
    )
    params = serializers.DictField(
        child=serializers.JSONField(), read_only=True, help_text="The parameters the run was given."
    )
    planner = serializers.ChoiceField(
        choices=["model", "skill"],
        allow_null=True,
        read_only=True,
        help_text="Who chose the steps: null (the request's program), model (the agent) or skill (a replay).",
    )
    skill = serializers.SerializerMethodField()
    summary = serializers.SerializerMethodField(
        help_text="A planned run: the model's summary when it finished."
    )
    cost = serializers.SerializerMethodField()
    step_count = serializers.IntegerField(read_only=True)
    pending_step = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    video_url = serializers.SerializerMethodField()
    poster_url = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "status",
            "goal",
            "url",
            "current_step",
            "step_count",
            "resumed_from",
            "steps",
            "pending_step",
            "outputs",
            "params",
            "error",
            "record_video",
            "video_url",
            "poster_url",
            "planner",
            "skill",
            "summary",
            "cost",
            "created_at",
            "updated_at",
            "started_at",
            "finished_at",
        ]

    @extend_schema_field(PendingStepSerializer(allow_null=True))
    def get_pending_step(self, run: Run) -> dict[str, Any] | None:
        if run.status != "awaiting_approval":
            return None
        pending = getattr(run, "pending_list", None)
        if pending is None:
            pending = list(run.approvals.filter(status="pending"))
        if not pending:
            return None
        return dict(PendingStepSerializer(pending[0], context=self.context).data)

    @extend_schema_field(SkillRefSerializer(allow_null=True))
    def get_skill(self, run: Run) -> dict[str, Any] | None:
        version = run.skill_version
        if version is None:
            return None
        return {"slug": version.skill.slug, "version": version.version}

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_summary(self, run: Run) -> str | None:
        return (run.plan or {}).get("summary") or None

    @extend_schema_field(CostSerializer)
    def get_cost(self, run: Run) -> dict[str, Any]:
        return run_cost(run)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_error(self, run: Run) -> str | None:
        return run.error or None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_video_url(self, run: Run) -> str | None:
        from .selectors import ready_recording

        if ready_recording(run) is None:
            return None
        path = reverse("api-run-video", args=[run.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_poster_url(self, run: Run) -> str | None:
        """The picture to show before the video plays (null while there is no video)."""
        url = self.get_video_url(run)
        return f"{url}/poster" if url else None


class StrictCharField(serializers.CharField):
    """A JSON string and nothing else: DRF's CharField would turn 123456 into "123456"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


# The step program's shape and limits, for the schema (runs.program validates it, all problems at once).
GATE_SCHEMA = {
    "type": "object",
    "required": ["kind"],
    "properties": {
        "kind": {"type": "string", "enum": list(GATE_KINDS)},
        "prompt": {"type": "string", "maxLength": limits.MAX_PROMPT},
        "trigger": {"type": "string", "enum": list(TRIGGERS)},
        "pattern": {
            "type": "string",
            "maxLength": limits.MAX_PATTERN,
            "description": "RE2 syntax (no backreferences or lookaround), matched against the whole input.",
        },
        "options": {
            "type": "array",
            "minItems": 1,
            "maxItems": limits.MAX_OPTIONS,
            "items": {"type": "string", "minLength": 1, "maxLength": limits.MAX_OPTION},
        },
        "expires_in": {"type": "integer", "minimum": 1, "maximum": MAX_EXPIRES_IN},
    },
    "additionalProperties": False,
}
STEP_SCHEMA = {
    "type": "object",
    "required": ["action"],
    "properties": {
        "action": {"type": "string", "enum": list(ACTIONS)},
        **{field: {"type": "string", "maxLength": limit} for field, (limit, _) in FIELD_LIMITS.items()},
        "timeout": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": MAX_TIMEOUT},
        "gate": GATE_SCHEMA,
        "locator": {
            "type": "object",
            "description": "A locator bundle recorded when a run acted on the element (docs/skills.md).",
        },
    },
    "additionalProperties": False,
}


@extend_schema_field(
    {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_STEPS,
        "items": STEP_SCHEMA,
        "description": "The step program (see docs/api.md); no control characters in one-line fields.",
    }
)
class StepsField(serializers.JSONField):
    pass


@extend_schema_field(
    {
        "type": "object",
        "maxProperties": limits.MAX_PARAMS,
        "additionalProperties": {
            "oneOf": [
                {"type": "string", "maxLength": limits.MAX_PARAM_VALUE},
                {"type": "number"},
                {"type": "boolean"},
            ]
        },
        "description": (
            f"Parameters for {{{{params.NAME}}}}: at most {limits.MAX_PARAMS}, each named by 1 to "
            f"{limits.MAX_PARAM_NAME} letters, digits and _."
        ),
    }
)
class ParamsField(serializers.DictField):
    pass


class RunCreateSerializer(serializers.Serializer[Any]):
    goal = StrictCharField(required=False, allow_blank=True, default="", max_length=limits.MAX_GOAL)
    url = StrictCharField(required=False, allow_blank=True, default="", max_length=limits.MAX_URL)
    steps = StepsField(required=False)
    skill = StrictCharField(required=False, max_length=limits.MAX_NAME, help_text="A skill's id or slug.")
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="With skill: the version to replay (default: the newest)."
    )
    params = ParamsField(required=False, default=dict)
    record_video = serializers.BooleanField(
        required=False,
        default=True,
        help_text="false: no session video for this run (e.g. a sensitive flow).",
    )

    plan = serializers.ChoiceField(
        choices=["auto", "always"],
        required=False,
        default="auto",
        help_text="A goal-only run: auto replays a skill that answers the goal if there is one, else the "
        "model plans it; always: the model plans it.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "skill" not in attrs and "steps" not in attrs and not (attrs.get("goal") and attrs.get("url")):
            raise serializers.ValidationError(
                {"steps": ["give steps (a step program), a skill, or a goal and a url (the agent plans it)"]}
            )
        return attrs


class DecisionSerializer(serializers.Serializer[Any]):
    input = StrictCharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=limits.MAX_INPUT
    )
    choice = StrictCharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=limits.MAX_CHOICE
    )
    note = StrictCharField(required=False, allow_blank=True, default="", max_length=limits.MAX_NOTE)


class RejectSerializer(serializers.Serializer[Any]):
    reason = StrictCharField(required=False, allow_blank=True, default="", max_length=limits.MAX_NOTE)


class ProblemSerializer(serializers.Serializer[Any]):
    step = serializers.IntegerField(allow_null=True)
    field = serializers.CharField()
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer[Any]):
    error = serializers.CharField(help_text="A stable code, e.g. `invalid_program`, `conflict`, `not_found`.")
    detail = serializers.CharField(help_text="What went wrong, in a sentence.")
    problems = ProblemSerializer(many=True, required=False, help_text="Each problem of an invalid request.")
    status = serializers.CharField(required=False, help_text="On a 409: the run's status now.")
