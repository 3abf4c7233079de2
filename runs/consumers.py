"""Websockets for live pages: a tenant's events (inbox, runs list) and one run's events.

Consumers check the user's access before joining a group; the messages are the JSON the
event fan-out sends (``runs.events.fan_out``), so a page learns what changed and fetches
the partial it needs.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from runs.models import Run
from tenants.models import Membership


@database_sync_to_async
def _tenant_for(user: Any, session: Any) -> int | None:
    if user is None or not user.is_authenticated:
        return None
    memberships = Membership.objects.filter(user=user)
    wanted = session.get("tenant_id") if session is not None else None
    membership = (memberships.filter(tenant_id=wanted).first() if wanted else None) or memberships.order_by(
        "tenant__slug"
    ).first()
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
