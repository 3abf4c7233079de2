"""Thin tasks: take ids, call the executor or a service, retry transient errors."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from typing import Any

from celery import shared_task
from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutdown
from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from engine.executor import execute_run, lease_owner_is_dead, release_page

from .admission import ClaimsLost, claim_next
from .hosts import Heartbeat, queue_for_host
from .models import Run, RunStatus
from .routing import DEFAULT_QUEUE, host_queue
from .states import run_transition

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3


def _execute(
    task: Any, run_id: str, reason: str, again: dict[str, Any] | None = None, *, spent: int = 0
) -> None:
    """``again``: the keyword arguments a retry of the task is sent with (its run stays the same);
    ``spent``: the retries the task took before the execution began (a start token's claim), which
    are not the execution's attempts."""
    retry = {"args": (run_id,), "kwargs": again or {}}
    try:
        execute_run(run_id, reason=reason)
    except OperationalError as exc:
        raise task.retry(exc=exc, countdown=2, max_retries=spent + 10, **retry) from exc
    except Exception as exc:
        log.exception("run %s: execution failed (%s)", run_id, reason)
        if task.request.retries - spent >= MAX_ATTEMPTS - 1:
            run = Run.objects.filter(pk=run_id).first()
            if run is not None:
                with transaction.atomic():
                    run_transition(
                        run,
                        to=RunStatus.FAILED,
                        expect=[RunStatus.RUNNING, RunStatus.QUEUED],
                        error=f"internal error after {MAX_ATTEMPTS} attempts: {type(exc).__name__}: {exc}"[
                            :2000
                        ],
                        lease_owner="",
                        lease_until=None,
                    )
            return
        # The next attempt finds the interrupted step and treats it as a crash would.
        raise task.retry(exc=exc, countdown=1, max_retries=spent + MAX_ATTEMPTS, **retry) from exc


@shared_task(bind=True, max_retries=MAX_ATTEMPTS)
def start_run_task(self: Any, run_id: str, claimed: bool = False, spent: int = 0) -> None:
    """A free slot: start the queued run whose turn it is (runs.admission: each tenant in turn),
    which need not be ``run_id``; a retry (``claimed``) goes on with the run it started, ``spent``
    the retries its claim took."""
    if not claimed:
        spent = self.request.retries
        try:
            picked = claim_next(run_id)
        except OperationalError as exc:
            raise self.retry(exc=exc, countdown=2, max_retries=10) from exc
        except ClaimsLost as exc:
            # Other threads took every run this token tried: runs may still wait, so the token stays.
            raise self.retry(exc=exc, countdown=0.5, max_retries=20) from exc
        if picked is None:
            log.info("start token of run %s: no queued run to start", run_id)
            return
        run_id = picked
    _execute(self, run_id, "start", again={"claimed": True, "spent": spent}, spent=spent)


@shared_task(bind=True, max_retries=MAX_ATTEMPTS)
def resume_run_task(self: Any, run_id: str) -> None:
    _execute(self, run_id, "resume")


@shared_task(bind=True, max_retries=MAX_ATTEMPTS)
def continue_run_task(self: Any, run_id: str) -> None:
    _execute(self, run_id, "recover")


@shared_task
def release_page_task(context_id: str) -> None:
    release_page(context_id)


@shared_task
def sweep_runs_task() -> int:
    """Pick up runs no live task is driving: a dead worker's, or a lost message's."""
    now = timezone.now()
    stale = now - timedelta(seconds=max(30.0, 2 * settings.TWIN_SWEEP_INTERVAL))
    lost = (
        Q(status=RunStatus.RUNNING, lease_until__lt=now)
        | Q(status=RunStatus.RUNNING, lease_owner="", updated_at__lt=stale)
        | Q(status=RunStatus.RUNNING, lease_owner__startswith=f"{settings.TWIN_HOST_ID}:")
    )
    if not _tokens_waiting():
        # Queued runs wait their turn while start tokens wait in the queue (runs.admission); with
        # none there, a token was lost (Redis restarted, say): send one per run that waited long.
        lost |= Q(status=RunStatus.QUEUED, updated_at__lt=stale)
    orphaned = Run.objects.filter(lost).only(
        "pk", "status", "host", "target_id", "lease_owner", "lease_until", "updated_at"
    )
    count = 0
    for run in orphaned[:200]:
        if run.lease_owner and not (
            (run.lease_until and run.lease_until < now) or lease_owner_is_dead(run.lease_owner)
        ):
            continue
        if run.status == RunStatus.QUEUED:
            start_run_task.apply_async(args=(str(run.pk),), queue=DEFAULT_QUEUE)
        else:
            # Prefer the host that holds the page while it is alive; after two minutes, or when it
            # is gone, anyone (from the checkpoint).
            recent = run.updated_at > now - timedelta(minutes=2)
            held = bool(run.host and run.target_id and recent)
            queue = queue_for_host(run.host) if held else DEFAULT_QUEUE
            continue_run_task.apply_async(args=(str(run.pk),), queue=queue)
        count += 1
    if count:
        log.warning("sweeper re-queued %d run(s)", count)
    from engine.video import unfinished_recordings

    for run_id in unfinished_recordings():  # videos whose task was lost
        finalize_video_task.apply_async(args=(str(run_id),), queue=DEFAULT_QUEUE)
    return count


def _tokens_waiting() -> bool:
    """Whether start tokens wait in the shared queue (a Redis list named after it); True when unknown."""
    from twin_site.realtime import _redis

    try:
        return bool(_redis().llen(DEFAULT_QUEUE))
    except Exception:
        return True


@shared_task(bind=True, max_retries=30, ignore_result=True)
def finalize_video_task(self: Any, run_id: str) -> str:
    """Join the run's recorded segments into its video once no execution holds the run."""
    from engine.video import finalize_due

    outcome = finalize_due(run_id)
    if outcome == "busy":
        raise self.retry(countdown=2)
    return outcome


@shared_task(ignore_result=True)
def purge_media_task() -> int:
    from engine.recording import purge_stale_frames
    from engine.video import media_purge

    purge_stale_frames()
    return media_purge()


@shared_task(ignore_result=True)
def audit_checkpoint_task() -> str:
    """Daily: export the signed audit heads outside the database (manage.py auditcheckpoint)."""
    from .audit import audit_checkpoint_export

    return audit_checkpoint_export()


@worker_init.connect
def _warm_imports(**kwargs: Any) -> None:
    """The agent's model client takes about 0.9 s to import: once, in the worker's parent before
    the pool forks, rather than in each child's first planned run."""
    import importlib

    try:
        importlib.import_module("openai")
    except ImportError:  # the first planned run reports it
        log.warning("the openai package is missing: the agent cannot plan")


@worker_process_init.connect
def _connect_browser(**kwargs: Any) -> None:
    """Connect to the host browser as a worker process starts (a prefork child; a threads worker
    when it is ready): the first resume it takes is then as fast as the others (a cold connection
    costs about 0.7 s)."""
    from engine.browser import session

    try:
        session().browser()
    except Exception:  # the first task will try again and report properly
        log.exception("could not connect to the host browser at worker start")


@worker_ready.connect
def _purge_stale_frames(**kwargs: Any) -> None:
    """A worker starting on a host cleans up the frame logs its dead predecessors left there
    (the hourly purge does it for the host that happens to run it)."""
    from engine.recording import purge_stale_frames

    try:
        purge_stale_frames()
    except OSError:
        log.exception("could not clean up old frame logs")


_heartbeat: Heartbeat | None = None


@worker_ready.connect
def _host_alive(sender: Any = None, **kwargs: Any) -> None:
    """A worker of this host's queue tells the others the host is alive (runs/hosts.py)."""
    global _heartbeat
    try:
        consumed = set(sender.app.amqp.queues.consume_from or {})
    except AttributeError:
        consumed = set()
    if host_queue() not in consumed:  # (the webhooks worker: it holds no page)
        return
    try:
        _heartbeat = Heartbeat().start()
    except Exception:
        log.exception("could not say host %s is alive: resumes may go to other hosts", settings.TWIN_HOST_ID)
    if "prefork" not in type(getattr(sender, "pool", None)).__module__:
        # One process whose threads drive the runs (engine.bridge): it connects once, here.
        _connect_browser()
    # A worker that starts again on this host takes over what its predecessor was driving now,
    # not at beat's next sweep (their leases name a process that is gone: executor.lease_owner_is_dead).
    with contextlib.suppress(Exception):
        sweep_runs_task.apply_async(queue=host_queue())


@worker_shutdown.connect
def _host_gone(**kwargs: Any) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
