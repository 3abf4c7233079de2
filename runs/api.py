from __future__ import annotations

import uuid
from datetime import UTC
from typing import Any

from asgiref.sync import sync_to_async
from django.core.files.storage import default_storage
from django.db.models import Q, QuerySet
from django.http import FileResponse, Http404, HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals.models import Approval
from approvals.services import (
    AnswerInvalid,
    Client,
    Decision,
    DecisionForbidden,
    PauseLocked,
    approval_decide,
)
from tenants.access import access_for
from tenants.models import Role
from twin_site.api import ApiError, json_object
from twin_site.idempotency import IDEMPOTENCY_PARAM, idempotent

from .event_serializers import RunEventSerializer
from .media import poster_response, video_response
from .models import Run, RunStatus
from .selectors import events_for_run, get_run_for_tenant, ready_recording, runs_for_tenant
from .serializers import (
    DecisionSerializer,
    ErrorSerializer,
    RejectSerializer,
    RunCreateSerializer,
    RunSerializer,
)
from .services import PlannerNotConfigured, ProgramInvalid, RunConflict, run_cancel, run_create
from .waiting import parse_wait, wait_until_settled

WAIT_PARAM = OpenApiParameter(
    "wait", OpenApiTypes.FLOAT, description="Seconds (0 to 60) to wait for the run to pause or end."
)
ERRORS = {
    400: ErrorSerializer,
    401: ErrorSerializer,
    403: ErrorSerializer,
    404: ErrorSerializer,
    409: ErrorSerializer,
}


def run_response(run: Run, request: Request, *, http_status: int = 200) -> Response:
    fresh = get_run_for_tenant(run.tenant, run.pk)
    response = Response(RunSerializer(fresh, context={"request": request}).data, status=http_status)
    response["X-Twin-Status"] = fresh.status
    return response


def problems_error(code: str, what_has: str, problems: list[Any]) -> ApiError:
    """A 400 listing every problem: ``{"error": code, "detail": "<what_has> N problem(s)", "problems"}``."""
    return ApiError(code, f"{what_has} {len(problems)} problem(s)", problems=[p.as_dict() for p in problems])


def conflict(exc: RunConflict) -> ApiError:
    # AlreadyApproved (approvals.services) says "already_approved": the same person, twice.
    return ApiError(getattr(exc, "code", "conflict"), exc.detail, http_status=409, status=exc.run.status)


