"""The dashboard works under its strict Content Security Policy: not one violation on the main
pages (runs, run detail with its video, inbox deciding inline, live view, webhooks, admin, API
docs), and what used inline code (a notice's dismiss button, the video's marks) still works."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect

from tests.dashboard.conftest import LIVE_TIMEOUT_MS, Person, sign_in, wait_live
from tests.dashboard.flows import pay_with_approval
from tests.site.server import FixtureSite
from tests.test_video import colors_program

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(
    `${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`
  );
});
"""


class Watch:
    """Every CSP violation a page reports, from its DOM events and from the console."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.seen: list[str] = []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.seen.append(f"console: {message.text}")

    def visit(self, path: str, ready: Callable[[Page], Any] | None = None) -> None:
        self.page.goto(path)
        if ready is not None:
            ready(self.page)
        self.check(path)

    def check(self, where: str) -> None:
        self.page.wait_for_timeout(300)  # late violations (fonts, frames, sockets) are reported async
        found = self.page.evaluate("window.__cspViolations || []")
        assert not found and not self.seen, f"CSP violations on {where}: {found + self.seen}"


def test_the_main_pages_work_without_a_single_content_security_policy_violation(
    new_context: Callable[..., BrowserContext], alice: Person, site: FixtureSite, worker: object
) -> None:
    alice.user.is_staff = alice.user.is_superuser = True  # the admin, too
    alice.user.save()
    filmed = alice.start_run(colors_program(site), goal="Turn the page green", wait=40)
    assert filmed["status"] == "awaiting_approval", filmed
    assert alice.api("POST", f"/api/runs/{filmed['id']}/approve", {}).status_code == 202
    paused = alice.start_run(pay_with_approval(site), goal="Pay the supplier", wait=40)
    assert paused["status"] == "awaiting_approval", paused
    hook = alice.api("POST", "/api/webhooks", {"url": "http://127.0.0.1:9/twin-hook"})
    assert hook.status_code == 201, hook.text

    page = new_context().new_page()
    watch = Watch(page)
    sign_in(page, alice)
    watch.check("sign-in")

    watch.visit("/runs/", lambda p: wait_live(p))
    # The run page with its session video: the marks are placed by the script (not style="").
    watch.visit(
        f"/runs/{filmed['id']}/",
        lambda p: expect(p.locator("#video-player")).to_be_visible(timeout=LIVE_TIMEOUT_MS * 3),
    )
    mark = page.locator(".video-marks .pause-mark").first
    assert mark.evaluate("el => el.style.left").endswith("%")

    # The live view: its websocket (connect-src 'self' covers ws://) and data: frames.
    watch.visit(
        f"/runs/{paused['id']}/live",
        lambda p: expect(p.locator("#live-takeover")).to_be_enabled(timeout=LIVE_TIMEOUT_MS),
    )

    # The inbox decides inline (htmx), and the outcome's dismiss button works without onclick.
    watch.visit("/inbox/", lambda p: wait_live(p))
    item = page.locator("article.item").filter(has_text="Pay the supplier")
    item.get_by_role("button", name="Approve").click()
    notice = page.locator("#notices .notice").filter(has_text="You decided")
    expect(notice).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    notice.get_by_role("button", name="Dismiss").click()
    expect(notice).to_have_count(0)
    watch.check("the inbox after deciding")

    watch.visit("/webhooks/")
    watch.visit(f"/webhooks/{hook.json()['id']}/")
    watch.visit("/runs/new")
    watch.visit("/account/two-factor/")
    watch.visit("/admin/", lambda p: expect(p.locator("#site-name")).to_be_visible())
    watch.visit("/admin/runs/run/")
    watch.visit(f"/admin/runs/run/{filmed['id']}/change/")
    # Swagger UI renders from its own script file, with the schema fetched from this origin.
    title = page.locator(".swagger-ui .info .title")
    watch.visit("/api/docs", lambda p: expect(title).to_contain_text("Twin API"))
