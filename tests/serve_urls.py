"""Twin's URLs plus one test-only view for tests/test_serve.py (see tests/serve_app.py).

``/_test/hold?seconds=S`` holds the interpreter of the web process answering it for about S
seconds, as CPU-bound work in a sync view does (a backtracking regex, a big JSON body, a heavy
page): under Daphne every request of a process shares its GIL, so such a request stops every other
request that process accepted, and its event loop too. It is one backtracking regex call sized to
last S seconds (a C call never releases the GIL), as the catastrophic gate pattern of issue 9 held
a process for 9.3 s. It exists only here, never in Twin's URLconf.
"""

from __future__ import annotations

import math
import re
import time

from django.http import HttpRequest, JsonResponse
from django.urls import path

from twin_site.urls import handler404, handler500  # noqa: F401
from twin_site.urls import urlpatterns as twin_urlpatterns

_BACKTRACKING = re.compile(r"(a+)+$")


def hold(request: HttpRequest) -> JsonResponse:
    seconds = min(float(request.GET.get("seconds", "3")), 20.0)
    started = time.perf_counter()
    # Each further "a" doubles the time: time a short call, then size one call to last `seconds`.
    timings = []
    for _ in range(3):
        begun = time.perf_counter()
        _BACKTRACKING.match("a" * 16 + "!")
        timings.append(time.perf_counter() - begun)
    per_call = max(sorted(timings)[1], 1e-6)
    n = 16 + min(max(0, round(math.log2(seconds / per_call))), 14)
    _BACKTRACKING.match("a" * n + "!")
    return JsonResponse({"held": time.perf_counter() - started, "n": n})


urlpatterns = [path("_test/hold", hold), *twin_urlpatterns]
