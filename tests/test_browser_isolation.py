"""Two worker processes opening run pages on the host browser at once each get their own page."""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

import pytest
from django.conf import settings


def _open_pages(count: int, env: dict[str, str], results: Any) -> None:
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "twin_site.settings")
    import django

    django.setup()
    from engine.browser import session

    browser_session = session()
    for _ in range(count):
        page, context_id, target_id = browser_session.new_page()
        cdp = page.context.new_cdp_session(page)
        info = cdp.send("Target.getTargetInfo")["targetInfo"]
        results.put((target_id, info["targetId"], info.get("browserContextId"), context_id))
        browser_session.close_context(context_id)


@pytest.fixture
def host_env() -> Any:
    from engine.browser import stop_host_browser

    env = {"TWIN_HOST_ID": f"{settings.TWIN_HOST_ID}-iso", "TWIN_VAR_DIR": str(settings.VAR_DIR)}
    yield env
    previous = os.environ.get("TWIN_HOST_ID")
    os.environ["TWIN_HOST_ID"] = env["TWIN_HOST_ID"]
    try:
        settings.TWIN_HOST_ID = env["TWIN_HOST_ID"]
        stop_host_browser()
    finally:
        settings.TWIN_HOST_ID = previous or settings.TWIN_HOST_ID


def test_pages_opened_at_the_same_time_by_two_processes_are_each_their_own(host_env):
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    # One process first launches the host browser, so both then race on page creation alone.
    first = spawn.Process(target=_open_pages, args=(1, host_env, results))
    first.start()
    first.join(60)
    workers = [spawn.Process(target=_open_pages, args=(6, host_env, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0

    opened = [results.get(timeout=5) for _ in range(13)]
    for returned_target, real_target, real_context, returned_context in opened:
        assert returned_target == real_target
        assert returned_context == real_context
