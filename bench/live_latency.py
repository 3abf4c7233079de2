"""Live latency: a step finishing -> the run detail page's websocket message; the live view's stream.

The real stack (bench/harness.py: Daphne, a Celery worker, Redis, the fixture site). A user signs in
over HTTP to Daphne (GET /login/, POST the form with its CSRF token) and the session cookie is reused
by ``websockets`` clients, exactly as the run detail page's scripts connect:

1. Latency. Per repetition, one run of ``goto /slow?ms=1500`` (time to connect) then 60 quick steps
   on ``/jsstate`` (``click #inc`` and ``fill #note`` in turn). Two sockets are open before step 1
   ends: ``/ws/runs/<id>/`` (the detail page's own) and ``/ws/events/`` (the navigation bar's).
   For every ``step.finished`` message, arrival (``time.time()`` on receipt) minus the step's
   ``finished_at`` (read from the database afterwards; the worker stamps it just before its UPDATE,
   same machine clock). Split at the event row's ``created_at`` (inserted in the same transaction;
   then commit, ``on_commit`` fan-out through Redis to Daphne, the consumer, the socket).
   Runs alternate between two viewers: "sockets only", and "page" which also does what
   static/twin/twin.js does on each message: fetch the detail partial (``GET /runs/<id>/`` with
   ``HX-Request``) at most every 150 ms with a trailing fetch. Those renders run in Daphne, next to
   the websocket consumers. For the page, "shown" = the first answer in which the step is
   ``step-done``, i.e. what a person watching the page waits for.
2. Live view. A run paused on ``/anim`` (a box sliding forever), watched through Daphne's
   ``/ws/runs/<id>/live`` for ``--seconds``: every frame acked on receipt (a viewer that draws
   instantly; static/twin/live.js acks each frame once drawn). Frames per second, bytes per second
   on the websocket (base64 JSON) and as JPEG, frame size, gaps between frames.

Usage:  .venv/bin/python bench/live_latency.py [--reps N] [--steps N] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import inspect
import json
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Bench, median, p95, table, verdict

TARGET_MEDIAN_MS = 50.0
PACE = 0.150  # static/twin/twin.js RUN_PACE: the detail page refetches at most this often
USERNAME = "watcher"
TERMINAL = {"run.completed", "run.failed", "run.cancelled", "run.rejected", "run.expired"}


def program(bench: Bench, steps: int) -> list[dict[str, Any]]:
    url = bench.site.url
    out: list[dict[str, Any]] = [
        {"action": "goto", "url": url("/slow?ms=1500")},
        {"action": "goto", "url": url("/jsstate")},
    ]
    for i in range(steps - 2):
        if i % 2:
            out.append({"action": "fill", "selector": "#note", "value": f"note {i}"})
        else:
            out.append({"action": "click", "selector": "#inc"})
    return out


def anim_program(bench: Bench) -> list[dict[str, Any]]:
    return [
        {"action": "goto", "url": bench.site.url("/anim")},
        {"action": "click", "selector": "#title", "gate": {"kind": "approval", "prompt": "Watch the box?"}},
    ]


# -- signing in as a person does ---------------------------------------------------------------------------
def make_user(password: str) -> None:
    from django.contrib.auth import get_user_model

    from tenants.models import Membership, Role, Tenant

    user = get_user_model().objects.create_user(USERNAME, password=password)
    Membership.objects.create(tenant=Tenant.objects.get(slug="bench"), user=user, role=Role.APPROVER)


def sign_in(base_url: str, password: str) -> httpx.Client:
    """An HTTP client holding the session of a user who signed in with the login form."""
    client = httpx.Client(base_url=base_url, timeout=30, follow_redirects=False)
    form = client.get("/login/")
    form.raise_for_status()
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    if found is None:
        raise RuntimeError("no CSRF token in the login form")
    answer = client.post(
        "/login/",
        data={"username": USERNAME, "password": password, "csrfmiddlewaretoken": found.group(1)},
        headers={"Referer": f"{base_url}/login/"},
    )
    if answer.status_code != 302 or "sessionid" not in client.cookies:
        raise RuntimeError(f"sign-in failed: {answer.status_code} {answer.text[:300]}")
    return client


def ws_options(base_url: str, client: httpx.Client) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    options: dict[str, Any] = {
        "additional_headers": {"Cookie": cookie},
        "origin": base_url,  # Channels' AllowedHostsOriginValidator wants one, as a browser sends
        "compression": None,
        "max_size": 64 * 1024 * 1024,
        "open_timeout": 10,
    }
    if "proxy" in inspect.signature(connect).parameters:
        options["proxy"] = None
    return options


# -- 1. latency ---------------------------------------------------------------------------------------------
@dataclass
class Arrival:
    socket: str
    at: float
    message: dict[str, Any]
    size: int


@dataclass
class Watched:
    arrivals: list[Arrival] = field(default_factory=list)
    shown: dict[int, float] = field(default_factory=dict)  # step index -> first partial showing it done
    fetches: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of partial fetches
    connected: float = 0.0


async def watch_run(
    base_url: str, client: httpx.Client, run_id: str, *, refresh_page: bool, timeout: float
) -> Watched:
    from websockets.asyncio.client import connect

    options = ws_options(base_url, client)
    ws_base = base_url.replace("http://", "ws://")
    watched = Watched()
    done = asyncio.Event()
    wanted = asyncio.Event()  # a message asked for a refresh
    http = httpx.AsyncClient(
        base_url=base_url, cookies=client.cookies, headers={"HX-Request": "true"}, timeout=30
    )

    async def listen(name: str, path: str, ready: asyncio.Event) -> None:
        async with connect(ws_base + path, **options) as ws:
            ready.set()
            while not done.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                at = time.time()
                message = json.loads(raw)
                if message.get("run_id") != run_id:
                    continue
                watched.arrivals.append(Arrival(name, at, message, len(raw)))
                if name == "run":
                    if refresh_page:
                        wanted.set()
                    if message.get("event") in TERMINAL:
                        done.set()

    async def refresh() -> None:
        """static/twin/twin.js: fetch now, then at most once per PACE while messages keep coming."""
        while not done.is_set() or wanted.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wanted.wait(), timeout=0.5)
            if not wanted.is_set():
                continue
            wanted.clear()
            started = time.time()
            answer = await http.get(f"/runs/{run_id}/")
            at = time.time()
            watched.fetches.append((started, at))
            answer.raise_for_status()
            for index in re.findall(r'class="step step-done" id="step-(\d+)"', answer.text):
                watched.shown.setdefault(int(index), at)
            await asyncio.sleep(max(0.0, PACE - (time.time() - started)))

    ready_run, ready_events = asyncio.Event(), asyncio.Event()
    tasks = [
        asyncio.ensure_future(listen("run", f"/ws/runs/{run_id}/", ready_run)),
        asyncio.ensure_future(listen("events", "/ws/events/", ready_events)),
    ]
    try:
        await asyncio.wait_for(asyncio.gather(ready_run.wait(), ready_events.wait()), 10)
        watched.connected = time.time()
        fetcher = asyncio.ensure_future(refresh())
        await asyncio.wait_for(done.wait(), timeout)
        await asyncio.wait_for(fetcher, 10)
    finally:
        done.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await http.aclose()
    return watched


@dataclass
class Sample:
    mode: str  # "sockets" or "page"
    rep: int
    index: int
    action: str
    to_event: float  # finished_at -> event row created_at
    run_socket: float  # finished_at -> message on /ws/runs/<id>/
    events_socket: float  # finished_at -> message on /ws/events/
    shown: float  # finished_at -> a partial showing the step done
    during_render: bool  # a partial was being fetched between finished_at and the message


def latency_samples(mode: str, rep: int, run_id: str, watched: Watched) -> list[Sample]:
    from runs.models import RunEvent, Step

    finished = {
        index: (at.timestamp(), action)
        for index, at, action in Step.objects.filter(run_id=run_id).values_list(
            "index", "finished_at", "action"
        )
        if at is not None
    }
    created = {
        pk: at.timestamp()
        for pk, at in RunEvent.objects.filter(run_id=run_id, type="step.finished").values_list(
            "id", "created_at"
        )
    }
    arrived: dict[tuple[str, int], tuple[float, int]] = {}
    for a in watched.arrivals:
        if a.message.get("event") == "step.finished":
            arrived.setdefault((a.socket, int(a.message["step_index"])), (a.at, int(a.message["event_id"])))
    samples = []
    for index, (done_at, action) in sorted(finished.items()):
        run_msg = arrived.get(("run", index))
        events_msg = arrived.get(("events", index))
        if run_msg is None or done_at < watched.connected:
            continue  # finished before the sockets were open
        during = any(start < run_msg[0] and end > done_at for start, end in watched.fetches)
        samples.append(
            Sample(
                mode=mode,
                rep=rep,
                index=index,
                action=action,
                to_event=created[run_msg[1]] - done_at,
                run_socket=run_msg[0] - done_at,
                events_socket=events_msg[0] - done_at if events_msg else float("nan"),
                shown=watched.shown.get(index, float("nan")) - done_at,
                during_render=during,
            )
        )
    return samples


# -- 2. the live view ---------------------------------------------------------------------------------------
@dataclass
class Stream:
    status: dict[str, Any]
    seconds: float
    frames: int
    ws_bytes: int
    jpeg_bytes: int
    gaps: list[float]
    width: int
    height: int


async def watch_live(base_url: str, client: httpx.Client, run_id: str, seconds: float) -> Stream:
    from websockets.asyncio.client import connect

    url = base_url.replace("http://", "ws://") + f"/ws/runs/{run_id}/live"
    async with connect(url, **ws_options(base_url, client)) as ws:
        status: dict[str, Any] = {}
        while not status:  # hello, then status
            message = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if message["type"] == "status":
                status = message
            elif message["type"] == "frame":
                await ws.send(json.dumps({"type": "ack"}))
        if not status.get("streaming"):
            raise RuntimeError(f"the live view does not stream: {status}")
        # The first frame: the stream is flowing; measure from there.
        while json.loads(await asyncio.wait_for(ws.recv(), 15))["type"] != "frame":
            pass
        await ws.send(json.dumps({"type": "ack"}))
        frames = ws_bytes = jpeg_bytes = 0
        width = height = 0
        gaps: list[float] = []
        started = last = time.perf_counter()
        while (now := time.perf_counter()) - started < seconds:
            try:
                raw = await asyncio.wait_for(ws.recv(), started + seconds - now)
            except TimeoutError:
                break
            message = json.loads(raw)
            if message["type"] != "frame":
                continue
            await ws.send(json.dumps({"type": "ack"}))
            arrived = time.perf_counter()
            gaps.append(arrived - last)
            last = arrived
            frames += 1
            ws_bytes += len(raw)
            jpeg = base64.b64decode(message["data"])
            if jpeg[:3] != b"\xff\xd8\xff":
                raise RuntimeError("a frame is not a JPEG")
            jpeg_bytes += len(jpeg)
            width = int(message["metadata"].get("deviceWidth") or 0)
            height = int(message["metadata"].get("deviceHeight") or 0)
        elapsed = time.perf_counter() - started
    return Stream(status, elapsed, frames, ws_bytes, jpeg_bytes, gaps, width, height)


def msf(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=4, help="runs watched, viewers taking turns (default 4)")
    parser.add_argument("--steps", type=int, default=62, help="steps per run, >= 3 (default 62)")
    parser.add_argument("--seconds", type=float, default=10.0, help="live view watched for (default 10)")
    args = parser.parse_args()

    with Bench("Twin benchmark: live latency (run detail websocket) and the live view's stream") as bench:
        password = secrets.token_urlsafe(16)
        make_user(password)
        client = sign_in(bench.base_url, password)
        steps = program(bench, max(3, args.steps))
        bench.warm_up(steps)

        samples: list[Sample] = []
        sizes: list[int] = []
        fetches: list[float] = []
        for rep in range(1, args.reps + 1):
            mode = "sockets" if rep % 2 else "page"
            bench.say(f"latency: run {rep}/{args.reps}, {len(steps)} steps, viewer: {mode}")
            run_id = bench.create_run(steps, goal="live latency")["id"]
            watched = asyncio.run(
                watch_run(bench.base_url, client, run_id, refresh_page=mode == "page", timeout=120)
            )
            status = bench.get_run(run_id)["status"]
            if status != "completed":
                raise RuntimeError(f"run {run_id} ended {status}")
            got = latency_samples(mode, rep, run_id, watched)
            if len(got) < len(steps) - 2:
                raise RuntimeError(f"only {len(got)} step.finished messages of {len(steps)} steps")
            samples.extend(got)
            sizes.extend(a.size for a in watched.arrivals if a.socket == "run")
            fetches.extend(end - start for start, end in watched.fetches)

        bench.say(f"live view: a run paused on /anim, watched for {args.seconds:g} s")
        paused = bench.create_run(anim_program(bench), wait=60, goal="live view")
        if paused["status"] != "awaiting_approval":
            raise RuntimeError(f"the /anim run is {paused['status']}, not paused")
        stream = asyncio.run(watch_live(bench.base_url, client, paused["id"], args.seconds))
        bench.approve(paused["id"])
        bench.wait_for(paused["id"], {"completed"})
        client.close()

        bench.header(
            f"{args.reps} runs of {len(steps)} steps (goto /slow, goto /jsstate, then click #inc / fill\n"
            "#note in turn), watched by a signed-in approver over Daphne websockets, the viewers taking\n"
            "turns: sockets only / sockets + the page's partial refreshes (twin.js); then a paused /anim\n"
            "page watched through the live view. Clock: time.time() on this machine for both ends."
        )
        rows = []
        for s in samples:
            if s.rep <= 2 and (s.index <= 5 or s.index > len(steps) - 3):
                rows.append(
                    [
                        f"{s.rep}.{s.index}",
                        s.mode,
                        s.action,
                        msf(s.to_event),
                        msf(s.run_socket),
                        msf(s.events_socket),
                        msf(s.shown) if s.shown == s.shown else "—",
                    ]
                )
        print("a few of the steps (ms after the step's finished_at):")
        print(
            table(
                [
                    "run.step",
                    "viewer",
                    "action",
                    "event row",
                    "/ws/runs/<id>/",
                    "/ws/events/",
                    "page shows it",
                ],
                rows,
            )
        )
        print()

        def line(name: str, values: list[float]) -> list[object]:
            values = [v for v in values if v == v]  # no NaN
            if not values:  # a heading
                return [name, "", "", "", ""]
            return [name, len(values), msf(median(values)), msf(p95(values)), msf(max(values))]

        quiet = [s for s in samples if s.mode == "sockets"]
        page = [s for s in samples if s.mode == "page"]
        print(f"step finished -> (ms), {len(samples)} steps in {args.reps} runs:")
        print(
            table(
                ["interval", "n", "median", "p95", "max"],
                [
                    line("event row inserted (created_at), all runs", [s.to_event for s in samples]),
                    line("viewer: sockets only", []),
                    line("  message on /ws/runs/<id>/ (run detail page)", [s.run_socket for s in quiet]),
                    line("    of which event row -> message", [s.run_socket - s.to_event for s in quiet]),
                    line("  message on /ws/events/ (nav bar, lists)", [s.events_socket for s in quiet]),
                    line("viewer: the page (sockets + partial refreshes)", []),
                    line("  message on /ws/runs/<id>/ (run detail page)", [s.run_socket for s in page]),
                    line(
                        "    while Daphne rendered a partial",
                        [s.run_socket for s in page if s.during_render],
                    ),
                    line(
                        "    while it did not",
                        [s.run_socket for s in page if not s.during_render],
                    ),
                    line("  message on /ws/events/ (nav bar, lists)", [s.events_socket for s in page]),
                    line("  the partial shows the step done (150 ms pace)", [s.shown for s in page]),
                ],
            )
        )
        print(
            f"run socket messages: median {median(sizes):.0f} bytes; detail partial fetch over Daphne: "
            f"median {msf(median(fetches))} ms, p95 {msf(p95(fetches))} ms ({len(fetches)} fetches)"
        )
        print()
        fps = stream.frames / stream.seconds
        gaps = stream.gaps
        print(f"live view of /anim (paused run, {stream.width}x{stream.height}), {stream.seconds:.1f} s:")
        kib = stream.ws_bytes / stream.seconds / 1024
        gap_text = f"{msf(median(gaps))} / {msf(p95(gaps))} / {msf(max(gaps))} ms"
        print(
            table(
                ["measure", "value"],
                [
                    ["frames", stream.frames],
                    ["frames per second", f"{fps:.1f}"],
                    ["websocket bytes per second (JSON, base64)", f"{kib:.0f} KiB/s"],
                    ["JPEG bytes per second", f"{stream.jpeg_bytes / stream.seconds / 1024:.0f} KiB/s"],
                    ["JPEG per frame", f"{stream.jpeg_bytes / max(1, stream.frames) / 1024:.1f} KiB"],
                    ["gap between frames, median / p95 / max", gap_text],
                ],
            )
        )
        print()
        print(f"target: step finished -> run detail websocket message, median <= {TARGET_MEDIAN_MS:.0f} ms")
        for name, group in (("sockets only", quiet), ("the page, refreshing", page)):
            if group:
                value = median([s.run_socket for s in group]) * 1000
                print(f"  {name}: median {value:.1f} ms  {verdict(value <= TARGET_MEDIAN_MS)}")
        print(f"live view: {fps:.1f} fps, {kib:.0f} KiB/s on the websocket (no target)")
        bench.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
