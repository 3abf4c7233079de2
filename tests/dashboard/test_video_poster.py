"""The run page's session video opens on a picture of the run, not a blank white frame, and what a
person did while taking the paused page over is in it, listed as "Taken over by NAME"."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import av
from playwright.sync_api import BrowserContext, Page, expect

from tests.dashboard.conftest import LIVE_TIMEOUT_MS, Person, shoot, sign_in, wait_js
from tests.site.server import FixtureSite
from tests.test_live_view import page_eval

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


def paint_program(site: FixtureSite) -> list[dict[str, Any]]:
    return [
        {"action": "goto", "url": site.url("/paint")},
        {"action": "wait_for", "selector": "#next"},
        {
            "action": "click",
            "selector": "#title",
            "gate": {"kind": "approval", "prompt": "Repaint the page?"},
        },
    ]


def shades(png: bytes) -> int:
    """How far apart the darkest and the lightest grey of a picture are (0: one flat colour)."""
    with av.open(io.BytesIO(png), mode="r", format="png_pipe") as container:
        picture = next(container.decode(video=0)).reformat(width=64, height=36, format="gray")
    plane = picture.planes[0]
    data = b"".join(bytes(plane)[row * plane.line_size : row * plane.line_size + 64] for row in range(36))
    return max(data) - min(data)


def poster_loaded(page: Page, poster: str) -> int:
    """The poster's width once it has loaded (-1 if it did not), the player's metadata loaded too."""
    width = wait_js(
        page,
        """src => new Promise(done => { const img = new Image();
             img.onload = () => done(img.naturalWidth); img.onerror = () => done(-1); img.src = src; })""",
        poster,
    )
    wait_js(page, "document.getElementById('video-player').readyState >= 1")
    page.wait_for_timeout(300)  # painted
    return int(width)


def take_over_and_repaint(page: Page, run_id: str) -> None:
    """In the live view: take the page over, click the page's Next button twice, hand it back."""
    button = page.locator("#live-takeover")
    expect(button).to_be_enabled(timeout=LIVE_TIMEOUT_MS)
    page.wait_for_timeout(300)  # a first frame drawn: the still page is what the take-over starts on
    button.click()
    expect(button).to_have_attribute("aria-pressed", "true")
    # Click where the canvas shows the page's Next button.
    expression = (
        "(() => { const r = document.getElementById('next').getBoundingClientRect();"
        " return {x: r.x + r.width / 2, y: r.y + r.height / 2, w: innerWidth, h: innerHeight}; })()"
    )
    with ThreadPoolExecutor(1) as pool:  # Playwright's own loop runs in this thread
        spot = pool.submit(asyncio.run, page_eval(run_id, expression)).result(timeout=30)
    at = page.evaluate(
        """s => { const r = document.getElementById('live-canvas').getBoundingClientRect();
                  return {x: r.left + r.width * s.x / s.w, y: r.top + r.height * s.y / s.h}; }""",
        spot,
    )
    for _ in range(2):
        page.mouse.click(at["x"], at["y"])
        page.wait_for_timeout(700)
    button.click()
    expect(button).to_have_attribute("aria-pressed", "false")


def test_the_video_opens_on_a_poster_and_lists_the_take_over_as_a_chapter(
    new_context: Callable[..., BrowserContext], alice: Person, site: FixtureSite, worker: object
) -> None:
    run = alice.start_run(paint_program(site), goal="Repaint the page", wait=30)
    assert run["status"] == "awaiting_approval", run
    page = new_context(viewport=DESKTOP).new_page()
    sign_in(page, alice, next_path=f"/runs/{run['id']}/live")
    take_over_and_repaint(page, run["id"])
    assert alice.api("POST", f"/api/runs/{run['id']}/approve", {}).status_code == 202
    assert alice.run(run["id"], wait=30)["status"] == "completed"

    page.goto(f"/runs/{run['id']}/")
    video = page.locator("#video-player")
    expect(video).to_be_visible(timeout=LIVE_TIMEOUT_MS * 3)
    poster = f"/runs/{run['id']}/video/poster.jpg"
    expect(video).to_have_attribute("poster", poster)
    # The poster is a picture of the run's page, shown while the video has not played.
    assert poster_loaded(page, poster) > 0
    assert page.evaluate("document.getElementById('video-player').paused") is True
    assert shades(video.screenshot()) > 40, "the player shows one flat colour before it plays"
    video.scroll_into_view_if_needed()
    shoot(page, "video-poster", full_page=False)

    chapter = page.locator("#run-video .chapters .chapter-takeover")
    expect(chapter).to_have_count(1)
    expect(chapter).to_contain_text("Taken over by alice")
    band = page.locator(".video-marks .takeover-mark")
    expect(band).to_have_count(1)
    assert band.evaluate("el => el.getBoundingClientRect().width") >= 4
    # Its chapter plays from where the take-over starts (play is held so the position stays).
    page.evaluate("document.getElementById('video-player').play = () => Promise.resolve()")
    target = float(chapter.locator("button").get_attribute("data-seek") or "0")
    chapter.locator("button").click()
    wait_js(page, f"Math.abs(document.getElementById('video-player').currentTime - {target}) < 0.05")
    expect(chapter.locator("button")).to_have_class("link playing", timeout=5000)
    # What the person did is in the video: by the end of the take-over, the page was repainted.
    end = target + float(chapter.locator("button").get_attribute("data-length") or "0") - 0.1
    page.evaluate(f"document.getElementById('video-player').currentTime = {end}")
    wait_js(page, f"Math.abs(document.getElementById('video-player').currentTime - {end}) < 0.05")
    page.wait_for_timeout(300)
    red, green, blue = page.evaluate(
        """() => { const v = document.getElementById('video-player'), c = document.createElement('canvas');
                   c.width = 64; c.height = 36; const g = c.getContext('2d');
                   g.drawImage(v, 0, 0, 64, 36);
                   return Array.from(g.getImageData(48, 30, 1, 1).data).slice(0, 3); }"""
    )
    assert not (red > 150 and green < 80 and blue < 80), "the take-over's clicks are not in the video"
    video.scroll_into_view_if_needed()
    shoot(page, "video-poster-takeover")

    phone = new_context(viewport=PHONE).new_page()
    sign_in(phone, alice, next_path=f"/runs/{run['id']}/")
    expect(phone.locator("#video-player")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    assert poster_loaded(phone, poster) > 0
    assert shades(phone.locator("#video-player").screenshot()) > 40
    taken = phone.locator("#run-video .chapters .chapter-takeover")
    expect(taken).to_contain_text("Taken over by alice")
    # Chapters wrap under the video on a phone: nothing of the video wider than the screen.
    widest = phone.evaluate(
        "Math.max(...[...document.querySelectorAll('#run-video, #run-video *')]"
        ".map(el => el.getBoundingClientRect().right))"
    )
    assert widest <= PHONE["width"]
    box = taken.bounding_box()
    assert box is not None and box["x"] + box["width"] <= PHONE["width"]
    phone.locator("#run-video").scroll_into_view_if_needed()
    shoot(phone, "video-poster-takeover-phone", full_page=False)
