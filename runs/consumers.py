"""Websockets for live pages: a tenant's events (inbox, runs list) and one run's events.

Consumers check the user's access before joining a group; the messages are the JSON the
event fan-out sends (``runs.events.fan_out``), so a page learns what changed and fetches
the partial it needs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from engine import liveview
from runs.models import Run, RunStatus
from tenants.models import Membership, Role
from tenants.selectors import current_membership

log = logging.getLogger(__name__)


@database_sync_to_async
def _tenant_for(user: Any, session: Any) -> int | None:
    wanted = session.get("tenant_id") if session is not None else None
    membership = current_membership(user=user, session_tenant_id=wanted)
    return membership.tenant_id if membership else None


@database_sync_to_async
def _may_see_run(user: Any, run_id: str) -> bool:
    if user is None or not user.is_authenticated:
        return False
    tenant_id = Run.objects.filter(pk=run_id).values_list("tenant_id", flat=True).first()
    return tenant_id is not None and Membership.objects.filter(user=user, tenant_id=tenant_id).exists()


class EventsConsumer(AsyncJsonWebsocketConsumer):
    """Everything that happens in the user's current tenant."""

    group = ""

    async def connect(self) -> None:
        tenant_id = await _tenant_for(self.scope.get("user"), self.scope.get("session"))
        if tenant_id is None:
            await self.close(code=4403)
            return
        self.group = f"tenant.{tenant_id}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def run_event(self, event: dict[str, Any]) -> None:
        await self.send_json(event)


class RunEventsConsumer(EventsConsumer):
    """One run's events, for its detail page."""

    async def connect(self) -> None:
        run_id = str(self.scope["url_route"]["kwargs"]["run_id"])
        if not await _may_see_run(self.scope.get("user"), run_id):
            await self.close(code=4403)
            return
        self.group = f"run.{run_id}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()


# -- the live view ---------------------------------------------------------------------------------------
@database_sync_to_async
def _live_role(user: Any, run_id: str) -> str | None:
    """The user's role in the run's tenant; None when they are not a member (or no such run)."""
    if user is None or not user.is_authenticated:
        return None
    tenant_id = Run.objects.filter(pk=run_id).values_list("tenant_id", flat=True).first()
    if tenant_id is None:
        return None
    return Membership.objects.filter(user=user, tenant_id=tenant_id).values_list("role", flat=True).first()


_FRAME_METADATA = (
    "deviceWidth",
    "deviceHeight",
    "offsetTop",
    "pageScaleFactor",
    "scrollOffsetX",
    "scrollOffsetY",
)


