"""``/api/webhooks``: endpoints (the secret is shown once), their deliveries and attempts."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from runs.serializers import ErrorSerializer, StrictCharField
from tenants.access import access_for
from tenants.models import Role, Tenant
from twin_site import limits
from twin_site.api import ApiError, json_object

from .models import EVENT_TYPES, Attempt, Delivery, Endpoint
from .services import (
    EndpointInvalid,
    delivery_redeliver,
    endpoint_create,
    endpoint_delete,
    endpoint_rotate_secret,
    endpoint_update,
)

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


class EndpointInSerializer(serializers.Serializer[Any]):
    url = StrictCharField(max_length=limits.MAX_WEBHOOK_URL, validators=[limits.one_line])
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=list(EVENT_TYPES)),
        max_length=len(EVENT_TYPES),
        required=False,
        default=list,
    )
    description = StrictCharField(
        max_length=limits.MAX_DESCRIPTION,
        validators=[limits.one_line],
        required=False,
        default="",
        allow_blank=True,
    )


class EndpointPatchSerializer(serializers.Serializer[Any]):
    url = StrictCharField(max_length=limits.MAX_WEBHOOK_URL, validators=[limits.one_line], required=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=list(EVENT_TYPES)), max_length=len(EVENT_TYPES), required=False
    )
    enabled = serializers.BooleanField(required=False)


class EndpointSerializer(serializers.ModelSerializer[Endpoint]):
    class Meta:
        model = Endpoint
        fields = [
            "id",
            "url",
            "description",
            "events",
            "enabled",
            "disabled_reason",
            "failure_streak",
            "last_success_at",
            "last_failure_at",
            "created_at",
        ]


class EndpointCreatedSerializer(EndpointSerializer):
    secret = serializers.CharField(help_text="The signing secret (whsec_…): shown this once.")

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]


class SecretSerializer(serializers.Serializer[Any]):
    secret = serializers.CharField()


class AttemptSerializer(serializers.ModelSerializer[Attempt]):
    class Meta:
        model = Attempt
        fields = ["number", "started_at", "duration_ms", "status_code", "ok", "error", "response_excerpt"]


class DeliverySerializer(serializers.ModelSerializer[Delivery]):
    webhook_id = serializers.CharField(source="message_id")
    attempt_log = AttemptSerializer(many=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "webhook_id",
            "event_type",
            "run_id",
            "status",
            "attempts",
            "next_attempt_at",
            "created_at",
            "delivered_at",
            "attempt_log",
        ]


def _endpoint(tenant: Tenant, pk: Any) -> Endpoint:
    endpoint = Endpoint.objects.filter(tenant=tenant, pk=pk).first()
    if endpoint is None:
        raise ApiError("not_found", "no such webhook endpoint", http_status=404)
    return endpoint


class WebhooksView(APIView):
    @extend_schema(responses={200: EndpointSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        access = access_for(request)
        return Response(EndpointSerializer(Endpoint.objects.filter(tenant=access.tenant), many=True).data)

    @extend_schema(request=EndpointInSerializer, responses={201: EndpointCreatedSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        access = access_for(request)
        access.require(Role.OPERATOR)
        body = EndpointInSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        try:
            endpoint, secret = endpoint_create(tenant=access.tenant, actor=access.user, **body.validated_data)
        except EndpointInvalid as exc:
            raise ApiError(f"invalid_{exc.field}", exc.detail) from None
        data = {**EndpointSerializer(endpoint).data, "secret": secret}
        return Response(data, status=status.HTTP_201_CREATED)


class WebhookDetailView(APIView):
    @extend_schema(responses={200: EndpointSerializer, **ERRORS})
    def get(self, request: Request, pk: str) -> Response:
        access = access_for(request)
        return Response(EndpointSerializer(_endpoint(access.tenant, pk)).data)

    @extend_schema(request=EndpointPatchSerializer, responses={200: EndpointSerializer, **ERRORS})
    def patch(self, request: Request, pk: str) -> Response:
        access = access_for(request)
        endpoint = _endpoint(access.tenant, pk)
        access.require(Role.OPERATOR)
        body = EndpointPatchSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        try:
            endpoint = endpoint_update(endpoint=endpoint, actor=access.user, **body.validated_data)
        except EndpointInvalid as exc:
            raise ApiError(f"invalid_{exc.field}", exc.detail) from None
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(request=None, responses={204: None, **ERRORS})
    def delete(self, request: Request, pk: str) -> Response:
        access = access_for(request)
        endpoint = _endpoint(access.tenant, pk)
        access.require(Role.OPERATOR)
        endpoint_delete(endpoint=endpoint, actor=access.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookRotateView(APIView):
    @extend_schema(request=None, responses={200: SecretSerializer, **ERRORS})
    def post(self, request: Request, pk: str) -> Response:
        access = access_for(request)
        endpoint = _endpoint(access.tenant, pk)
        access.require(Role.OPERATOR)
        return Response({"secret": endpoint_rotate_secret(endpoint=endpoint, actor=access.user)})


class DeliveriesView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("status", str)],
        responses={200: DeliverySerializer(many=True), **ERRORS},
    )
    def get(self, request: Request, pk: str) -> Response:
        access = access_for(request)
        endpoint = _endpoint(access.tenant, pk)
        deliveries = endpoint.deliveries.prefetch_related("attempt_log").order_by("-created_at")
        wanted = request.query_params.get("status")
        if wanted:
            deliveries = deliveries.filter(status=wanted)
        try:
            limit = max(1, min(int(request.query_params.get("limit", 50)), 500))
        except ValueError:
            raise ApiError("invalid_limit", "limit must be a whole number from 1 to 500") from None
        return Response(DeliverySerializer(deliveries[:limit], many=True).data)


class RedeliverView(APIView):
    @extend_schema(request=None, responses={202: DeliverySerializer, **ERRORS})
    def post(self, request: Request, pk: str, delivery_id: str) -> Response:
        access = access_for(request)
        endpoint = _endpoint(access.tenant, pk)
        access.require(Role.OPERATOR)
        delivery = endpoint.deliveries.filter(pk=delivery_id).first()
        if delivery is None:
            raise ApiError("not_found", "no such delivery", http_status=404)
        delivery = delivery_redeliver(delivery=delivery, actor=access.user)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
