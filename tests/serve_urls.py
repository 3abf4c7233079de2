"""Twin's URLs plus one test-only view for tests/test_serve.py (see tests/serve_app.py).

``/_test/hold?seconds=S`` holds the interpreter of the web process answering it for S seconds, as
CPU-bound work in a sync view does (a backtracking regex, a big JSON body, a heavy page): under
Daphne every request of a process shares its GIL, so such a request slows every other request
that process accepts. It runs a backtracking regex in ~0.2 s C calls that never release the GIL,
as the catastrophic gate pattern of issue 9 did for 9.3 s. It exists only here, never in Twin's
URLconf.
"""

from __future__ import annotations

import re
import time

from django.http import HttpRequest, JsonResponse
from django.urls import path

from twin_site.urls import handler404, handler500  # noqa: F401
from twin_site.urls import urlpatterns as twin_urlpatterns

_BACKTRACKING = re.compile(r"(a+)+$")


def hold(request: HttpRequest) -> JsonResponse:
    seconds = min(float(request.GET.get("seconds", "3")), 30.0)
    started = time.perf_counter()
    chunks = 0
    while time.perf_counter() - started < seconds:
        _BACKTRACKING.match("a" * 20 + "!")
        chunks += 1
    return JsonResponse({"held": time.perf_counter() - started, "chunks": chunks})


urlpatterns = [path("_test/hold", hold), *twin_urlpatterns]