class LiveViewConsumer(AsyncJsonWebsocketConsumer):
    """A run's page, streamed while this socket is open; an approver may take a paused page over.

    To the viewer: ``hello``, ``status`` (streaming or why not), ``frame`` (base64 JPEG and
    its metadata), ``takeover`` (on/off), ``run`` (the run moved), ``error``.
    From the viewer: ``ack`` (a frame is drawn), ``takeover`` ``{"on": bool}``, and while
    taking over ``mouse``, ``key`` and ``text`` (see ``engine.liveview.parse_input``).
    """

    run_id = ""
    group = ""
    status = ""
    cast: liveview.Screencast | None = None
    taking_over = False
    inputs = 0
    gone = False
    # Frames of a stream whose ``status`` is not sent yet (its screencast runs before ``_watch``
    # resumes): the viewer hears the status first, then them, in order; None once it has.
    held: list[tuple[str, dict[str, Any]]] | None = None

    async def connect(self) -> None:
        self.run_id = str(self.scope["url_route"]["kwargs"]["run_id"])
        self.user = self.scope.get("user")
        role = await _live_role(self.user, self.run_id)
        if role is None:
            await self.close(code=4403)
            return
        self.lock = asyncio.Lock()
        self.group = f"run.{self.run_id}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "can_take_over": role == Role.APPROVER})
        await self._watch()

    async def disconnect(self, code: int) -> None:
        self.gone = True
        cast, self.cast = self.cast, None
        if cast is not None:  # nobody watches: stop streaming first
            await cast.stop()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        await self._end_takeover("the viewer left", notify=False)

    # -- the stream ---------------------------------------------------------------------------------
    async def _watch(self) -> None:
        """Stream the run's page to this viewer, unless it does already or the page is out of reach."""
        async with self.lock:
            if self.gone or (self.cast is not None and not self.cast.closed):
                return
            target = await database_sync_to_async(liveview.live_target)(self.run_id)
            self.status = target.status
            detail = target.reason
            self.held = []
            if target.url is not None:
                try:
                    cast = await liveview.Screencast.start(target.url, self._frame, mask=target.mask)
                except liveview.CdpError as exc:
                    log.info("live view of run %s: %s", self.run_id, exc)
                    detail = "The run's page cannot be reached right now (it may have just closed)."
                else:
                    if self.gone:  # the viewer left while we connected
                        await cast.stop()
                        return
                    self.cast = cast
                    self.closer = asyncio.ensure_future(self._until_closed(cast))
            streaming = self.cast is not None
            await self.send_json(
                {"type": "status", "streaming": streaming, "run_status": self.status, "detail": detail}
            )
            held = self.held
            while held:  # (frames that come while these are sent join the queue)
                await self._send_frame(*held.pop(0))
            self.held = None

    async def _until_closed(self, cast: liveview.Screencast) -> None:
        await cast.wait_closed()
        if self.gone or self.cast is not cast:
            return  # we stopped it ourselves
        self.cast = None
        await self._end_takeover("the page closed")
        await asyncio.sleep(0.2)  # the run may be moving to a new page: look where it is now
        await self._watch()

    async def _frame(self, data: str, metadata: dict[str, Any]) -> None:
        if self.gone:
            return
        if self.held is not None:
            self.held.append((data, metadata))
            return
        await self._send_frame(data, metadata)

    async def _send_frame(self, data: str, metadata: dict[str, Any]) -> None:
        meta = {k: metadata.get(k) for k in _FRAME_METADATA}
        await self.send_json({"type": "frame", "data": data, "metadata": meta})

    async def run_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "takeover.input":
            return
        self.status = str(event.get("status") or self.status)
        await self.send_json({"type": "run", "event": event.get("event"), "run_status": self.status})
        if self.taking_over and self.status != RunStatus.AWAITING_APPROVAL:
            await self._end_takeover(f"the run is {self.status.replace('_', ' ')} now")
        if self.status in liveview.LIVE_STATUSES:
            if self.cast is None or self.cast.closed:
                await self._watch()
        elif self.cast is not None:  # the run ended: whatever its page shows now is not the run's
            cast, self.cast = self.cast, None
            await cast.stop()
            await self._watch()

    # -- from the viewer ----------------------------------------------------------------------------
    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "ack":
            if self.cast is not None:
                await self.cast.viewer_ack()
        elif kind == "takeover":
            if content.get("on"):
                await self._start_takeover()
            else:
                await self._end_takeover("handed back")
        elif kind in {"mouse", "key", "text"}:
            await self._input(content)
        else:
            await self._error("invalid", "Unknown message.")

    async def _error(self, code: str, detail: str) -> None:
        await self.send_json({"type": "error", "code": code, "detail": detail})

    async def _start_takeover(self) -> None:
        if not self.taking_over:
            try:
                await database_sync_to_async(liveview.takeover_start)(run_id=self.run_id, user=self.user)
            except liveview.TakeoverRefused as exc:
                await self._error("forbidden", str(exc))
                return
            self.taking_over, self.inputs = True, 0
            if self.cast is not None:  # what the person does is in the session video (docs/video.md)
                await self.cast.record_takeover(run_id=self.run_id, user=self.user)
        await self.send_json({"type": "takeover", "on": True})

    async def _end_takeover(self, reason: str, *, notify: bool = True) -> None:
        if not self.taking_over:
            return
        self.taking_over = False
        if self.cast is not None:  # stored before the take-over is said to end (engine.video waits)
            await self.cast.stop_recording()
        await database_sync_to_async(liveview.takeover_end)(
            run_id=self.run_id, user=self.user, reason=reason, inputs=self.inputs
        )
        if notify:
            await self.send_json({"type": "takeover", "on": False, "detail": reason})

    async def _input(self, content: dict[str, Any]) -> None:
        if not self.taking_over or self.status != RunStatus.AWAITING_APPROVAL:
            await self._error("forbidden", "Take over the page first (approvers, while the run is paused).")
            return
        try:
            item = liveview.parse_input(content)
        except ValueError as exc:
            await self._error("invalid", str(exc))
            return
        if self.cast is None or self.cast.closed:
            await self._error("unavailable", "The page is not connected.")
            return
        if item.record is not None:  # checked again and recorded before it reaches the page
            try:
                await database_sync_to_async(liveview.takeover_input)(
                    run_id=self.run_id, user=self.user, data=item.record
                )
            except liveview.TakeoverRefused as exc:
                await self._end_takeover(str(exc))
                await self._error("forbidden", str(exc))
                return
        try:
            await self.cast.send_input(item)
        except liveview.CdpError as exc:
            await self._error("unavailable", f"The page did not take the input: {exc}")
            return
        self.inputs += 1
