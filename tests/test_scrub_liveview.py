"""The live view masks the run's secrets too, even on a page the paused run's execution never saw.

The executor's mask covers the documents it drives; once it has paused, a person who takes the
page over may reload it or follow a link, and the new document shows the value again. The live
view installs the same mask (the run's scrub list, in an isolated world) before its first frame.
"""

from __future__ import annotations

import base64
import io
import secrets
import time
from typing import Any

import av
from asgiref.sync import async_to_sync, sync_to_async

from tests.conftest import Persona, start_run
from tests.site.server import ECHO_BOXES
from tests.test_live_view import communicator, next_message, page_eval
from tests.test_scrub import echo_program, is_black, lightness


def test_the_live_view_masks_a_secret_on_a_page_reloaded_while_the_run_is_paused(
    alice: Persona, site: Any, worker: Any
) -> None:
    secret = f"Tr0ub&dor-{secrets.token_hex(4)}!"
    assert alice.post("/api/secrets", {"name": "echo_secret", "value": secret}).status_code == 201
    run = start_run(alice, echo_program(site, "{{secrets.echo_secret}}"))
    assert run["status"] == "awaiting_approval", run
    assert run["pending_step"]["index"] == 5

    async def reload_page() -> None:
        # A person took the page over and reloaded it: a new document, which the execution that
        # paused never masked (its CDP session left with it).
        await page_eval(run["id"], "window.__before = 1; location.reload(); 1")
        for _ in range(100):
            fresh = await page_eval(
                run["id"], "typeof window.__before === 'undefined' && document.readyState === 'complete'"
            )
            if fresh:
                return
            await sync_to_async(time.sleep)(0.1)
        raise AssertionError("the page did not reload")

    async def first_frame() -> dict[str, Any]:
        comm = communicator(alice, run["id"])
        connected, _ = await comm.connect()
        assert connected
        status = await next_message(comm, "status")
        assert status["streaming"] is True, status
        frame = await next_message(comm, "frame")
        await comm.disconnect(timeout=5)
        return frame

    async def watch() -> dict[str, Any]:
        await reload_page()
        return await first_frame()

    frame = async_to_sync(watch)()
    assert async_to_sync(page_eval)(run["id"], "document.title").startswith("Echo: ")

    with av.open(io.BytesIO(base64.b64decode(frame["data"])), mode="r", format="jpeg_pipe") as container:
        picture = next(container.decode(video=0))
    viewport = (int(frame["metadata"]["deviceWidth"]), int(frame["metadata"]["deviceHeight"]))
    for name, box in ECHO_BOXES.items():
        assert is_black(lightness(picture, box, viewport)), f"{name} shows in the live view"
    # The page's own scripts cannot read the values: they live in another world.
    assert async_to_sync(page_eval)(run["id"], "typeof window.__twinMask") == "undefined"
