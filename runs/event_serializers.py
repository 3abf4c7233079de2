"""A run event as ``GET /api/runs/{id}/events`` shows it (and as webhooks carry its data)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .events import public_data
from .models import RunEvent


@extend_schema_field({"type": "object", "additionalProperties": {}})
class EventDataField(serializers.Field):
    """The event's data without the keys kept for the audit trail only (runs.events.PRIVATE_KEYS)."""

    def to_representation(self, value: Any) -> dict[str, Any]:
        return public_data(value if isinstance(value, dict) else {})


class RunEventSerializer(serializers.ModelSerializer[RunEvent]):
    event = serializers.CharField(
        source="type", read_only=True, help_text="e.g. run.queued, step.finished, run.completed, step.healed"
    )
    step = serializers.IntegerField(
        source="step_index", read_only=True, allow_null=True, help_text="The step it is about (1-based)."
    )
    # (a missing actor reads as null: allow_null turns the AttributeError of None.username into None)
    actor = serializers.CharField(
        source="actor.username", read_only=True, allow_null=True, help_text="Who did it; null: Twin."
    )
    at = serializers.DateTimeField(source="created_at", read_only=True)
    # (the metaclass takes declared fields off the class: this does not hide Serializer.data)
    data = EventDataField(read_only=True)  # type: ignore[assignment]

    class Meta:
        model = RunEvent
        fields = ["id", "event", "step", "actor", "at", "data"]
