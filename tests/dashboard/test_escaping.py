"""What comes from pages and users is shown as text, never run: no dialog ever opens."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.dashboard.conftest import Person, sign_in

GOAL = "<script>alert(1)</script>"
TITLE = "<img src=x onerror=alert(2)> Invoices"
PROMPT = 'Pay <b>now</b>? <svg onload="alert(3)">'
PAYLOAD = "<iframe srcdoc='<script>parent.alert(4)</script>'></iframe>"
# The page's <title> and text carry markup as text (the browser decodes the entities).
EVIL_PAGE = (
    b"<!doctype html><html><head><title>&lt;img src=x onerror=alert(2)&gt; Invoices</title></head><body>"
    b"<p id='payload'>&lt;iframe srcdoc='&lt;script&gt;parent.alert(4)&lt;/script&gt;'&gt;&lt;/iframe&gt;</p>"
    b"<form method='post'><button id='go'>Go</button></form></body></html>"
)


class _EvilPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(EVIL_PAGE)))
        self.end_headers()
        self.wfile.write(EVIL_PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def evil_site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EvilPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_script_goal_a_marked_up_page_title_and_prompt_render_as_text(
    page: Page, alice: Person, evil_site: str, worker: object
) -> None:
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    steps: list[dict[str, Any]] = [
        {"action": "goto", "url": evil_site, "label": "<u>Open</u> the page"},
        {"action": "extract", "selector": "#payload", "name": "payload"},
        {"action": "click", "selector": "#go", "gate": {"kind": "approval", "prompt": PROMPT}},
    ]
    run = alice.start_run(steps, goal=GOAL, wait=30)
    assert run["status"] == "awaiting_approval", run

    sign_in(page, alice)
    item = page.locator("article.item").first
    expect(item.locator(".goal")).to_have_text(GOAL)
    expect(item.locator(".prompt")).to_have_text(PROMPT)
    expect(item.get_by_title("Page title")).to_have_text(TITLE)
    # The card's own SVG (the outlines over the screenshot) aside, nothing the page sent is markup.
    assert item.locator("script, img[src=x], svg:not(.shot-marks), b").count() == 0
    expect(item.locator(".page-text pre")).to_contain_text(PAYLOAD)

    page.goto("/runs/")
    expect(page.locator(f"#run-{run['id']}")).to_contain_text(GOAL)

    page.goto(f"/runs/{run['id']}/")
    expect(page.get_by_role("heading", level=1)).to_have_text(GOAL)
    expect(page).to_have_title(f"{GOAL} · Twin")
    expect(page.locator("#step-1")).to_contain_text("<u>Open</u> the page")
    expect(page.locator("table.pauses")).to_contain_text(PROMPT)
    expect(page.locator("#run-body")).to_contain_text(PAYLOAD)
    body = page.locator("#run-body")
    assert body.locator("script, iframe, img[src=x], svg:not(.shot-marks), u, b").count() == 0

    page.wait_for_timeout(300)  # an onerror/onload would have fired by now
    assert dialogs == []
