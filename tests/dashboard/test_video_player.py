"""The run page plays the session video; its steps are chapters: click one, the video goes there."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import BrowserContext, expect

from tests.dashboard.conftest import LIVE_TIMEOUT_MS, Person, shoot, sign_in, wait_js
from tests.site.server import FixtureSite
from tests.test_video import colors_program


def test_the_run_page_plays_the_video_and_a_step_seeks_to_where_it_starts(
    new_context: Callable[..., BrowserContext], alice: Person, site: FixtureSite, worker: object
) -> None:
    run = alice.start_run(colors_program(site), goal="Turn the page green", wait=30)
    assert run["status"] == "awaiting_approval", run
    page = new_context().new_page()
    sign_in(page, alice, next_path=f"/runs/{run['id']}/")
    assert alice.api("POST", f"/api/runs/{run['id']}/approve", {}).status_code == 202

    # The video appears by itself once it is made (the page hears video.ready).
    video = page.locator("#video-player")
    expect(video).to_be_visible(timeout=LIVE_TIMEOUT_MS * 3)
    wait_js(page, "document.getElementById('video-player').readyState >= 1")
    duration = page.evaluate("document.getElementById('video-player').duration")
    assert duration > 0.2
    marks = page.locator(".video-marks .pause-mark")
    expect(marks).to_have_count(1)

    chapter = page.locator("#run-video [data-step='3']")
    target = float(chapter.get_attribute("data-seek") or "0")
    # The video lasts about a second: were it to play, it would be past step 3 (or over) before
    # the assertions look. Keep it where the click takes it, and note that the click plays it.
    page.evaluate(
        "(() => { const v = document.getElementById('video-player');"
        " v.play = () => { window.playAsked = true; return Promise.resolve(); }; })()"
    )
    page.locator("#step-3").click()
    wait_js(page, f"Math.abs(document.getElementById('video-player').currentTime - {target}) < 0.05")
    assert page.evaluate("window.playAsked") is True
    expect(page.locator("#step-3")).to_have_class("step step-done playing", timeout=5000)

    # A live refresh (another event of the run) keeps the player and where it is.
    position = page.evaluate("document.getElementById('video-player').currentTime")
    page.evaluate("document.body.dispatchEvent(new CustomEvent('twin:run-" + run["id"] + "'))")
    page.wait_for_timeout(500)
    assert abs(page.evaluate("document.getElementById('video-player').currentTime") - position) < 0.05
    shoot(page, "run-video")
