from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from runs.serializers import ErrorSerializer, StrictCharField
from tenants.access import access_for
from tenants.models import Role
from twin_site import limits
from twin_site.api import ApiError, json_object

from .models import SecretKind, SecretVersion
from .selectors import secret_list
from .services import SecretError, secret_delete, secret_put


class SecretInSerializer(serializers.Serializer[SecretVersion]):
    # The name {{secrets.NAME}} uses: \Z, not $, which would let a trailing newline through.
    name = serializers.RegexField(
        r"^[A-Za-z_][A-Za-z0-9_]*\Z",
        max_length=limits.MAX_SECRET_NAME,
        error_messages={"invalid": "must start with a letter or _ and hold only letters, digits and _"},
    )
    value = StrictCharField(trim_whitespace=False, max_length=limits.MAX_SECRET_VALUE, write_only=True)
    kind = serializers.ChoiceField(choices=SecretKind.choices, default=SecretKind.PASSWORD)
    origins = serializers.ListField(
        child=StrictCharField(max_length=limits.MAX_ORIGIN, validators=[limits.one_line]),
        max_length=limits.MAX_ORIGINS,
        required=False,
        default=list,
    )


class SecretOutSerializer(serializers.ModelSerializer[SecretVersion]):
    class Meta:
        model = SecretVersion
        fields = ["name", "kind", "version", "origins", "created_at"]


class SecretsView(APIView):
    @extend_schema(responses={200: SecretOutSerializer(many=True), 401: ErrorSerializer})
    def get(self, request: Request) -> Response:
        access = access_for(request)
        return Response(SecretOutSerializer(secret_list(tenant=access.tenant), many=True).data)

    @extend_schema(request=SecretInSerializer, responses={201: SecretOutSerializer, 400: ErrorSerializer})
    def post(self, request: Request) -> Response:
        access = access_for(request)
        access.require(Role.OPERATOR)
        body = SecretInSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        try:
            version = secret_put(tenant=access.tenant, created_by=access.user, **body.validated_data)
        except SecretError as exc:
            raise ApiError("invalid_secret", str(exc)) from None
        return Response(SecretOutSerializer(version).data, status=status.HTTP_201_CREATED)


class SecretDetailView(APIView):
    @extend_schema(request=None, responses={204: None, 404: ErrorSerializer})
    def delete(self, request: Request, name: str) -> Response:
        access = access_for(request)
        access.require(Role.OPERATOR)
        if not secret_delete(tenant=access.tenant, name=name):
            raise ApiError("not_found", f"no secret named {name!r}", http_status=404)
        return Response(status=status.HTTP_204_NO_CONTENT)
