"""The skills REST API: compile a completed run, list, read and archive skills."""

from __future__ import annotations

import json
from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from runs.selectors import get_run_for_tenant
from runs.serializers import ErrorSerializer, StrictCharField
from tenants.access import access_for
from tenants.models import Role
from twin_site.api import ApiError, json_object
from twin_site.idempotency import IDEMPOTENCY_PARAM, idempotent

from .models import Skill, SkillVersion
from .selectors import get_skill, get_version, newest_version, skill_stats, skills_overview
from .services import (
    CompileError,
    Preview,
    compile_preview,
    skill_answers_goals,
    skill_archive,
    skill_compile,
)

ERRORS = {
    400: ErrorSerializer,
    401: ErrorSerializer,
    403: ErrorSerializer,
    404: ErrorSerializer,
    409: ErrorSerializer,
}


class ParamSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["string", "number", "boolean", "enum"])
    example = serializers.JSONField()
    options = serializers.ListField(child=serializers.CharField(), required=False)


class VersionSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField(help_text="The skill's id.")
    version_id = serializers.UUIDField()
    slug = serializers.CharField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    params = ParamSerializer(many=True)
    steps = serializers.JSONField(help_text="The step program; element steps carry a `locator` bundle.")
    changed_steps = serializers.ListField(child=serializers.IntegerField())
    source_run = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()


class SuggestionSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    literal = serializers.CharField()
    reason = serializers.CharField()
    steps = serializers.ListField(child=serializers.IntegerField())


class PreviewSerializer(serializers.Serializer[Any]):
    slug = serializers.CharField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    params = ParamSerializer(many=True)
    steps = serializers.JSONField()
    changed_steps = serializers.ListField(child=serializers.IntegerField())
    suggested = SuggestionSerializer(many=True)
    left_out = serializers.ListField(child=serializers.IntegerField())


class SkillStatsSerializer(serializers.Serializer[Any]):
    runs = serializers.IntegerField()
    completed = serializers.IntegerField()
    success_rate = serializers.FloatField(
        allow_null=True, help_text="Completed of the runs that ended, 0 to 1."
    )
    median_duration_s = serializers.FloatField(allow_null=True, help_text="Of the completed runs.")
    last_run_at = serializers.DateTimeField(allow_null=True)
    avg_amount = serializers.FloatField(allow_null=True, help_text="Mean cost of the recent ended runs.")


class SkillSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    slug = serializers.CharField()
    name = serializers.CharField()
    version = serializers.IntegerField(help_text="The newest version's number.")
    params = ParamSerializer(many=True)
    steps = serializers.JSONField()
    goal = serializers.CharField()
    url = serializers.CharField()
    answers_goals = serializers.BooleanField(
        help_text="Goal-only runs that match it replay it (docs/agent.md)."
    )
    archived = serializers.BooleanField()
    archived_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    stats = SkillStatsSerializer()


class CompileSerializer(serializers.Serializer[Any]):
    name = StrictCharField(required=False, allow_blank=True, max_length=200)
    slug = StrictCharField(required=False, allow_blank=True, max_length=100)
    params = serializers.DictField(
        required=False,
        help_text="Parameter name -> the literal of the run it replaces (becomes {{params.NAME}}).",
    )
    answers_goals = serializers.BooleanField(
        required=False,
        help_text="true: a goal-only run with this run's goal, URL and the skill's parameter names "
        "replays this skill instead of asking a model (docs/agent.md).",
    )


def version_data(version: SkillVersion) -> dict[str, Any]:
    skill = version.skill
    return {
        "id": str(skill.pk),
        "version_id": str(version.pk),
        "slug": skill.slug,
        "name": skill.name,
        "version": version.version,
        "params": version.params,
        "steps": version.steps,
        "changed_steps": version.changed_steps,
        "source_run": str(version.source_run_id) if version.source_run_id else None,
        "created_at": version.created_at,
    }


def preview_data(preview: Preview) -> dict[str, Any]:
    return {
        "slug": preview.slug,
        "name": preview.name,
        "version": preview.version,
        "params": preview.params,
        "steps": preview.steps,
        "changed_steps": preview.changed_steps,
        "suggested": preview.suggested,
        "left_out": preview.left_out,
    }


