from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, prefetch_related_objects
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from runs.serializers import ErrorSerializer, PauseFields
from tenants.access import access_for
from twin_site.api import ApiError

from .models import Approval, ApprovalStatus, ApprovalVote
from .selectors import ORDERS, beyond, cursor_for, ordered, parse_cursor


class ApprovalListSerializer(serializers.ListSerializer[Approval]):
    """A page of approvals: their votes (who approved) in one query, not one an approval."""

    def to_representation(self, data: Any) -> list[Any]:
        items = list(data.all() if hasattr(data, "all") else data)
        prefetch_related_objects(
            items, Prefetch("votes", queryset=ApprovalVote.objects.select_related("user"))
        )
        return super().to_representation(items)


class ApprovalSerializer(PauseFields, serializers.ModelSerializer[Approval]):
    run_id = serializers.UUIDField()
    decided_by = serializers.SerializerMethodField()
    screenshot_url = serializers.SerializerMethodField()
    decision_url = serializers.SerializerMethodField()
    index = serializers.IntegerField(source="step_index")
    approvals = serializers.SerializerMethodField()
    approvers = serializers.SerializerMethodField()
    escalate_to = serializers.SerializerMethodField()

    class Meta:
        model = Approval
        list_serializer_class = ApprovalListSerializer
        fields = [
            "id",
            "run_id",
            "index",
            "step_count",
            "action",
            "cause",
            "trigger",
            "kind",
            "prompt",
            "options",
            "pattern",
            "page_url",
            "page_title",
            "page_text",
            "screenshot_url",
            "decision_url",
            "status",
            "decision",
            "approvals",
            "approvers",
            "escalate_at",
            "escalate_to",
            "escalated_at",
            "created_at",
            "expires_at",
            "decided_at",
            "decided_by",
            "channel",
            "token_name",
            "choice",
            "note",
            "input_supplied",
            "input_length",
            "input_matched_pattern",
        ]

    def get_decided_by(self, approval: Approval) -> str | None:
        return approval.decided_by.get_username() if approval.decided_by else None

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_escalate_to(self, approval: Approval) -> list[str] | str | None:
        if approval.escalate_at is None:
            return None
        return approval.escalate_to if approval.escalate_to is not None else "role:approver"


class ApprovalsView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=ApprovalStatus.values),
            OpenApiParameter("limit", int),
            OpenApiParameter(
                "order",
                str,
                enum=list(ORDERS),
                description="newest (the default): newest first; oldest: oldest first; urgent: soonest "
                "expiry first, one-time codes first among equal expiries, then oldest",
            ),
            OpenApiParameter(
                "cursor",
                str,
                description='Where a page starts: the value the previous page\'s `Link: <…>; rel="next"` '
                "carries (follow that link rather than building one).",
            ),
        ],
        responses={200: ApprovalSerializer(many=True), 400: ErrorSerializer, 401: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        access = access_for(request)
        approvals = Approval.objects.filter(tenant=access.tenant).select_related("decided_by")
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in ApprovalStatus.values:
                raise ApiError("invalid_status", f"status must be one of {', '.join(ApprovalStatus.values)}")
            approvals = approvals.filter(status=wanted)
        try:
            limit = max(1, min(int(request.query_params.get("limit", 100)), 500))
        except ValueError:
            raise ApiError("invalid_limit", "limit must be a whole number from 1 to 500") from None
        order = request.query_params.get("order", "newest")
        if order not in ORDERS:
            raise ApiError("invalid_order", f"order must be one of {', '.join(ORDERS)}")
        approvals = ordered(approvals, ORDERS[order])
        raw_cursor = request.query_params.get("cursor")
        if raw_cursor is not None:
            cursor = parse_cursor(raw_cursor, ORDERS[order])
            if cursor is None or cursor.direction != "next":
                raise ApiError("invalid_cursor", "cursor is not one this listing gave (with this order)")
            approvals = approvals.filter(beyond(ORDERS[order], cursor.values))
        page = list(approvals[: limit + 1])
        response = Response(ApprovalSerializer(page[:limit], many=True, context={"request": request}).data)
        if len(page) > limit:
            query = request.query_params.copy()
            query["limit"] = str(limit)
            query["cursor"] = cursor_for(ORDERS[order], page[limit - 1], "next")
            url = request.build_absolute_uri(request.path)
            response["Link"] = f'<{url}?{query.urlencode()}>; rel="next"'
        return response
