"""``Twin`` and ``AsyncTwin``: the REST API as calls that read like the product.

Each call is described once (a ``Call``: method, path, body, how to read the answer); the sync
and async clients only differ in how they send it. Nothing is retried automatically: POSTs that
create or decide carry an ``Idempotency-Key`` (a fresh one per call unless you pass your own),
so retrying one yourself with the same key is safe.
"""

from __future__ import annotations

import builtins  # (``list`` is a method of some classes below)
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from .errors import error_for
from .models import Approval, Run, RunEvent, Secret, Skill, SkillPreview, SkillVersion, WebhookEndpoint

T = TypeVar("T")
MAX_WAIT = 60.0  # the server's longest ?wait=
USER_AGENT = "twin-client/0.1"


@dataclass
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[Any], T]
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    wait: float = 0.0  # seconds the server may hold the answer (read timeout goes above it)


def _idempotent(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key or str(uuid.uuid4())}


def _compact(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _run(data: Any) -> Run:
    return Run.from_api(data)


def _segment(value: str) -> str:
    """One path segment (an id or a slug), quoted: a ``/`` or ``?`` in it cannot change the URL."""
    return quote(str(value), safe="")


# -- the calls ------------------------------------------------------------------------------------------
def start_run(
    *,
    goal: str = "",
    url: str = "",
    steps: list[dict[str, Any]] | None = None,
    skill: str | None = None,
    params: dict[str, Any] | None = None,
    version: int | None = None,
    plan: str | None = None,
    wait: float = 0,
    idempotency_key: str | None = None,
    **extra: Any,
) -> Call[Run]:
    # (an empty goal or url is left out: the server's default, and a skill run's body is the contract's;
    # a goal and url without steps or skill is the agent's run: the model plans it, or a skill answers)
    body = _compact(
        goal=goal or None,
        url=url or None,
        steps=steps,
        skill=skill,
        params=params,
        version=version,
        plan=plan,
        **extra,
    )
    wait = min(max(wait, 0), MAX_WAIT)
    return Call(
        "POST",
        "/api/runs",
        _run,
        json=body,
        params={"wait": f"{wait:g}"} if wait else {},
        headers=_idempotent(idempotency_key),
        wait=wait,
    )


def get_run(run_id: str, wait: float = 0) -> Call[Run]:
    wait = min(max(wait, 0), MAX_WAIT)
    return Call("GET", f"/api/runs/{run_id}", _run, params={"wait": f"{wait:g}"} if wait else {}, wait=wait)


def list_runs(status: str | None = None, limit: int = 50) -> Call[list[Run]]:
    return Call(
        "GET",
        "/api/runs",
        lambda d: [Run.from_api(r) for r in d],
        params=_compact(status=status, limit=limit),
    )


def approve(
    run_id: str,
    *,
    input: str | None = None,
    choice: str | None = None,
    note: str | None = None,
    idempotency_key: str | None = None,
) -> Call[Run]:
    return Call(
        "POST",
        f"/api/runs/{run_id}/approve",
        _run,
        json=_compact(input=input, choice=choice, note=note),
        headers=_idempotent(idempotency_key),
    )


def reject(run_id: str, *, reason: str | None = None, idempotency_key: str | None = None) -> Call[Run]:
    return Call(
        "POST",
        f"/api/runs/{run_id}/reject",
        _run,
        json=_compact(reason=reason),
        headers=_idempotent(idempotency_key),
    )


def cancel(run_id: str) -> Call[Run]:
    return Call("POST", f"/api/runs/{run_id}/cancel", _run, json={})


def run_events(run_id: str, limit: int = 100) -> Call[list[RunEvent]]:
    return Call(
        "GET",
        f"/api/runs/{_segment(run_id)}/events",
        lambda d: [RunEvent.from_api(e) for e in d],
        params={"limit": limit},
    )


def compile_skill(
    run_id: str,
    *,
    slug: str | None = None,
    name: str | None = None,
    params: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Call[SkillVersion]:
    return Call(
        "POST",
        f"/api/runs/{_segment(run_id)}/compile",
        SkillVersion.from_api,
        json=_compact(slug=slug, name=name, params=params),
        headers=_idempotent(idempotency_key),
    )


def preview_skill(run_id: str, *, params: dict[str, Any] | None = None) -> Call[SkillPreview]:
    return Call(
        "GET",
        f"/api/runs/{_segment(run_id)}/compile",
        SkillPreview.from_api,
        params={"params": json.dumps(params, separators=(",", ":"))} if params else {},
    )


def list_skills(archived: bool = False) -> Call[list[Skill]]:
    return Call(
        "GET",
        "/api/skills",
        lambda d: [Skill.from_api(s) for s in d],
        params={"archived": "1"} if archived else {},
    )


def get_skill(id_or_slug: str) -> Call[Skill]:
    return Call("GET", f"/api/skills/{_segment(id_or_slug)}", Skill.from_api)


def skill_versions(slug: str) -> Call[list[SkillVersion]]:
    return Call(
        "GET", f"/api/skills/{_segment(slug)}/versions", lambda d: [SkillVersion.from_api(v) for v in d]
    )


def skill_version(slug: str, number: int) -> Call[SkillVersion]:
    return Call("GET", f"/api/skills/{_segment(slug)}/versions/{int(number)}", SkillVersion.from_api)


def archive_skill(slug: str) -> Call[None]:
    return Call("DELETE", f"/api/skills/{_segment(slug)}", lambda d: None)


def list_approvals(
    status: str | None = None, limit: int = 100, order: str | None = None
) -> Call[list[Approval]]:
    return Call(
        "GET",
        "/api/approvals",
        lambda d: [Approval.from_api(a) for a in d],
        params=_compact(status=status, limit=limit, order=order),
    )


def put_secret(
    name: str, value: str, *, kind: str | None = None, origins: list[str] | None = None
) -> Call[Secret]:
    return Call(
        "POST",
        "/api/secrets",
        Secret.from_api,
        json=_compact(name=name, value=value, kind=kind, origins=origins),
    )


def list_secrets() -> Call[list[Secret]]:
    return Call("GET", "/api/secrets", lambda d: [Secret.from_api(s) for s in d])


def delete_secret(name: str) -> Call[None]:
    return Call("DELETE", f"/api/secrets/{name}", lambda d: None)


def create_webhook(
    url: str, *, events: list[str] | None = None, description: str | None = None
) -> Call[WebhookEndpoint]:
    return Call(
        "POST",
        "/api/webhooks",
        WebhookEndpoint.from_api,
        json=_compact(url=url, events=events, description=description),
    )


def list_webhooks() -> Call[list[WebhookEndpoint]]:
    return Call("GET", "/api/webhooks", lambda d: [WebhookEndpoint.from_api(w) for w in d])


def _answer(call: Call[T], response: httpx.Response) -> T:
    if response.status_code >= 400:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        raise error_for(response.status_code, body, response.headers)
    if response.status_code == 204 or not response.content:
        return call.read(None)
    return call.read(response.json())


def _next_page(call: Call[list[T]], response: httpx.Response) -> Call[list[T]] | None:
    """The call for the page after this one (the server's ``Link: <…>; rel="next"``), if any."""
    url = response.links.get("next", {}).get("url")
    return Call(call.method, url, call.read, headers=call.headers) if url else None


# -- sync ---------------------------------------------------------------------------------------------------
class Twin:
    """``Twin(base_url, token)``: a client for one tenant (the token's)."""

    def __init__(
        self, base_url: str, token: str, *, timeout: float = 30.0, http: httpx.Client | None = None
    ) -> None:
        self.timeout = timeout
        self._http = http or httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
            timeout=timeout,
        )
        self.runs = Runs(self)
        self.agents = Agents(self)
        self.approvals = Approvals(self)
        self.skills = Skills(self)
        self.secrets = Secrets(self)
        self.webhooks = Webhooks(self)

    def send(self, call: Call[T]) -> T:
        return _answer(call, self._request(call))

    def pages(self, call: Call[list[T]]) -> Iterator[T]:
        """Every item of a listing, page after page, fetching the next page only when needed."""
        page: Call[list[T]] | None = call
        while page is not None:
            response = self._request(page)
            yield from _answer(page, response)
            page = _next_page(page, response)

    def _request(self, call: Call[Any]) -> httpx.Response:
        # (params=None, not {}: httpx drops the query of a URL sent with params, and the next
        # page's URL carries its cursor there.)
        timeout = httpx.Timeout(self.timeout, read=self.timeout + call.wait)
        return self._http.request(
            call.method,
            call.path,
            params=call.params or None,
            json=call.json,
            headers=call.headers,
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Twin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Runs:
    def __init__(self, twin: Twin) -> None:
        self._twin = twin

    def start(
        self,
        *,
        goal: str = "",
        url: str = "",
        steps: list[dict[str, Any]] | None = None,
        params: dict[str, Any] | None = None,
        plan: str | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> Run:
        """Start a run and return at once (queued); ``agents.run`` waits instead.

        Without ``steps`` the agent plans the run from ``goal`` and ``url`` (see ``agents.run``)."""
        call = start_run(
            goal=goal,
            url=url,
            steps=steps,
            params=params,
            plan=plan,
            idempotency_key=idempotency_key,
            **extra,
        )
        return self._twin.send(call)

    def get(self, run_id: str, *, wait: float = 0) -> Run:
        return self._twin.send(get_run(run_id, wait))

    def list(self, *, status: str | None = None, limit: int = 50) -> list[Run]:
        """One page: the newest ``limit`` runs."""
        return self._twin.send(list_runs(status, limit))

    def iter(self, *, status: str | None = None, page_size: int = 50) -> Iterator[Run]:
        """All the runs, newest first, following the server's pages."""
        return self._twin.pages(list_runs(status, page_size))

    def wait(self, run_id: str, *, timeout: float = 300) -> Run:
        """Until the run pauses for a person or ends (or ``timeout`` runs out: then as it is)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            run = self.get(run_id, wait=max(0.0, min(left, MAX_WAIT)))
            if run.settled or left <= 0:
                return run

    def approve(
        self,
        run_id: str,
        *,
        input: str | None = None,
        choice: str | None = None,
        note: str | None = None,
        idempotency_key: str | None = None,
    ) -> Run:
        return self._twin.send(
            approve(run_id, input=input, choice=choice, note=note, idempotency_key=idempotency_key)
        )

    def reject(self, run_id: str, *, reason: str | None = None, idempotency_key: str | None = None) -> Run:
        return self._twin.send(reject(run_id, reason=reason, idempotency_key=idempotency_key))

    def cancel(self, run_id: str) -> Run:
        return self._twin.send(cancel(run_id))

    def events(self, run_id: str, *, page_size: int = 100) -> builtins.list[RunEvent]:
        """The run's whole trail, oldest first (every page of ``GET /api/runs/{id}/events``)."""
        return builtins.list(self._twin.pages(run_events(run_id, page_size)))


class Agents:
    def __init__(self, twin: Twin) -> None:
        self._twin = twin

    def run(
        self,
        *,
        goal: str = "",
        url: str = "",
        steps: list[dict[str, Any]] | None = None,
        params: dict[str, Any] | None = None,
        plan: str | None = None,
        timeout: float = 300,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> Run:
        """Start a run and wait until it is done or paused for a person.

        With ``steps``, Twin performs that step program. Without, the agent does the ``goal`` from
        ``url``: a skill of yours that answers the goal replays (``run.planner == "skill"``), else a
        language model plans it one step at a time (``"model"``; ``plan="always"`` skips the skill
        match). Then ``run.summary`` is the model's summary and each ``step.planned`` what it chose.
        A server with no model configured answers ``InvalidRequest`` (code
        ``planner_not_configured``) when no skill matches."""
        run = self._twin.send(
            start_run(
                goal=goal,
                url=url,
                steps=steps,
                params=params,
                plan=plan,
                wait=min(timeout, MAX_WAIT),
                idempotency_key=idempotency_key,
                **extra,
            )
        )
        return run if run.settled else self._twin.runs.wait(run.id, timeout=max(timeout - MAX_WAIT, 0))


class Skills:
    """Skills: step programs compiled from completed runs, versioned, replayed with parameters."""

    def __init__(self, twin: Twin) -> None:
        self._twin = twin

    def compile(
        self,
        run_id: str,
        *,
        slug: str | None = None,
        name: str | None = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> SkillVersion:
        """Compile a completed run into a new version (``params``: {name: a literal the run used})."""
        return self._twin.send(
            compile_skill(run_id, slug=slug, name=name, params=params, idempotency_key=idempotency_key)
        )

    def preview(self, run_id: str, *, params: dict[str, Any] | None = None) -> SkillPreview:
        """What ``compile`` would give, with the literals it suggests as parameters; stores nothing."""
        return self._twin.send(preview_skill(run_id, params=params))

    def list(self, *, archived: bool = False) -> list[Skill]:
        """The tenant's skills, the most recently updated first (``archived=True``: those too)."""
        return self._twin.send(list_skills(archived))

    def get(self, id_or_slug: str) -> Skill:
        return self._twin.send(get_skill(id_or_slug))

    def versions(self, slug: str) -> builtins.list[SkillVersion]:
        """Every version of the skill, the newest first."""
        return self._twin.send(skill_versions(slug))

    def version(self, slug: str, number: int) -> SkillVersion:
        return self._twin.send(skill_version(slug, number))

    def archive(self, slug: str) -> None:
        """Archive the skill: it is no longer listed or run; its runs keep their link to it."""
        self._twin.send(archive_skill(slug))

    def run(
        self,
        skill: str,
        params: dict[str, Any] | None = None,
        *,
        version: int | None = None,
        wait: bool = True,
        timeout: float = 300,
        idempotency_key: str | None = None,
    ) -> Run:
        """Run the skill (its newest version unless ``version``) and, like ``agents.run``, wait
        until it is done or paused for a person (``wait=False``: return at once, queued)."""
        run = self._twin.send(
            start_run(
                skill=skill,
                params=params or {},
                version=version,
                wait=min(timeout, MAX_WAIT) if wait else 0,
                idempotency_key=idempotency_key,
            )
        )
        if not wait or run.settled:
            return run
        return self._twin.runs.wait(run.id, timeout=max(timeout - MAX_WAIT, 0))


class Approvals:
    def __init__(self, twin: Twin) -> None:
        self._twin = twin

    def list(
        self, *, status: str | None = None, limit: int = 100, order: str | None = None
    ) -> list[Approval]:
        """One page: the first ``limit`` (newest first unless ``order``: ``oldest``, ``urgent``)."""
        return self._twin.send(list_approvals(status, limit, order))

    def iter(
        self, *, status: str | None = None, order: str | None = None, page_size: int = 100
    ) -> Iterator[Approval]:
        """All of them, following the server's pages."""
        return self._twin.pages(list_approvals(status, page_size, order))


class Secrets:
    def __init__(self, twin: Twin) -> None:
        self._twin = twin

    def put(
        self, name: str, value: str, *, kind: str | None = None, origins: list[str] | None = None
    ) -> Secret:
        return self._twin.send(put_secret(name, value, kind=kind, origins=origins))

    def list(self) -> list[Secret]:
        return self._twin.send(list_secrets())

    def delete(self, name: str) -> None:
        self._twin.send(delete_secret(name))


class Webhooks:
    def __init__(self, twin: Twin) -> None:
        self._twin = twin

    def create(
        self, url: str, *, events: list[str] | None = None, description: str | None = None
    ) -> WebhookEndpoint:
        return self._twin.send(create_webhook(url, events=events, description=description))

    def list(self) -> list[WebhookEndpoint]:
        return self._twin.send(list_webhooks())


# -- async --------------------------------------------------------------------------------------------------
class AsyncTwin:
    """The same calls as ``Twin``, to ``await``."""

    def __init__(
        self, base_url: str, token: str, *, timeout: float = 30.0, http: httpx.AsyncClient | None = None
    ) -> None:
        self.timeout = timeout
        self._http = http or httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
            timeout=timeout,
        )
        self.runs = AsyncRuns(self)
        self.agents = AsyncAgents(self)
        self.approvals = AsyncApprovals(self)
        self.skills = AsyncSkills(self)
        self.secrets = AsyncSecrets(self)
        self.webhooks = AsyncWebhooks(self)

    async def send(self, call: Call[T]) -> T:
        return _answer(call, await self._request(call))

    async def pages(self, call: Call[list[T]]) -> AsyncIterator[T]:
        """Every item of a listing, page after page (``async for``)."""
        page: Call[list[T]] | None = call
        while page is not None:
            response = await self._request(page)
            for item in _answer(page, response):
                yield item
            page = _next_page(page, response)

    async def _request(self, call: Call[Any]) -> httpx.Response:
        timeout = httpx.Timeout(self.timeout, read=self.timeout + call.wait)
        return await self._http.request(
            call.method,
            call.path,
            params=call.params or None,
            json=call.json,
            headers=call.headers,
            timeout=timeout,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncTwin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncRuns:
    def __init__(self, twin: AsyncTwin) -> None:
        self._twin = twin

    async def start(
        self,
        *,
        goal: str = "",
        url: str = "",
        steps: list[dict[str, Any]] | None = None,
        params: dict[str, Any] | None = None,
        plan: str | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> Run:
        """Start a run and return at once (queued); ``agents.run`` waits instead.

        Without ``steps`` the agent plans the run from ``goal`` and ``url`` (see ``agents.run``)."""
        call = start_run(
            goal=goal,
            url=url,
            steps=steps,
            params=params,
            plan=plan,
            idempotency_key=idempotency_key,
            **extra,
        )
        return await self._twin.send(call)

    async def get(self, run_id: str, *, wait: float = 0) -> Run:
        return await self._twin.send(get_run(run_id, wait))

    async def list(self, *, status: str | None = None, limit: int = 50) -> list[Run]:
        return await self._twin.send(list_runs(status, limit))

    def iter(self, *, status: str | None = None, page_size: int = 50) -> AsyncIterator[Run]:
        """All the runs, newest first (``async for run in twin.runs.iter()``)."""
        return self._twin.pages(list_runs(status, page_size))

    async def wait(self, run_id: str, *, timeout: float = 300) -> Run:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            run = await self.get(run_id, wait=max(0.0, min(left, MAX_WAIT)))
            if run.settled or left <= 0:
                return run

    async def approve(
        self,
        run_id: str,
        *,
        input: str | None = None,
        choice: str | None = None,
        note: str | None = None,
        idempotency_key: str | None = None,
    ) -> Run:
        return await self._twin.send(
            approve(run_id, input=input, choice=choice, note=note, idempotency_key=idempotency_key)
        )

    async def reject(
        self, run_id: str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> Run:
        return await self._twin.send(reject(run_id, reason=reason, idempotency_key=idempotency_key))

    async def cancel(self, run_id: str) -> Run:
        return await self._twin.send(cancel(run_id))

    async def events(self, run_id: str, *, page_size: int = 100) -> builtins.list[RunEvent]:
        """The run's whole trail, oldest first (every page of ``GET /api/runs/{id}/events``)."""
        return [event async for event in self._twin.pages(run_events(run_id, page_size))]


class AsyncAgents:
    def __init__(self, twin: AsyncTwin) -> None:
        self._twin = twin

    async def run(
        self,
        *,
        goal: str = "",
        url: str = "",
        steps: list[dict[str, Any]] | None = None,
        params: dict[str, Any] | None = None,
        plan: str | None = None,
        timeout: float = 300,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> Run:
        """``Twin.agents.run``, to ``await``."""
        run = await self._twin.send(
            start_run(
                goal=goal,
                url=url,
                steps=steps,
                params=params,
                plan=plan,
                wait=min(timeout, MAX_WAIT),
                idempotency_key=idempotency_key,
                **extra,
            )
        )
        return run if run.settled else await self._twin.runs.wait(run.id, timeout=max(timeout - MAX_WAIT, 0))


class AsyncSkills:
    def __init__(self, twin: AsyncTwin) -> None:
        self._twin = twin

    async def compile(
        self,
        run_id: str,
        *,
        slug: str | None = None,
        name: str | None = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> SkillVersion:
        return await self._twin.send(
            compile_skill(run_id, slug=slug, name=name, params=params, idempotency_key=idempotency_key)
        )

    async def preview(self, run_id: str, *, params: dict[str, Any] | None = None) -> SkillPreview:
        return await self._twin.send(preview_skill(run_id, params=params))

    async def list(self, *, archived: bool = False) -> list[Skill]:
        return await self._twin.send(list_skills(archived))

    async def get(self, id_or_slug: str) -> Skill:
        return await self._twin.send(get_skill(id_or_slug))

    async def versions(self, slug: str) -> builtins.list[SkillVersion]:
        return await self._twin.send(skill_versions(slug))

    async def version(self, slug: str, number: int) -> SkillVersion:
        return await self._twin.send(skill_version(slug, number))

    async def archive(self, slug: str) -> None:
        await self._twin.send(archive_skill(slug))

    async def run(
        self,
        skill: str,
        params: dict[str, Any] | None = None,
        *,
        version: int | None = None,
        wait: bool = True,
        timeout: float = 300,
        idempotency_key: str | None = None,
    ) -> Run:
        run = await self._twin.send(
            start_run(
                skill=skill,
                params=params or {},
                version=version,
                wait=min(timeout, MAX_WAIT) if wait else 0,
                idempotency_key=idempotency_key,
            )
        )
        if not wait or run.settled:
            return run
        return await self._twin.runs.wait(run.id, timeout=max(timeout - MAX_WAIT, 0))


class AsyncApprovals:
    def __init__(self, twin: AsyncTwin) -> None:
        self._twin = twin

    async def list(
        self, *, status: str | None = None, limit: int = 100, order: str | None = None
    ) -> list[Approval]:
        return await self._twin.send(list_approvals(status, limit, order))

    def iter(
        self, *, status: str | None = None, order: str | None = None, page_size: int = 100
    ) -> AsyncIterator[Approval]:
        """All of them (``async for``), following the server's pages."""
        return self._twin.pages(list_approvals(status, page_size, order))


class AsyncSecrets:
    def __init__(self, twin: AsyncTwin) -> None:
        self._twin = twin

    async def put(
        self, name: str, value: str, *, kind: str | None = None, origins: list[str] | None = None
    ) -> Secret:
        return await self._twin.send(put_secret(name, value, kind=kind, origins=origins))

    async def list(self) -> list[Secret]:
        return await self._twin.send(list_secrets())

    async def delete(self, name: str) -> None:
        await self._twin.send(delete_secret(name))


class AsyncWebhooks:
    def __init__(self, twin: AsyncTwin) -> None:
        self._twin = twin

    async def create(
        self, url: str, *, events: list[str] | None = None, description: str | None = None
    ) -> WebhookEndpoint:
        return await self._twin.send(create_webhook(url, events=events, description=description))

    async def list(self) -> list[WebhookEndpoint]:
        return await self._twin.send(list_webhooks())