def skill_data(skill: Skill, stats: dict[str, Any] | None = None) -> dict[str, Any]:
    newest = newest_version(skill)  # prefetched for a list (skills_overview)
    if stats is None:
        stats = skill_stats(skill)
    return {
        "id": str(skill.pk),
        "slug": skill.slug,
        "name": skill.name,
        "version": newest.version if newest else 0,
        "params": newest.params if newest else [],
        "steps": newest.steps if newest else [],
        "goal": skill.goal,
        "url": skill.url,
        "answers_goals": skill.answers_goals,
        "archived": skill.archived_at is not None,
        "archived_at": skill.archived_at,
        "created_at": skill.created_at,
        "updated_at": skill.updated_at,
        "stats": {key: value for key, value in stats.items() if key != "series"},
    }


def _compile_error(exc: CompileError) -> ApiError:
    extra: dict[str, Any] = {}
    if exc.problems:
        extra["problems"] = [p.as_dict() for p in exc.problems]
    return ApiError(exc.code, exc.detail, http_status=exc.http_status, **extra)


class CompileView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("params", str, description="JSON object: parameter -> literal.")],
        responses={200: PreviewSerializer, **ERRORS},
    )
    def get(self, request: Request, pk: str) -> Response:
        """What compiling the run would give (nothing is stored), with suggested parameters."""
        access = access_for(request)
        run = get_run_for_tenant(access.tenant, pk)
        params = None
        if raw := request.query_params.get("params"):
            try:
                params = json.loads(raw)
            except ValueError:
                raise ApiError("invalid", "params must be a JSON object") from None
        try:
            preview = compile_preview(
                run,
                slug=request.query_params.get("slug"),
                name=request.query_params.get("name"),
                params=params,
            )
        except CompileError as exc:
            raise _compile_error(exc) from None
        return Response(preview_data(preview))

    @extend_schema(
        request=CompileSerializer,
        parameters=[IDEMPOTENCY_PARAM],
        responses={201: VersionSerializer, **ERRORS},
    )
    @idempotent
    def post(self, request: Request, pk: str) -> Response:
        """Compile the completed run into a new skill version (the same slug again: the next version)."""
        access = access_for(request)
        run = get_run_for_tenant(access.tenant, pk)
        access.require(Role.OPERATOR)
        body = CompileSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            version = skill_compile(
                run,
                actor=access.user,
                slug=data.get("slug"),
                name=data.get("name"),
                params=data.get("params"),
            )
        except CompileError as exc:
            raise _compile_error(exc) from None
        if data.get("answers_goals") is not None:
            skill_answers_goals(version, data["answers_goals"])
        return Response(version_data(version), status=status.HTTP_201_CREATED)


class SkillsView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("archived", bool, description="1: include archived skills.")],
        responses={200: SkillSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        access = access_for(request)
        archived = request.query_params.get("archived") in {"1", "true", "yes"}
        rows = skills_overview(access.tenant, archived=archived)[:500]
        return Response([skill_data(row.skill, row.stats.as_dict()) for row in rows])


class SkillDetailView(APIView):
    @extend_schema(responses={200: SkillSerializer, **ERRORS})
    def get(self, request: Request, key: str) -> Response:
        access = access_for(request)
        return Response(skill_data(get_skill(access.tenant, key)))

    @extend_schema(responses={204: None, **ERRORS})
    def delete(self, request: Request, key: str) -> Response:
        """Archive the skill: it no longer lists or runs by default; its versions and runs stay."""
        access = access_for(request)
        skill = get_skill(access.tenant, key, archived=False)
        access.require(Role.OPERATOR)
        skill_archive(skill, actor=access.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionsView(APIView):
    @extend_schema(responses={200: VersionSerializer(many=True), **ERRORS})
    def get(self, request: Request, key: str) -> Response:
        access = access_for(request)
        skill = get_skill(access.tenant, key)
        versions = SkillVersion.objects.filter(skill=skill).select_related("skill").order_by("-version")
        return Response([version_data(v) for v in versions])


class VersionDetailView(APIView):
    @extend_schema(responses={200: VersionSerializer, **ERRORS})
    def get(self, request: Request, key: str, number: int) -> Response:
        access = access_for(request)
        skill = get_skill(access.tenant, key)
        try:
            version = get_version(skill, number)
        except Http404:
            raise ApiError("not_found", f"{skill.slug} has no version {number}", http_status=404) from None
        return Response(version_data(version))
