"""Nothing a secret or a human's one-time code became leaves the executor in the clear.

A page (``/echo``) echoes what was typed in three places: live as it is typed and in an element
after the form is sent, in the title, and in the URL (a GET form). One run types a vault secret,
another a one-time code a person gives at an input gate; both pause after the echo, resume, pause
again (the second pause is recorded by a later execution, whose scrub list used to be empty),
extract the echo, and end. Then everything Twin stored or sent is searched for either value:
every database column, the raw SQLite file, the worker logs, the emails, the webhook bodies and
the API's answers. And the pictures: the pause screenshots and every frame of the session videos
show black boxes where the page shows the value.
"""

from __future__ import annotations

import html
import io
import json
import secrets
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import av
import pytest
from django.apps import apps
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection

from approvals.models import Approval
from engine.browser import session
from runs.media import video_storage
from runs.models import Recording, Run, RunEvent
from tests.conftest import LOG_DIR, event_types, in_browser_thread, start_run, wait_run, wait_until
from tests.site.server import ECHO_BOXES
from tests.test_video import ready_recording
from tests.webhook_receiver import Receiver

CONFIRM = {"kind": "approval", "prompt": "Confirm what the page shows?"}
FINISH = {"kind": "approval", "prompt": "Finish?"}
CODE_GATE = {"kind": "input", "prompt": "One-time code", "pattern": "^[0-9]{8}$"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def echo_program(site: Any, value: str, *, gate: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    fill: dict[str, Any] = {"action": "fill", "selector": "#v", "value": value}
    if gate:
        fill["gate"] = gate
    return [
        {"action": "goto", "url": site.url("/echo")},
        fill,
        {"action": "click", "selector": "#send"},
        {"action": "wait_for", "selector": "#said"},
        {"action": "click", "selector": "#confirm", "gate": CONFIRM},
        {"action": "extract", "selector": "#said", "name": "said"},
        {"action": "extract", "selector": "#preview", "name": "preview"},
        {"action": "wait_for", "selector": "#done", "gate": FINISH},
    ]


def forms_of(*values: str) -> dict[str, str]:
    """Each value as typed and as a URL, a form body, HTML and JSON carry it."""
    forms: dict[str, str] = {}
    for value in values:
        for form in (
            value,
            quote(value, safe=""),
            quote_plus(value),
            html.escape(value),
            json.dumps(value)[1:-1],
        ):
            forms[form] = value
    return forms


def hits(text: str | bytes, forms: dict[str, str]) -> list[str]:
    if isinstance(text, bytes):
        return [form for form in forms if form.encode() in text]
    return [form for form in forms if form in text]


# -- pictures ------------------------------------------------------------------------------------------
def rgb(frame: Any) -> tuple[int, int, Any]:
    picture = frame.reformat(format="rgb24")
    return picture.width, picture.height, picture.planes[0]


def lightness(frame: Any, box: tuple[int, int, int, int], page: tuple[int, int] | None = None) -> list[int]:
    """The brightness of every pixel inside ``box`` (CSS pixels of a ``page``-sized viewport; by
    default the frame's own size), edges left out."""
    width, height, plane = rgb(frame)
    page_width, page_height = page or (width, height)
    sx, sy = width / page_width, height / page_height
    left, top, w, h = box
    inset = 6
    data = bytes(plane)
    values = []
    for y in range(int((top + inset) * sy), int((top + h - inset) * sy)):
        row = y * plane.line_size
        for x in range(int((left + inset) * sx), int((left + w - inset) * sx)):
            r, g, b = data[row + 3 * x : row + 3 * x + 3]
            values.append((r + g + b) // 3)
    return values


def is_black(values: list[int]) -> bool:
    return max(values) < 60 and statistics.fmean(values) < 25


def is_plain(values: list[int]) -> bool:
    """One colour (no text on it): the page's white before anything is echoed, or a black box."""
    return statistics.pstdev(values) < 8


def screenshot_frame(approval: Approval) -> Any:
    with default_storage.open(approval.screenshot, "rb") as handle:
        data = handle.read()
    with av.open(io.BytesIO(data), mode="r", format="jpeg_pipe") as container:
        return next(container.decode(video=0))


def video_frames(recording: Recording) -> list[Any]:
    with video_storage().open(recording.path, "rb") as handle, av.open(handle, mode="r") as container:
        return [frame.reformat(format="rgb24") for frame in container.decode(video=0)]


# -- everything stored or sent ---------------------------------------------------------------------------
def every_column() -> str:
    """Every row of every model, every column (the ORM's view)."""
    rows: list[str] = []
    for model in apps.get_models():
        rows.extend(json.dumps(row, default=str) for row in model._base_manager.all().values())
    return "\n".join(rows)


def every_table() -> str:
    """Every row of every table, through raw SQL (tables no model covers included)."""
    out: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # (names from the database itself)
            out.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(out)


def database_files() -> bytes:
    """The raw bytes of the database: the SQLite file and its write-ahead log."""
    name = Path(connection.settings_dict["NAME"])
    if connection.vendor != "sqlite" or not name.exists():
        return b""
    return b"".join(p.read_bytes() for p in (name, Path(f"{name}-wal")) if p.exists())


def log_files() -> bytes:
    return b"".join(p.read_bytes() for p in sorted(LOG_DIR.glob("*.log")))


def mail_files() -> bytes:
    path = Path(settings.EMAIL_FILE_PATH)
    return b"".join(p.read_bytes() for p in sorted(path.glob("*"))) if path.exists() else b""


def approve(persona: Any, run_id: str, **body: Any) -> dict[str, Any]:
    response = persona.post(f"/api/runs/{run_id}/approve", body)
    assert response.status_code == 202, response.content
    run = wait_run(persona, run_id)
    if run["status"] == "running":  # a slow machine: give it the time a busy worker may need
        run = wait_run(persona, run_id)
    return run


def test_a_secret_and_a_one_time_code_echoed_by_the_page_are_nowhere_in_the_clear(
    alice, site, webhook_worker, receiver
):
    secret = f"Tr0ub&dor-{secrets.token_hex(4)}!"
    code = f"{secrets.randbelow(9 * 10**7) + 10**7}"
    forms = forms_of(secret, code)
    assert alice.post("/api/secrets", {"name": "echo_secret", "value": secret}).status_code == 201
    assert alice.post("/api/webhooks", {"url": receiver.url}).status_code == 201
    alice.tenant.approval_emails = "ops@acme.example"
    alice.tenant.save(update_fields=["approval_emails"])

    # A vault secret: typed, echoed, paused on (screenshot), resumed, paused on again, extracted.
    typed = start_run(alice, echo_program(site, "{{secrets.echo_secret}}"))
    assert typed["status"] == "awaiting_approval", typed
    assert typed["pending_step"]["index"] == 5
    assert typed["pending_step"]["page_title"].startswith("Echo: ")
    paused = approve(alice, typed["id"])
    assert paused["status"] == "awaiting_approval", paused
    assert paused["pending_step"]["index"] == 8
    done = approve(alice, typed["id"])
    assert done["status"] == "completed", done
    assert set(done["outputs"]) == {"said", "preview"}
    assert done["outputs"]["said"].startswith("You said ")

    # A person's one-time code, given at an input gate, then echoed the same way.
    given = start_run(alice, echo_program(site, "{{input}}", gate=CODE_GATE))
    assert given["status"] == "awaiting_approval", given
    assert given["pending_step"]["kind"] == "input"
    paused = approve(alice, given["id"], input=code)
    assert paused["status"] == "awaiting_approval", paused
    assert paused["pending_step"]["index"] == 5
    assert paused["pending_step"]["page_title"].startswith("Echo: ")
    assert approve(alice, given["id"])["status"] == "awaiting_approval"
    done = approve(alice, given["id"])
    assert done["status"] == "completed", done
    assert site.count("echo") == 4  # each run: the empty form, then the sent one

    # The runs typed the values for real (so a search that finds nothing means something).
    assert [e["sent"] for e in site.events if e["kind"] == "echo"] == [False, True, False, True]

    # Every webhook was delivered (the last one is the second run's end).
    def delivered() -> list[Any]:
        return [r for r in receiver.received if r.json()["type"] == "run.completed"]

    wait_until(lambda: len(delivered()) == 2, timeout=30, what="both runs' run.completed webhooks")
    recordings = [ready_recording(typed["id"]), ready_recording(given["id"])]

    # -- the text: nowhere ------------------------------------------------------------------------
    run_ids = [typed["id"], given["id"]]
    answers = [alice.get(f"/api/runs/{run_id}").content.decode() for run_id in run_ids]
    answers += [alice.get("/api/runs").content.decode(), alice.get("/api/approvals").content.decode()]
    places = {
        "database columns": hits(every_column(), forms),
        "database tables (raw SQL)": hits(every_table(), forms),
        "database file": hits(database_files(), forms),
        "worker logs": hits(log_files(), forms),
        "emails": hits(mail_files(), forms),
        "webhook bodies": hits(b"\n".join(r.body for r in receiver.received), forms),
        "API answers": hits("\n".join(answers), forms),
    }
    assert {place: found for place, found in places.items() if found} == {}
    assert len(receiver.received) >= 10
    assert Run.objects.filter(pk__in=run_ids).exclude(scrub_sealed="").count() == 0

    # -- the pictures: black where the page shows the value ------------------------------------------
    echoed = Approval.objects.filter(run_id__in=run_ids, step_index__in=[5, 8]).order_by("created_at")
    assert echoed.count() == 4
    for approval in echoed:
        frame = screenshot_frame(approval)
        viewport = (frame.width, frame.height)  # the video scales the page's frames to its own size
        for name, box in ECHO_BOXES.items():
            assert is_black(lightness(frame, box)), f"{name} in the screenshot of step {approval.step_index}"

    for recording in recordings:
        frames = video_frames(recording)
        assert frames
        masked = 0
        for number, frame in enumerate(frames):
            for name, box in ECHO_BOXES.items():
                values = lightness(frame, box, viewport)
                assert is_plain(values), f"{name} shows something in frame {number} of {recording.run_id}"
                masked += is_black(values)
        assert masked, "the echo never showed in the video"


def test_a_run_restored_from_its_checkpoint_still_scrubs_the_code_a_person_gave_before(alice, site, worker):
    """The code was typed by the first execution and erased from its pause; the page is then
    evicted, and the execution that restores it from the checkpoint (a page showing the code
    again, from its URL) must still keep it out of everything: it comes from the run's sealed list."""
    code = f"{secrets.randbelow(9 * 10**7) + 10**7}"
    forms = forms_of(code)
    run = start_run(alice, echo_program(site, "{{input}}", gate=CODE_GATE))
    paused = approve(alice, run["id"], input=code)
    assert paused["status"] == "awaiting_approval", paused
    assert paused["pending_step"]["index"] == 5
    assert Approval.objects.get(run_id=run["id"], step_index=2).sealed_input == ""

    # Evicted, as past the host's cap of parked pages: only the checkpoint is left.
    context_id = Run.objects.get(pk=run["id"]).browser_context_id
    Run.objects.filter(pk=run["id"]).update(browser_context_id="", target_id="")
    in_browser_thread(lambda: session().close_context(context_id))

    again = approve(alice, run["id"])
    assert again["status"] == "awaiting_approval", again
    assert "run.restored_from_checkpoint" in event_types(run["id"])
    restored = RunEvent.objects.get(run_id=run["id"], type="run.restored_from_checkpoint")
    assert restored.data["url"].startswith(site.url("/echo?v="))

    latest = Approval.objects.filter(run_id=run["id"]).order_by("-created_at").first()
    assert latest is not None and latest.page_title.startswith("Echo: ")
    places = {
        "database columns": hits(every_column(), forms),
        "database file": hits(database_files(), forms),
        "worker logs": hits(log_files(), forms),
        "API answers": hits(alice.get(f"/api/runs/{run['id']}").content.decode(), forms),
    }
    assert {place: found for place, found in places.items() if found} == {}
    frame = screenshot_frame(latest)
    for name, box in ECHO_BOXES.items():
        assert is_black(lightness(frame, box)), f"{name} in the screenshot after the restore"
    assert alice.post(f"/api/runs/{run['id']}/cancel").status_code in {200, 202}
    assert Run.objects.get(pk=run["id"]).scrub_sealed == ""
