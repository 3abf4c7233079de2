"""Planned runs compile into skills by themselves (the tenant's setting, on by default).

A subscriber of the run events (runs.events): when a goal-only run completes, the compile runs
once that transaction has committed, outside it, so a compile that fails never takes the run's
completion with it; the failure is in the run's trail instead.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from runs.events import record_event
from runs.models import Run, RunEvent

log = logging.getLogger(__name__)


def on_run_event(run: Run, event: RunEvent, data: dict[str, Any]) -> None:
    if event.type != "run.completed" or run.planner not in {"model", "skill"}:
        return
    run_id = run.pk
    transaction.on_commit(lambda: compile_completed(run_id))


def compile_completed(run_id: Any) -> None:
    from .services import CompileError, auto_compile

    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return
    try:
        auto_compile(run)
    except CompileError as exc:
        with transaction.atomic():
            record_event(run, "skill.compile_failed", data={"error": exc.code, "detail": str(exc)[:1000]})
    except Exception as exc:
        log.exception("run %s: could not compile it into a skill", run_id)
        with transaction.atomic():
            record_event(
                run, "skill.compile_failed", data={"error": "internal", "detail": type(exc).__name__}
            )