class RunsView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("status", str),
            OpenApiParameter("limit", int),
            OpenApiParameter("before", str, description="created_at cursor from the Link header"),
            OpenApiParameter("before_id", str, description="run id cursor from the Link header"),
        ],
        responses={200: RunSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        access = access_for(request)
        runs = runs_for_tenant(access.tenant).order_by("-created_at", "-pk")
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in RunStatus.values:
                raise ApiError("invalid_status", f"status must be one of {', '.join(RunStatus.values)}")
            runs = runs.filter(status=wanted)
        before = request.query_params.get("before")
        if before:
            runs = _before_cursor(runs, before, request.query_params.get("before_id"))
        try:
            limit = max(1, min(int(request.query_params.get("limit", 50)), 200))
        except ValueError:
            raise ApiError("invalid_limit", "limit must be a whole number from 1 to 200") from None
        page = list(runs[: limit + 1])
        response = Response(RunSerializer(page[:limit], many=True, context={"request": request}).data)
        if len(page) > limit:
            # The next page keeps the filter; the cursor is URL-encoded (an offset's "+" is not a space).
            query = request.query_params.copy()
            query["limit"] = str(limit)
            query["before"] = page[limit - 1].created_at.isoformat()
            query["before_id"] = str(page[limit - 1].pk)
            url = request.build_absolute_uri(request.path)
            response["Link"] = f'<{url}?{query.urlencode()}>; rel="next"'
        return response

    @extend_schema(
        request=RunCreateSerializer,
        parameters=[WAIT_PARAM, IDEMPOTENCY_PARAM],
        responses={201: RunSerializer, **ERRORS},
    )
    @idempotent
    def post(self, request: Request) -> Response:
        access = access_for(request)
        access.require(Role.OPERATOR)
        if not isinstance(request.data, dict):
            raise ApiError("invalid", "the body must be a JSON object")
        body = RunCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if "skill" in data:
            return self._run_skill(request, access, data)
        if "steps" not in data:
            return self._run_goal(request, access, data)
        try:
            run = run_create(
                tenant=access.tenant,
                created_by=access.user,
                goal=data["goal"],
                url=data["url"],
                steps=data["steps"],
                params=data["params"],
                record_video=data["record_video"],
            )
        except ProgramInvalid as exc:
            raise problems_error("invalid_program", "the step program has", exc.problems) from None
        return run_response(run, request, http_status=status.HTTP_201_CREATED)

    def _run_goal(self, request: Request, access: Any, data: dict[str, Any]) -> Response:
        from skills.services import SkillParamsInvalid, goal_run

        try:
            run = goal_run(
                tenant=access.tenant,
                actor=access.user,
                goal=data["goal"],
                url=data["url"],
                params=data["params"],
                plan=data["plan"],
                record_video=data["record_video"],
            )
        except PlannerNotConfigured as exc:
            raise ApiError("planner_not_configured", str(exc)) from None
        except SkillParamsInvalid as exc:
            raise problems_error("invalid_params", "the parameters have", exc.problems) from None
        except ProgramInvalid as exc:
            raise problems_error("invalid_program", "the run has", exc.problems) from None
        return run_response(run, request, http_status=status.HTTP_201_CREATED)

    def _run_skill(self, request: Request, access: Any, data: dict[str, Any]) -> Response:
        from skills.selectors import get_skill
        from skills.services import SkillParamsInvalid, skill_run

        try:
            skill = get_skill(access.tenant, data["skill"], archived=False)
        except Http404:
            raise ApiError(
                "skill_not_found", f"no skill {data['skill']!r} in this tenant", http_status=404
            ) from None
        try:
            run = skill_run(
                tenant=access.tenant,
                skill=skill,
                actor=access.user,
                params=data["params"],
                version=data.get("version"),
                record_video=data["record_video"],
            )
        except SkillParamsInvalid as exc:
            raise problems_error("invalid_params", "the parameters have", exc.problems) from None
        except ProgramInvalid as exc:
            raise problems_error("invalid_program", "the skill's program has", exc.problems) from None
        return run_response(run, request, http_status=status.HTTP_201_CREATED)


def _before_cursor(runs: QuerySet[Run], before: str, before_id: str | None) -> QuerySet[Run]:
    """Keyset pagination on (created_at, id), the list's order: runs created at the same instant are kept."""
    try:
        moment = parse_datetime(before)
        last_id = uuid.UUID(before_id) if before_id else None
    except ValueError:
        moment = None
    if moment is None:
        raise ApiError("invalid_cursor", "before and before_id must be the cursor of a Link header")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    if last_id is None:
        return runs.filter(created_at__lt=moment)
    return runs.filter(Q(created_at__lt=moment) | Q(created_at=moment, pk__lt=last_id))


class RunDetailView(APIView):
    @extend_schema(parameters=[WAIT_PARAM], responses={200: RunSerializer, **ERRORS})
    def get(self, request: Request, pk: str) -> Response:
        access = access_for(request)
        return run_response(get_run_for_tenant(access.tenant, pk), request)


class RunEventsView(APIView):
    """The run's trail, oldest first, as webhooks carry it (keys kept for the audit only left out)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("limit", int, description="Events per page, 1 to 500 (default 100)."),
            OpenApiParameter("after", int, description="Event id cursor from the Link header."),
        ],
        responses={200: RunEventSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request, pk: str) -> Response:
        access = access_for(request)
        run = get_run_for_tenant(access.tenant, pk)
        try:
            limit = max(1, min(int(request.query_params.get("limit", 100)), 500))
        except ValueError:
            raise ApiError("invalid_limit", "limit must be a whole number from 1 to 500") from None
        after = request.query_params.get("after")
        try:
            after_id = int(after) if after else None
        except ValueError:
            raise ApiError("invalid_cursor", "after must be the event id of a Link header") from None
        page = list(events_for_run(run, after=after_id)[: limit + 1])
        response = Response(RunEventSerializer(page[:limit], many=True).data)
        response["X-Twin-Status"] = run.status
        if len(page) > limit:
            query = request.query_params.copy()
            query["limit"] = str(limit)
            query["after"] = str(page[limit - 1].pk)
            url = request.build_absolute_uri(request.path)
            response["Link"] = f'<{url}?{query.urlencode()}>; rel="next"'
        return response


class ApproveView(APIView):
    @extend_schema(
        request=DecisionSerializer, parameters=[IDEMPOTENCY_PARAM], responses={202: RunSerializer, **ERRORS}
    )
    @idempotent
    def post(self, request: Request, pk: str) -> Response:
        access = access_for(request)
        run = get_run_for_tenant(access.tenant, pk)
        access.require(Role.APPROVER)
        body = DecisionSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        data = body.validated_data
        decision = Decision(
            approve=True, input=data.get("input"), choice=data.get("choice"), note=data["note"]
        )
        try:
            run = approval_decide(
                run=run,
                decision=decision,
                actor=access.user,
                channel=access.channel,
                token_name=access.token.name if access.token else "",
                client=Client.of(request),
            )
        except RunConflict as exc:
            raise conflict(exc) from None
        except DecisionForbidden as exc:  # (the run still waits: its status goes with the error)
            raise ApiError(exc.code, exc.detail, http_status=403, status=run.status) from None
        except AnswerInvalid as exc:
            raise ApiError(exc.code, exc.detail, status=run.status) from None
        except PauseLocked as exc:
            locked = ApiError("pause_locked", str(exc), http_status=429)
            locked.wait = exc.retry_after  # type: ignore[attr-defined]  # DRF sends it as Retry-After
            raise locked from None
        return run_response(run, request, http_status=status.HTTP_202_ACCEPTED)


class RejectView(APIView):
    @extend_schema(
        request=RejectSerializer, parameters=[IDEMPOTENCY_PARAM], responses={200: RunSerializer, **ERRORS}
    )
    @idempotent
    def post(self, request: Request, pk: str) -> Response:
        access = access_for(request)
        run = get_run_for_tenant(access.tenant, pk)
        access.require(Role.APPROVER)
        body = RejectSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        try:
            run = approval_decide(
                run=run,
                decision=Decision(approve=False, note=body.validated_data["reason"]),
                actor=access.user,
                channel=access.channel,
                token_name=access.token.name if access.token else "",
                client=Client.of(request),
            )
        except RunConflict as exc:
            raise conflict(exc) from None
        except DecisionForbidden as exc:  # (the run still waits: its status goes with the error)
            raise ApiError(exc.code, exc.detail, http_status=403, status=run.status) from None
        except AnswerInvalid as exc:
            raise ApiError(exc.code, exc.detail, status=run.status) from None
        return run_response(run, request)


class CancelView(APIView):
    @extend_schema(request=None, parameters=[IDEMPOTENCY_PARAM], responses={200: RunSerializer, **ERRORS})
    @idempotent
    def post(self, request: Request, pk: str) -> Response:
        access = access_for(request)
        run = get_run_for_tenant(access.tenant, pk)
        access.require(Role.OPERATOR)
        try:
            run = run_cancel(run=run, actor=access.user)
        except RunConflict as exc:
            raise conflict(exc) from None
        return run_response(run, request)


class ScreenshotView(APIView):
    @extend_schema(responses={(200, "image/jpeg"): OpenApiTypes.BINARY, **ERRORS})
    def get(self, request: Request, approval_id: str) -> FileResponse:
        access = access_for(request)
        approval = Approval.objects.filter(pk=approval_id, tenant=access.tenant).first()
        if approval is None or not approval.screenshot or not default_storage.exists(approval.screenshot):
            raise Http404("no such screenshot")
        return FileResponse(default_storage.open(approval.screenshot, "rb"), content_type="image/jpeg")


class RunVideoView(APIView):
    """The run's session video (WebM or MP4), with byte ranges so players can seek."""

    @extend_schema(
        responses={
            (200, "video/webm"): OpenApiTypes.BINARY,
            (206, "video/webm"): OpenApiTypes.BINARY,
            **ERRORS,
        }
    )
    def get(self, request: Request, pk: str) -> HttpResponseBase:
        access = access_for(request)
        recording = ready_recording(get_run_for_tenant(access.tenant, pk))
        if recording is None:
            raise Http404("this run has no video (yet)")
        return video_response(request, recording)


class RunVideoPosterView(APIView):
    """The picture a player shows before the run's video plays (its first frame that is not blank)."""

    @extend_schema(responses={(200, "image/jpeg"): OpenApiTypes.BINARY, **ERRORS})
    def get(self, request: Request, pk: str) -> HttpResponseBase:
        access = access_for(request)
        recording = ready_recording(get_run_for_tenant(access.tenant, pk))
        if recording is None:
            raise Http404("this run has no video (yet)")
        return poster_response(request, recording)


# -- long polling: async views around the DRF views above ---------------------------------------
_runs_view = RunsView.as_view()
_run_detail_view = RunDetailView.as_view()


def _visible_run(request: HttpRequest, pk: str) -> bool:
    drf_request = APIView().initialize_request(request)
    try:
        if drf_request.user is None:
            return False
        access = access_for(drf_request)
        get_run_for_tenant(access.tenant, pk)
    except Exception:
        return False  # the DRF view will answer with the right error
    return True


def _refresh(response: Any, request: HttpRequest) -> None:
    run = Run.objects.select_related("tenant").get(pk=response.data["id"])
    fresh = run_response(run, response.renderer_context["request"])
    response.data = fresh.data
    response["X-Twin-Status"] = fresh["X-Twin-Status"]


def _authenticated(request: HttpRequest) -> bool:
    try:
        return APIView().initialize_request(request).user is not None
    except APIException:
        return False


async def _wait_error(exc: ApiError, request: HttpRequest, view: Any, **kwargs: Any) -> Any:
    """A bad ``wait`` is a 400, but only for a caller who may learn that: others get the view's 401."""
    if not await sync_to_async(_authenticated)(request):
        return await sync_to_async(view)(request, **kwargs)
    return JsonResponse({"error": exc.code, "detail": str(exc.detail)}, status=exc.status_code)


@csrf_exempt
async def runs_endpoint(request: HttpRequest) -> Any:
    try:
        wait = parse_wait(request.GET.get("wait")) if request.method == "POST" else 0.0
    except ApiError as exc:
        return await _wait_error(exc, request, _runs_view)
    response = await sync_to_async(_runs_view)(request)
    if wait and response.status_code == 201:
        await wait_until_settled(response.data["id"], wait)
        await sync_to_async(_refresh)(response, request)
    return response


@csrf_exempt
async def run_detail_endpoint(request: HttpRequest, pk: str) -> Any:
    try:
        wait = parse_wait(request.GET.get("wait")) if request.method == "GET" else 0.0
    except ApiError as exc:
        return await _wait_error(exc, request, _run_detail_view, pk=pk)
    if wait and await sync_to_async(_visible_run)(request, pk):
        await wait_until_settled(pk, wait)
    return await sync_to_async(_run_detail_view)(request, pk=pk)


# drf-spectacular documents a URL only through its DRF view class: name the views these wrap.
runs_endpoint.cls = RunsView  # type: ignore[attr-defined]
runs_endpoint.initkwargs = {}  # type: ignore[attr-defined]
run_detail_endpoint.cls = RunDetailView  # type: ignore[attr-defined]
run_detail_endpoint.initkwargs = {}  # type: ignore[attr-defined]
