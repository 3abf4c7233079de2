"""Drives one run through its step program in the host's Chromium.

Called by the Celery tasks. It claims the run's lease, attaches to the run's page (the
parked page itself, else a restore from the checkpoint, else a fresh context), then
performs steps until the run pauses, finishes or fails. At a pause it returns: the task
ends and the page stays parked in the host browser, holding no worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from approvals.models import Approval, ApprovalStatus
from approvals.rules import rule_for
from runs.events import batched, record_event
from runs.models import Run, RunStatus, Step, StepStatus
from runs.program import REPEATABLE_ACTIONS, SINGLE_TARGET_ACTIONS, describe, gate_of, render, templates_in
from twin_site.limits import MAX_OUTPUT
from vault.crypto import InvalidToken, open_json, open_text, seal_json
from vault.services import SecretError, normalize_origin, secret_resolve

from . import browser as browser_mod
from . import locators
from . import restore as restore_mod
from .boxes import capture_boxes
from .bridge import let_go, run_with, submit_with
from .egress import explain as explain_refusal
from .egress import refusal_of
from .netguard import UrlRefused, check_url
from .planning import Planning
from .recording import start_recording
from .scrub import PageMask, Scrubber, scrubber_for_run, scrubbing, seal_values, sealed_values

log = logging.getLogger(__name__)

BLOCKED_OPTIONS = ["retry", "skip", "fail"]
LEASE_MARGIN = timedelta(seconds=30)
# Steps after which a restore could find something new (URL, cookies, storage): checkpoint then.
# A fill changes only the DOM, which a restore cannot bring back anyway; reads change nothing.
STATEFUL_ACTIONS = frozenset({"goto", "click", "press", "select", "check"})
MASK_JS = "(el) => el.style.setProperty('-webkit-text-security', 'disc', 'important')"
# What a pause keeps of the page's visible text (the person deciding saw the page).
PAGE_TEXT_LIMIT = 4000
PAGE_TEXT_JS = "() => document.body ? document.body.innerText : ''"


class Pause(Exception):
    """The step needs a human: carries what to ask."""

    def __init__(
        self,
        *,
        cause: str,
        trigger: str,
        kind: str,
        prompt: str,
        options: list[str] | None = None,
        candidates: list[dict[str, Any]] | None = None,
        pattern: str = "",
        expires_in: int | None = None,
    ) -> None:
        super().__init__(prompt)
        self.cause, self.trigger, self.kind, self.prompt = cause, trigger, kind, prompt
        self.options, self.candidates, self.pattern = options, candidates, pattern
        self.expires_in = expires_in or settings.TWIN_DEFAULT_EXPIRES_IN


def gate_pause(step: dict[str, Any], gate: dict[str, Any]) -> Pause:
    """The pause a step's gate asks for, before the step acts."""
    return Pause(
        cause="gate",
        trigger=gate["trigger"],
        kind=gate["kind"],
        prompt=gate.get("prompt") or describe(step),
        options=gate.get("options"),
        pattern=gate.get("pattern", ""),
        expires_in=gate.get("expires_in"),
    )


class Stop(Exception):
    """The run left ``running`` under us (cancelled) or another execution took the lease."""


class StepFailed(Exception):
    pass


def checkpoint_scope(run: Run) -> str:
    return f"tenant:{run.tenant_id}:checkpoints"


def approval_scope(tenant_id: int) -> str:
    return f"tenant:{tenant_id}:answers"


# -- leases ------------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def lease_owner_is_dead(owner: str) -> bool:
    """Only an owner on this host can be seen to be dead; elsewhere the lease runs out."""
    try:
        host, pid, _ = owner.rsplit(":", 2)
        return host == settings.TWIN_HOST_ID and not _pid_alive(int(pid))
    except ValueError:
        return True


def claim_lease(run: Run, seconds: float) -> str | None:
    me = f"{settings.TWIN_HOST_ID}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    now = timezone.now()
    until = now + timedelta(seconds=seconds) + LEASE_MARGIN
    free = Q(lease_owner="") | Q(lease_until__lt=now)
    if Run.objects.filter(free, pk=run.pk).update(lease_owner=me, lease_until=until):
        return me
    current = Run.objects.filter(pk=run.pk).values_list("lease_owner", flat=True).first()
    if (
        current
        and lease_owner_is_dead(current)
        and Run.objects.filter(pk=run.pk, lease_owner=current).update(lease_owner=me, lease_until=until)
    ):
        log.warning("run %s: took over the lease of dead owner %s", run.pk, current)
        return me
    return None


# -- the execution -------------------------------------------------------------------------------
@dataclass
class Answers:
    gate: Approval | None = None
    ambiguity: Approval | None = None
    blocked: Approval | None = None
    used: list[Approval] = field(default_factory=list)


@dataclass
class Execution(Planning):
    run: Run
    owner: str
    reason: str
    page: Any = None
    # Every value a secret or a human's input may show up as, kept out of all the execution records
    # (engine.scrub); rebuilt for every execution by execute_run.
    scrubber: Scrubber = field(default_factory=Scrubber)
    mask: PageMask | None = None  # the black boxes over those values in the page's pixels
    interrupted: set[int] = field(default_factory=set)
    first_index: int = 0
    recorder: Any = None  # the session video's segment of this execution (engine.recording)
    # The step that loaded the page's current document (0: none did), and that document's
    # loader id: the fills, selects and checks after that step are what a restore must redo.
    document_step: int = 0
    document: str = ""
    documents: restore_mod.DocumentWatch = field(default_factory=restore_mod.DocumentWatch)
    restored: dict[str, Any] | None = None  # the checkpoint this execution restored the page from
    # What the step being performed acted on (engine.locators), and the fallback locator that found
    # it when a skill's primary one no longer did.
    acted_locator: dict[str, Any] | None = None
    healed: locators.Found | None = None
    handles: list[Any] = field(default_factory=list)  # elements found for the step, released after it
    # acted_locator is known already (a skill's primary locator held, or resolve described the element)
    described: bool = False
    # Looks at the page taken on the browser's loop while this thread goes on, in the order they
    # were asked for: one after each step done, once its records are written (its document, a late
    # commit included, and the checkpoint if the step could change what a restore needs). Taken in,
    # in that order, as they come back (renew), or all of them before anything reads the document
    # (drain). Each: (the step a new document belongs to, whether it captures, the look).
    looks: list[tuple[int, bool, Any]] = field(default_factory=list)
    checkpoint_due: dict[str, Any] | None = None  # the newest capture a look brought, not yet written
    look_due: tuple[int, bool] | None = None  # the look the last step done asks for (look_soon's args)
    # The last step's ``done`` (its index and fields), written with the next step's start when that
    # step goes straight to its action (start_step), else before anything else (flush_finish).
    finish_due: tuple[int, dict[str, Any]] | None = None
    # The description of the step's element, asked for as the step started (describe_soon):
    # (the selector as resolve will see it, the page's answer to come).
    prefetched: tuple[str, Any] | None = None
    # A skill step's first look for its element, asked for as the step started (describe_soon):
    # (the step's index, locators.find_soon's answer to come).
    found_soon: tuple[int, Any] | None = None
    finished_before: set[int] = field(default_factory=set)  # steps an earlier execution finished
    outputs_changed: bool = False  # an extract's output, written with the next step's lease

    @property
    def session(self) -> browser_mod.BrowserSession:
        return browser_mod.session()

    # ---------------------------------------------------------------------------------------
    def execute(self) -> None:
        run = self.run
        statuses = dict(Step.objects.filter(run=run).values_list("index", "status"))
        # A step left ``running`` by an earlier execution was interrupted mid-way.
        self.interrupted = {index for index, status in statuses.items() if status == StepStatus.RUNNING}
        # A step already finished is never performed again (a crash may have come right after it).
        finished = {StepStatus.DONE, StepStatus.SKIPPED}
        self.finished_before = {index for index, status in statuses.items() if status in finished}
        index = max(run.current_step, 1)
        self.first_index = index
        self.attach()
        self.mask_page()  # before the first frame is recorded
        self.document = self.documents.document_id(self.page)
        self.recorder = start_recording(run, run.target_id)
        try:
            self._steps(index)
        finally:
            # An execution that stops in between (an error) still records the step it did.
            with contextlib.suppress(Exception):
                self.flush_finish()

    def _steps(self, index: int) -> None:
        run = self.run
        steps = run.program
        while True:
            if self.look_due is not None:
                (done, capture), self.look_due = self.look_due, None
                self.look_soon(done, capture=capture)
            if index > len(steps):
                # A planned run grows a step at a time until the model says it is done.
                if not self.planning():
                    break
                self.add_plan_step(index)
                steps = run.program
            if index in self.finished_before:
                index += 1
                continue
            try:
                outcome = self.run_step(index, steps[index - 1])
            except Pause as pause:
                # run.program, not steps: a plan step is what the model decided by now.
                self.pause(index, run.program[index - 1], pause)
                return
            if outcome == "failed":
                return
            index += 1
        self.finish()

    # -- attaching to the page -----------------------------------------------------------------
    def attach(self) -> None:
        run, session = self.run, self.session
        timeout_ms = settings.TWIN_DEFAULT_STEP_TIMEOUT * 1000
        page = None
        session.check()
        if run.target_id and run.host == settings.TWIN_HOST_ID:
            page = session.find_page(run.target_id)
        if page is not None:
            self.page = page
            self.document_step = self._checkpointed_document_step()
            # Whichever task got here (a start task can be delivered twice), a run that already
            # paused or ran is being resumed: the trail says it happened in place.
            if self.reason != "start" or run.resumed_from is not None:
                record_event(
                    run,
                    "run.resumed_in_place",
                    step_index=run.current_step,
                    data={
                        "host": run.host,
                        "target_id": run.target_id,
                        "reason": self.reason,
                        "pid": os.getpid(),
                    },
                )
            return
        if run.checkpoint:
            try:
                checkpoint = open_json(run.checkpoint, scope=checkpoint_scope(run))
            except InvalidToken:
                checkpoint = None
                log.error("run %s: checkpoint cannot be decrypted (master key changed?)", run.pk)
            if checkpoint is not None:
                previous_host = run.host  # (before _owned makes this host the run's)
                page, context_id, target_id = session.restore(checkpoint, timeout_ms=timeout_ms)
                self._owned(page, context_id, target_id)
                # What earlier steps typed into the document is not in the checkpoint: the first
                # step performed brings it back and checks the page first (bring_back).
                self.restored = checkpoint
                self.document_step = self._checkpointed_document_step(checkpoint)
                record_event(
                    run,
                    "run.restored_from_checkpoint",
                    step_index=run.current_step,
                    data={
                        "host": settings.TWIN_HOST_ID,
                        "url": checkpoint.get("url", ""),
                        "checkpoint_step": run.checkpoint_step,
                        "reason": self.reason,
                        "previous_host": previous_host,
                        "document_step": self.document_step,
                        "pid": os.getpid(),
                    },
                )
                return
        page, context_id, target_id = session.new_page()
        self._owned(page, context_id, target_id)
        first = run.program[0] if run.program else {}
        if run.url and max(run.current_step, 1) == 1 and first.get("action") != "goto":
            try:
                check_url(run.url)
                page.goto(run.url, timeout=timeout_ms, wait_until="load")
            except Exception as exc:  # the first step will find the page wrong and pause blocked
                log.warning("run %s: could not open %s: %s", run.pk, run.url, exc)

    def _checkpointed_document_step(self, checkpoint: dict[str, Any] | None = None) -> int:
        """The step that loaded the page's document, as the last checkpoint recorded it."""
        run = self.run
        if checkpoint is None and run.checkpoint:
            with contextlib.suppress(InvalidToken, ValueError):
                checkpoint = open_json(run.checkpoint, scope=checkpoint_scope(run))
        if checkpoint and isinstance(checkpoint.get("document_step"), int):
            return int(checkpoint["document_step"])
        # A checkpoint from before documents were tracked: the last goto done is the best guess.
        gotos = [
            index
            for index in Step.objects.filter(run=run, status=StepStatus.DONE).values_list("index", flat=True)
            if index < max(run.current_step, 1) and run.program[index - 1]["action"] == "goto"
        ]
        return max(gotos, default=0)

    def _owned(self, page: Any, context_id: str, target_id: str) -> None:
        self.page = page
        run = self.run
        # The old context (if any, on this host) is stale now: it is not the run's page anymore.
        if run.browser_context_id and run.host == settings.TWIN_HOST_ID:
            self.session.close_context(run.browser_context_id)
        run.host, run.browser_context_id, run.target_id = settings.TWIN_HOST_ID, context_id, target_id
        Run.objects.filter(pk=run.pk).update(
            host=run.host, browser_context_id=context_id, target_id=target_id
        )

    # -- bookkeeping ---------------------------------------------------------------------------
    def renew(self, index: int, step: dict[str, Any]) -> None:
        """Check we still own a running run, and extend the lease over this step."""
        self.flush_finish()  # (the last step's records first)
        if not self._extend_lease(index, step):
            raise Stop()

    def _extend_lease(self, index: int, step: dict[str, Any]) -> bool:
        timeout = float(step.get("timeout") or settings.TWIN_DEFAULT_STEP_TIMEOUT)
        until = timezone.now() + timedelta(seconds=timeout) + LEASE_MARGIN
        fields = self.captured()
        updated = Run.objects.filter(pk=self.run.pk, lease_owner=self.owner, status=RunStatus.RUNNING).update(
            lease_until=until, current_step=index, **fields
        )
        if not updated:
            return False
        self.run.current_step = index
        if "checkpoint" in fields:
            self.run.checkpoint, self.run.checkpoint_step = fields["checkpoint"], fields["checkpoint_step"]
        return True

    def flush_finish(self) -> None:
        """Write the last step's ``done`` if it waits for the next step's start (finish_due)."""
        due, self.finish_due = self.finish_due, None
        if due is not None:
            index, fields = due
            self._finish_step(index, StepStatus.DONE, Answers(), fields=fields)

    def start_step(self, index: int, step: dict[str, Any], *, renew: bool) -> None:
        """The step is ``running`` from now, and (``renew``) the lease covers it: one transaction,
        with the last step's ``done`` if it waited for this one (finish_due), the run's row first
        (every writer of a run takes it before its steps). The last step's ``done`` is kept even
        when the run turns out not to be this execution's any more."""
        from runs.states import step_transition

        with transaction.atomic(), batched(self.run):  # (both steps' events: one insert)
            self.flush_finish()
            owned = not renew or self._extend_lease(index, step)
            if owned:
                step_transition(
                    self.run,
                    index,
                    to=StepStatus.RUNNING,
                    expect=[
                        StepStatus.QUEUED,
                        StepStatus.AWAITING_APPROVAL,
                        StepStatus.RUNNING,
                        StepStatus.FAILED,
                    ],
                    attempts=F("attempts") + 1,
                )
        if not owned:
            self.release_handles()  # (a skill step's element, found as it started)
            raise Stop()

    def answers(self, index: int) -> Answers:
        answers = Answers()
        decided = Approval.objects.filter(
            run=self.run, step_index=index, status=ApprovalStatus.APPROVED, consumed_at__isnull=True
        ).order_by("created_at")
        for approval in decided:
            setattr(answers, approval.cause, approval)
            answers.used.append(approval)
        return answers

    def look_soon(self, index: int, *, capture: bool) -> None:
        """Read the page's document (a new one belongs to step ``index``) and, if ``capture``, what a
        restore needs, on the browser's loop: this thread goes on meanwhile (the step's records, the
        next step), and the answer is taken in when it has come (:meth:`take_looks`). CDP answers
        in order, so the look sees the page as it was when asked, whenever it is taken in."""
        try:
            future = self.session.look_soon(
                self.page, self.run.browser_context_id, self.documents.session_for(self.page), capture=capture
            )
        except Exception:  # the page is going: taken in the slow way
            future = None
        self.looks.append((index, capture, future))

    def take_looks(self, *, wait: bool) -> None:
        """Take in the looks that have come back, oldest first (``wait``: all of them)."""
        while self.looks:
            index, capture, future = self.looks[0]
            if not wait and future is not None and not future.done():
                return
            self.looks.pop(0)
            seen: dict[str, Any] | None = None
            with contextlib.suppress(Exception):
                seen = future.result(timeout=30) if future is not None else None
            if seen is not None and seen["document"]:
                new_document = self.note_document(seen["document"], index)
            else:
                new_document = self.track_document(index)
            state = seen["state"] if seen is not None else None
            if state is None and (capture or new_document):
                with contextlib.suppress(Exception):
                    state = self.session.capture(self.page, self.run.browser_context_id)
            if state is not None:
                state["step_index"], state["document_step"] = index, self.document_step
                self.checkpoint_due = state

    def drain(self) -> None:
        """Every look asked for, taken in: before anything reads the page's document."""
        self.take_looks(wait=True)

    def captured(self) -> dict[str, Any]:
        """The run's fields for what came back since the last renew: the newest checkpoint (sealed),
        and an extract's output."""
        fields: dict[str, Any] = {}
        self.take_looks(wait=False)
        state, self.checkpoint_due = self.checkpoint_due, None
        if state is not None:
            fields["checkpoint"] = seal_json(state, scope=checkpoint_scope(self.run))
            fields["checkpoint_step"] = state["step_index"]
            self.outputs_changed = True
        if self.outputs_changed:
            fields["outputs"] = self.run.outputs
            self.outputs_changed = False
        return fields

    def checkpoint(self, index: int) -> None:
        self.drain()
        self.checkpoint_due = None  # (this one is newer)
        with contextlib.suppress(Exception):
            state = self.session.capture(self.page, self.run.browser_context_id)
            state["step_index"] = index
            state["document_step"] = self.document_step
            sealed = seal_json(state, scope=checkpoint_scope(self.run))
            Run.objects.filter(pk=self.run.pk).update(
                checkpoint=sealed, checkpoint_step=index, outputs=self.run.outputs
            )
            self.run.checkpoint, self.run.checkpoint_step = sealed, index

    def scrub(self, text: str) -> str:
        return self.scrubber.text(text)

    def mask_page(self) -> None:
        """Cover the scrub list's values in the page's pixels (this document and the next ones)."""
        if self.page is None or not self.scrubber:
            return
        if self.mask is None or self.mask.page is not self.page:
            self.close_mask()
            self.mask = PageMask(self.page)
        try:
            self.mask.update(self.scrubber.values)
        except Exception as exc:  # the step still fails safe: the text records are scrubbed anyway
            log.warning("run %s: could not mask the page: %s", self.run.pk, exc)

    def close_mask(self) -> None:
        mask, self.mask = self.mask, None
        if mask is not None:
            mask.close()

    def remember(self, value: str) -> None:
        """A value about to be typed: scrubbed and masked from now on, and kept (sealed) on the run
        so its later executions scrub it too (a TOTP code or a human's input cannot be looked up again)."""
        if not value:
            return
        typed = sealed_values(self.run)
        if value not in typed:
            seal_values(self.run, [*typed, value])
        if self.scrubber.add([value]):
            self.mask_page()

    # -- one step ---------------------------------------------------------------------------------
    def run_step(self, index: int, step: dict[str, Any]) -> str:
        run = self.run
        gate = gate_of(step)
        # A step that can only go straight to its action takes the lease with its start; any other
        # takes it now, over whatever comes before its action, and checks the run is still ours.
        straight = self.straight(index)
        if not straight:
            self.renew(index, step)
        # Answers are given while the run is paused, so only the step an execution starts at has any.
        answers = self.answers(index) if index == self.first_index else Answers()
        if answers.blocked is not None:
            choice = answers.blocked.choice
            if choice == "skip":
                self._finish_step(index, StepStatus.SKIPPED, answers, data={"skipped_by": "human"})
                if step["action"] == "plan":
                    self.stop_planning()  # skip at the agent's pause: the run finishes as it stands
                return "skipped"
            if choice == "fail":
                self._finish_step(index, StepStatus.FAILED, answers, error="failed by a human after a block")
                self._fail(f"step {index} failed: stopped by a human after it was blocked")
                return "failed"
            # "retry": the human vouches for performing the step again, once: a later crash asks again.
            self.interrupted.discard(index)
            Approval.objects.filter(pk=answers.blocked.pk).update(consumed_at=timezone.now())
        retrying = answers.blocked is not None
        if self.restored is not None:
            self.drain()
            self.bring_back(index, step, answers)
        if index in self.interrupted:
            self.interrupted.discard(index)
            if gate is not None or step["action"] not in REPEATABLE_ACTIONS:
                raise Pause(
                    cause="blocked",
                    trigger="blocked",
                    kind="choice",
                    options=BLOCKED_OPTIONS,
                    prompt=(
                        f"Step {index} ({describe(step)}) was interrupted when its worker stopped: "
                        "it may or may not have happened. Check the page, then retry, skip or fail it."
                    ),
                )
            record_event(
                run, "step.repeated_after_interruption", step_index=index, data={"action": step["action"]}
            )
        if step["action"] == "plan":
            step = self.plan_step(index, retrying)
            gate = gate_of(step)
        if gate is not None and answers.gate is None:
            raise gate_pause(step, gate)
        self.describe_soon(index, step, answers)  # (while the step's start is written)
        self.start_step(index, step, renew=straight)
        if self.recorder is not None:
            self.recorder.mark(index, step["action"])
        try:
            try:
                self.perform(step, answers)
            except StepFailed:
                # A parked page is a snapshot: what the human fixed is only seen after a reload.
                if not (retrying and step["action"] != "goto" and self.reopen_page(index, step)):
                    raise
                self.perform(step, answers)
        except (StepFailed, Pause) as exc:
            # A replayed skill step whose element is gone or unclear: the model may take it (a
            # tenant setting) instead of a person; otherwise, or if it cannot, the usual pause.
            lost = isinstance(exc, StepFailed) or (
                exc.cause == "ambiguity" and replay_bundle(step) is not None
            )
            repaired = self.hand_back(index, step, answers, self.scrub(str(exc))) if lost else None
            if repaired is None:
                if isinstance(exc, Pause):
                    raise
                raise self.blocked_pause(index, step, exc) from None
            step = repaired
            gate = gate_of(step)
            if gate is not None and answers.gate is None:
                raise gate_pause(step, gate) from None
            try:
                self.perform(step, answers)
            except StepFailed as again:
                raise self.blocked_pause(index, step, again) from None
        # The look at what the step left is asked for once its records are written, just before
        # whatever comes next (so a navigation that commits late, a redirect, is the step's too).
        self.look_due = (index, step["action"] in STATEFUL_ACTIONS)
        healed = self.healed
        if healed is not None:
            with transaction.atomic():
                record_event(
                    run,
                    "step.healed",
                    step_index=index,
                    data={"by": healed.by, "primary": healed.primary, "label": describe(step)},
                )
        fields = {
            "locator": self.acted_locator,
            "healed_by": healed.by if healed else "",
            "finished_at": timezone.now(),
        }
        if healed is None and not answers.used and self.straight(index + 1):
            # Written with the next step's start, in one transaction (start_step), or before
            # anything else is (flush_finish): the step's time is its own all the same.
            self.finish_due = (index, fields)
        else:
            self._finish_step(index, StepStatus.DONE, answers, fields=fields)
        if step["action"] == "extract":
            self.outputs_changed = True
        return "done"

    def straight(self, index: int) -> bool:
        """Step ``index`` goes straight to its action when it comes: a step of the program as it
        stands (not one a model has yet to plan), not done yet, with no answers, nothing to bring
        back, no question to ask first and no model to wait for."""
        program = self.run.program
        if not 1 <= index <= len(program) or index == self.first_index:
            return False
        step = program[index - 1]
        return (
            self.restored is None
            and index not in self.interrupted
            and index not in self.finished_before
            and gate_of(step) is None
            and step["action"] != "plan"
        )

    def blocked_pause(self, index: int, step: dict[str, Any], exc: Exception) -> Pause:
        return Pause(
            cause="blocked",
            trigger="blocked",
            kind="choice",
            options=BLOCKED_OPTIONS,
            prompt=f"Step {index} ({describe(step)}) cannot proceed: {self.scrub(str(exc))}",
        )

    # -- the page's document, and bringing it back after a restore ---------------------------------
    def track_document(self, index: int) -> bool:
        """Note a new document in the page's main frame (True); ``index`` is the step that loaded it.

        Checked after each step: whatever loaded a new document (a goto, a click or press that
        navigated, a script) wiped what earlier steps typed there, so a restore redoes only the
        steps after it. Same-document navigations (pushState, anchors) keep the document.
        """
        if self.page is None:
            return False
        return self.note_document(self.documents.document_id(self.page), index)

    def note_document(self, current: str, index: int) -> bool:
        """The page's document is ``current`` after step ``index``: True if that is a new one."""
        if current == self.document:
            return False
        self.document, self.document_step = current, index
        return True

    def bring_back(self, index: int, step: dict[str, Any], answers: Answers) -> None:
        """After a restore: redo what the checkpoint could not hold, then check the page before acting.

        The fills, selects and checks since the step that loaded the document are performed again
        (secrets come from the vault again; a human's one-time input was erased after use and
        cannot). Then the page is compared with what the person whose answer lets this step go
        on saw at their pause. Any difference pauses again (blocked) and spends their answer:
        an approval never applies to a page the approver did not see.
        """
        run = self.run
        self.restored = None
        # The latest answer is about the last page anyone saw (a "retry" after an earlier pause, say).
        seen = answers.used[-1] if answers.used else None
        expected: dict[str, Any] = seen.page_state if seen is not None and seen.page_state else {}
        if isinstance(expected.get("document_step"), int):
            self.document_step = expected["document_step"]
        refilled: list[int] = []
        problems: list[str] = []
        reasons: list[str] = []
        redo = restore_mod.refill_steps(run, self.document_step, index)
        if expected and not restore_mod.same_url(self.page, run, expected):
            # Another address (a login page after an expired session, say): type nothing into it,
            # secrets least of all.
            redo = []
        for i in redo:
            earlier = run.program[i - 1]
            if restore_mod.one_time(earlier):
                problems.append(f"refill:{i}")
                reasons.append(
                    f"step {i} ({describe(earlier)}) typed a one-time input, erased after use: "
                    "it cannot be typed again"
                )
                continue
            spent = restore_mod.step_answers(run, i)
            self.renew(index, earlier)  # the lease covers each step done again
            try:
                self.perform(earlier, Answers(gate=spent.get("gate"), ambiguity=spent.get("ambiguity")))
            except (StepFailed, Pause) as exc:
                problems.append(f"refill:{i}")
                reasons.append(
                    f"step {i} ({describe(earlier)}) could not be done again: {self.scrub(str(exc))}"
                )
                continue
            refilled.append(i)
        self.document = self.documents.document_id(self.page)
        if seen is not None and not expected:
            # Someone decided, but what they saw was not recorded (the page was unreadable at the
            # pause): nothing shows this page is theirs.
            problems.append("unseen")
            reasons.append("what the person deciding saw was not recorded, so it cannot be compared")
        compared: dict[str, Any] | None = None
        if expected:
            current = restore_mod.page_state(self.page, run, index, self.document_step)
            for difference in restore_mod.differences(expected, current):
                if f"refill:{difference.partition(':')[2]}" not in problems:
                    reasons.append(restore_mod.describe_difference(run, difference, expected, current))
                problems.append(difference)
            compared = {
                "url": True,
                "element": current["element"],
                "fields": [int(key) for key in current["fields"]],
                "digest": True,
            }
        if not problems:
            if redo:
                self.renew(index, step)  # the lease covers the step itself again
            if compared is not None:
                with transaction.atomic():
                    record_event(
                        run,
                        "run.state_verified",
                        step_index=index,
                        data={
                            "approval_id": str(seen.pk) if seen else None,
                            "compared": compared,
                            "refilled": refilled,
                        },
                    )
            return
        with transaction.atomic():
            # The answers were given about a page that is gone: spent, never carried to the new pause.
            Approval.objects.filter(pk__in=[a.pk for a in answers.used]).update(
                consumed_at=timezone.now(), sealed_input=""
            )
            record_event(
                run,
                "run.state_changed",
                step_index=index,
                data={
                    "approval_id": str(seen.pk) if seen else None,
                    "differences": problems,
                    "refilled": refilled,
                },
            )
        answers.used.clear()
        raise Pause(
            cause="blocked",
            trigger="blocked",
            kind="choice",
            options=BLOCKED_OPTIONS,
            prompt=(
                f"Step {index} ({describe(step)}) cannot go on: its page was lost and restored, and the page "
                f"changed since the decision: {'; '.join(reasons)}. Check the page, then retry (the step is "
                "asked about again on this page), skip or fail it."
            ),
        )

    def reopen_page(self, index: int, step: dict[str, Any]) -> bool:
        """Load the page's address again (a GET: a form is never re-posted); False if it has none."""
        url = self.page.url
        if not url.startswith(("http://", "https://")):
            return False
        self.renew(index, step)
        timeout_ms = float(step.get("timeout") or settings.TWIN_DEFAULT_STEP_TIMEOUT) * 1000
        try:
            check_url(url)
            self.page.goto(url, timeout=timeout_ms, wait_until="load")
        except Exception as exc:
            log.warning("run %s: could not reopen %s for a retry: %s", self.run.pk, url, exc)
            return False
        with transaction.atomic():
            record_event(self.run, "step.retried_after_reload", step_index=index, data={"url": url})
        return True

    def _finish_step(
        self,
        index: int,
        status: str,
        answers: Answers,
        *,
        error: str = "",
        data: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        from runs.states import step_transition

        now = timezone.now()
        with transaction.atomic(savepoint=False):  # (inside start_step's, no savepoint of its own)
            expect = [StepStatus.RUNNING]
            if status != StepStatus.DONE:
                expect += [StepStatus.QUEUED, StepStatus.AWAITING_APPROVAL]
            step_transition(
                self.run,
                index,
                to=status,
                expect=expect,
                error=self.scrub(error),
                event_data=data,
                **(fields or {}),
            )
            if answers.used:
                # The answers are spent: erase any supplied input now that the step used it.
                Approval.objects.filter(pk__in=[a.pk for a in answers.used]).update(
                    consumed_at=now, sealed_input=""
                )

    # -- actions ----------------------------------------------------------------------------------
    def lookup(self, answers: Answers) -> Any:
        run = self.run

        def resolve(expr: str) -> str:
            if expr == "input":
                approval = answers.gate
                if approval is None or not approval.sealed_input:
                    raise StepFailed("the input for this step is no longer available")
                supplied = open_text(approval.sealed_input, scope=approval_scope(run.tenant_id))
                self.remember(supplied)
                return supplied
            if expr == "choice":
                return answers.gate.choice if answers.gate is not None else ""
            source, _, name = expr.partition(".")
            if source == "params":
                return str(run.params.get(name, ""))
            if source == "outputs":
                return str(run.outputs.get(name, ""))
            if source == "secrets":
                secret = secret_resolve(tenant_id=run.tenant_id, name=name)
                if secret is None:
                    raise StepFailed(f"the vault has no secret named {name!r}")
                origin = _origin(self.page.url)
                if secret.origins and origin not in secret.origins:
                    raise StepFailed(
                        f"the secret {name!r} may only be typed into {', '.join(secret.origins)}, "
                        f"and this page is {origin or self.page.url}"
                    )
                self.remember(secret.value)
                return secret.value
            raise StepFailed(f"unknown template {{{{{expr}}}}}")

        return resolve

    def perform(self, step: dict[str, Any], answers: Answers) -> None:
        page = self.page
        action = step["action"]
        timeout_ms = float(step.get("timeout") or settings.TWIN_DEFAULT_STEP_TIMEOUT) * 1000
        resolve = self.lookup(answers)
        self.acted_locator, self.healed, self.described = None, None, False
        if action == "ask":  # the model's question, answered: nothing to do on the page
            self.note_answer(self.run.current_step, answers)
            return
        if action in {"done", "plan"}:
            return

        def field_value(name: str) -> str:
            return render(str(step.get(name, "")), resolve)

        from playwright.sync_api import Error as PlaywrightError

        try:
            if action == "goto":
                url = field_value("url")
                try:
                    check_url(url)
                except UrlRefused as exc:
                    raise StepFailed(str(exc)) from None
                # The egress proxy is the real check (it sees the address actually connected to,
                # redirects included): its refusal is a 403 page that must not pass for the site.
                refusal = refusal_of(page.goto(url, timeout=timeout_ms, wait_until="load"))
                if refusal:
                    raise StepFailed(refusal)
                return
            selector = field_value("selector") if "selector" in step else ""
            if action == "assert_text":
                self.assert_text(field_value("text"), selector or "body", timeout_ms)
                return
            bundle = self.bundle_of(step)
            if action in SINGLE_TARGET_ACTIONS:
                value = field_value("value") if action in {"fill", "select"} else ""
                # A secret or a human's input is typed as dots: screenshots and the video never show it.
                masked = action == "fill" and any(
                    name == "input" or name.startswith("secrets.")
                    for name in templates_in(str(step.get("value", "")))
                )
                self.act_on_one(
                    action, selector, value, timeout_ms, answers, masked=masked, bundle=bundle, step=step
                )
                return
            # press, wait_for, extract: the first match of a selector; a skill's bundle finds one element.
            element = (
                self.find_recorded(step, bundle, timeout_ms, answers)
                if bundle is not None
                else page.locator(selector).first
            )

            def note() -> None:
                self.note_element(
                    element if bundle is not None else self.resolve(element, timeout_ms), timeout_ms
                )

            if action == "press":
                note()
                element.press(field_value("key"), timeout=timeout_ms)
            elif action == "wait_for":
                if bundle is not None:
                    element.wait_for_element_state("visible", timeout=timeout_ms)
                else:
                    element.wait_for(state="visible", timeout=timeout_ms)
                note()
            elif action == "extract":
                note()
                attribute = step.get("attribute")
                if bundle is not None:  # an ElementHandle: found already, no waiting
                    value = element.get_attribute(attribute) if attribute else element.inner_text()
                elif attribute:
                    value = element.get_attribute(attribute, timeout=timeout_ms)
                else:
                    value = element.inner_text(timeout=timeout_ms)
                # Scrubbed before it is cut: half a secret is still half a secret.
                self.run.outputs[step["name"]] = cut(self.scrub((value or "").strip()), MAX_OUTPUT)
        except PlaywrightError as exc:
            raise StepFailed(explain_refusal(_short_error(exc))) from None
        finally:
            self.release_handles()

    def release_handles(self) -> None:
        """Let the page forget the elements found for this step (a long run on one page piles them
        up): the disposals are sent, not waited for (nothing reads their answers)."""
        handles, self.handles, self.prefetched = self.handles, [], None
        found_soon, self.found_soon = self.found_soon, None
        if found_soon is not None:  # asked for, never taken in (the step went another way)
            found_soon[1].drop(lambda handle: handle.dispose())
        for handle in handles:
            let_go(handle, lambda handle: handle.dispose())

    def bundle_of(self, step: dict[str, Any]) -> dict[str, Any] | None:
        """The locator bundle a skill step finds its element by (replay_bundle), with this run's
        values where it names a parameter (what the page shows of it); None for a selector's step."""
        bundle = replay_bundle(step)
        if bundle is not None and locators.bundle_templates(bundle):
            bundle = locators.map_displayed(bundle, lambda text: render(text, self.param_value))
        return bundle

    def param_value(self, expr: str) -> str:
        """``{{params.NAME}}`` in a bundle's texts: this run's value (nothing else may be named there)."""
        source, _, name = expr.partition(".")
        return str(self.run.params.get(name, "")) if source == "params" else ""

    def note_element(self, target: Any, timeout_ms: float) -> None:
        """Record the locator bundle of the element the step is about to act on (engine.locators)."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        if self.described:
            return
        try:
            bundle = locators.describe_element(target, timeout_ms=timeout_ms)
        except PlaywrightTimeout:
            raise  # the element is not there: the action would time out the same way
        except Exception as exc:
            if "strict mode violation" in str(exc):
                raise
            log.warning("run %s: could not describe the element acted on: %s", self.run.pk, exc)
            return
        self.acted_locator = locators.scrub_bundle(bundle, self.scrub) if bundle else None
        self.described = True

    def find_recorded(
        self, step: dict[str, Any], bundle: dict[str, Any], timeout_ms: float, answers: Answers
    ) -> Any:
        """The element a skill step's bundle means on this page: pause, never guess, when it is unclear."""
        planned, self.planned_handle = self.planned_handle, None
        if planned is not None and planned[0] == self.run.current_step:
            # The element the model just chose (its bundle was read from it a moment ago).
            self.acted_locator, self.described = locators.clean_bundle(step.get("locator")), True
            return planned[1]
        pick = None
        chosen = answers.ambiguity
        if chosen is not None:
            for candidate in chosen.candidates or []:
                if candidate.get("lookalike") and candidate["label"] == chosen.choice:
                    pick = int(candidate["nth"])
        first = None
        found_soon = self.found_soon
        if found_soon is not None and found_soon[0] == self.run.current_step and pick is None:
            self.found_soon, first = None, found_soon[1]  # (else let go with the step's handles)
        try:
            found = locators.find(self.page, bundle, timeout_ms=timeout_ms, pick=pick, first=first)
        except locators.Ambiguous as exc:
            labels = _describe_candidates(exc.candidates)
            raise Pause(
                cause="ambiguity",
                trigger="ambiguity",
                kind="choice",
                options=labels,
                candidates=[
                    {"label": label, "nth": nth, "lookalike": True} for nth, label in enumerate(labels)
                ],
                prompt=(
                    f"{describe(step)}: {len(labels)} elements on this page look like the one this skill "
                    "acted on, and nothing recorded tells them apart. Which one is meant?"
                ),
            ) from None
        except locators.NotFound as exc:
            raise StepFailed(f"{describe(step)}: {exc}") from None
        if found.healed:
            self.healed = found
        elif found.by != "human":
            # The primary locator held: the element is the one the skill describes (its fingerprint
            # agreed), and the skill's bundle is what the step records: no second look at the page.
            self.acted_locator = locators.clean_bundle(step.get("locator"))
            self.described = True
        self.handles.append(found.handle)
        return found.handle

    def act_on_one(
        self,
        action: str,
        selector: str,
        value: str,
        timeout_ms: float,
        answers: Answers,
        *,
        masked: bool = False,
        bundle: dict[str, Any] | None = None,
        step: dict[str, Any] | None = None,
    ) -> None:
        """Act on the one element the selector means; more than one match is a question for a human.

        Playwright's strict locators refuse to act on several matches, so the common case costs no
        extra round trip: candidates are only counted and described when that happens. A skill
        step's element is found by its locator bundle instead (find_recorded).
        """
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        locator = self.page.locator(selector)
        target = locator
        if bundle is not None:
            target = self.find_recorded(step or {"action": action}, bundle, timeout_ms, answers)
        chosen = answers.ambiguity
        if chosen is not None and bundle is None:
            count = locator.count()
            for candidate in chosen.candidates or []:
                if candidate["label"] == chosen.choice and candidate["nth"] < count:
                    target = locator.nth(candidate["nth"])

        def act(element: Any) -> None:
            if action == "click":
                element.click(timeout=timeout_ms)
            elif action == "fill":
                if masked:
                    element.evaluate(MASK_JS)
                element.fill(value, timeout=timeout_ms)
            elif action == "check":
                element.check(timeout=timeout_ms)
            elif action == "select":
                element.select_option(value, timeout=timeout_ms)

        try:
            # The element is described before it is acted on (resolve: in the same page call that
            # finds the selector's one match, then the action goes through the strict locator like
            # any Playwright script's; or, when it has yet to appear, through a handle once it is
            # there). A skill's bundle has found its handle already.
            handle = target if bundle is not None else self.resolve(target, timeout_ms)
            self.note_element(handle, timeout_ms)
            try:
                act(handle)
            except PlaywrightError as exc:
                if handle is target or "not attached" not in str(exc):
                    raise
                act(target)  # re-rendered under the handle: the locator finds the element again
        except PlaywrightError as exc:
            if bundle is None and "strict mode violation" in str(exc):
                self.ask_which(locator, selector)
            if bundle is None and isinstance(exc, PlaywrightTimeout) and locator.count() == 0:
                raise StepFailed(f"nothing matches {selector!r} after {timeout_ms / 1000:g} s") from None
            raise

    def describe_soon(self, index: int, step: dict[str, Any], answers: Answers) -> None:
        """Start describing the element a hand-written click, fill, check, select, press or extract
        means (resolve), or finding the one a skill's step means (find_recorded), on the browser's
        loop, while this thread writes the step's start: the page call and the database's commit
        overlap. A read of the page: nothing happens to it."""
        self.prefetched = None
        action, selector = step["action"], str(step.get("selector") or "")
        if (
            action not in SINGLE_TARGET_ACTIONS | {"press", "extract", "wait_for"}
            or answers.ambiguity is not None  # a person's pick among several
            or self.page is None
        ):
            return
        if replay_bundle(step) is not None:  # a skill's step: its bundle finds the element
            bundle = self.bundle_of(step)
            if bundle is not None and self.planned_handle is None:
                with contextlib.suppress(Exception):  # the page is going: found the usual way
                    self.found_soon = (index, locators.find_soon(self.page, bundle))
            return
        if action == "wait_for" or not selector or templates_in(selector):
            return  # (a template is rendered at the action, with this run's values)
        if action not in SINGLE_TARGET_ACTIONS:
            selector += " >> nth=0"  # (Locator.first, as perform asks for it)
        request = locators.describe_css_request(selector)
        with contextlib.suppress(Exception):  # the page is going: described the usual way
            cdp = self.documents.session_for(self.page)
            self.prefetched = (
                selector,
                submit_with(cdp, lambda session: session.send("Runtime.evaluate", request)),
            )

    def resolve(self, locator: Any, timeout_ms: float) -> Any:
        """What to act on for a strict locator, its element described on the way (note_element).

        The common case is one page call: the locator matches one element now, its bundle is read
        in that same call, and the locator itself comes back (the action resolves it again, as a
        plain Playwright script's would). A plain CSS selector is read by the page itself
        (locators.describe_css), any other through Playwright's selector engine (describe_only).
        Otherwise (nothing yet, several, a page between documents) the element as a handle once it
        is there, released after the step; several matches raise Playwright's strict mode violation.
        """
        if not self.described:
            count, bundle = -1, None
            # A page between documents or a selector the page cannot read now: the strict path says.
            with contextlib.suppress(Exception):
                selector = locators.selector_of(locator)
                prefetched, self.prefetched = self.prefetched, None
                if selector is not None:
                    page = locator.page
                    if prefetched is not None and prefetched[0] == selector and page is self.page:
                        # Asked as the step started (describe_soon); anything but one match is asked
                        # again now, as it would have been.
                        with contextlib.suppress(Exception):
                            count, bundle = locators.describe_css_answer(prefetched[1].result(timeout=10))
                    if count != 1:
                        cdp = self.documents.session_for(page) if page is self.page else None
                        count, bundle = locators.describe_css(page, selector, cdp=cdp)
                if count == -1:
                    count, bundle = locators.describe_only(locator)
            if count == 1:
                self.acted_locator = locators.scrub_bundle(bundle, self.scrub) if bundle else None
                self.described = True
                return locator
        handle = locator.element_handle(timeout=timeout_ms)
        self.handles.append(handle)
        return handle

    def ask_which(self, locator: Any, selector: str) -> None:
        count = locator.count()
        labels = _describe_candidates(locator.evaluate_all(_CANDIDATES_JS))
        raise Pause(
            cause="ambiguity",
            trigger="ambiguity",
            kind="choice",
            options=labels,
            candidates=[{"label": label, "nth": nth} for nth, label in enumerate(labels)],
            prompt=f"{selector!r} matches {count} elements on this page. Which one is meant?",
        )

    def assert_text(self, text: str, selector: str, timeout_ms: float) -> None:
        """The first element ``selector`` matches shows ``text`` (whitespace runs count as one
        space), now or within the timeout: Playwright's own web-first assertion, which waits in
        the page across navigations and re-renders (no polling from here)."""
        from playwright.async_api import expect

        first = self.page.locator(selector).first
        try:
            run_with(
                first,
                lambda locator: expect(locator).to_contain_text(
                    text, timeout=timeout_ms, use_inner_text=True
                ),
            )
        except AssertionError:
            raise StepFailed(
                f"the text {text!r} did not appear on the page within {timeout_ms / 1000:g} s"
            ) from None

    # -- pausing and finishing ---------------------------------------------------------------------
    def pause(self, index: int, step: dict[str, Any], pause: Pause) -> None:
        from runs.states import run_transition, step_transition

        run, page = self.run, self.page
        page_url, page_title, page_text, shot = "", "", "", b""
        page_state = None
        with contextlib.suppress(Exception):
            # A document loaded since the last step finished wiped what the steps before typed.
            self.drain()
            self.track_document(index - 1)
            page_state = restore_mod.page_state(page, run, index, self.document_step)
        with contextlib.suppress(Exception):
            # Scrubbed before they are cut to size: half a secret is still half a secret.
            page_url = self.scrub(page.url)[:2048]
            page_title = self.scrub(page.title())[:500]
            page_text = visible_text(self.scrub(page.evaluate(PAGE_TEXT_JS)))
            shot = page.screenshot(type="jpeg", quality=75, timeout=10_000)
        boxes = None
        with contextlib.suppress(Exception):
            # Where the step's element (or each option's) is on that screenshot (engine.boxes).
            boxes = capture_boxes(
                page,
                step,
                cause=pause.cause,
                candidates=pause.candidates,
                options=pause.options,
                param=self.param_value,
                scrub=self.scrub,
            )
        self.checkpoint(run.checkpoint_step)
        self.stop_recording(final=shot)  # paused time is not recorded: the next segment starts at the resume
        approval_id = uuid.uuid4()
        screenshot_path = ""
        if shot:
            screenshot_path = default_storage.save(
                f"screenshots/{run.pk}/{approval_id}.jpg", ContentFile(shot)
            )
        with transaction.atomic():
            Approval.objects.create(
                id=approval_id,
                tenant_id=run.tenant_id,
                run=run,
                step_index=index,
                step_count=len(run.program),
                action=step["action"],
                trigger=pause.trigger,
                kind=pause.kind,
                prompt=self.scrub(pause.prompt),
                # Ambiguity options are labels read off the page: scrubbed alike, so they still match.
                options=self.scrubber.data(pause.options),
                cause=pause.cause,
                candidates=self.scrubber.data(pause.candidates),
                pattern=pause.pattern,
                page_url=page_url,
                page_title=page_title,
                page_text=page_text,
                screenshot=screenshot_path,
                screenshot_sha256=hashlib.sha256(shot).hexdigest() if shot else "",
                page_state=page_state,
                boxes=boxes,
                expires_at=timezone.now() + timedelta(seconds=pause.expires_in),
                **rule_for(run, step, pause),  # who decides, how many approvals, escalation
            )
            step_transition(
                run,
                index,
                to=StepStatus.AWAITING_APPROVAL,
                expect=[StepStatus.QUEUED, StepStatus.RUNNING],
                event_data={"trigger": pause.trigger},
            )
            won = run_transition(
                run,
                to=RunStatus.AWAITING_APPROVAL,
                expect=[RunStatus.RUNNING],
                current_step=index,
                lease_owner="",
                lease_until=None,
                event_data={
                    "trigger": pause.trigger,
                    "kind": pause.kind,
                    "approval_id": str(approval_id),
                    "pid": os.getpid(),
                },
            )
            if not won:
                transaction.set_rollback(True)
        if not won:
            raise Stop()
        enforce_parking_budget()

    def stop_recording(self, *, final: bytes | None = None, snapshot: bool = False) -> None:
        """End this execution's video segment (before the run's status says it paused or ended).

        ``final`` is a picture of the page now; ``snapshot`` takes one (the last change of a page
        may have sent no screencast frame).
        """
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return
        if snapshot and final is None and self.page is not None:
            with contextlib.suppress(Exception):
                final = self.page.screenshot(type="jpeg", quality=settings.TWIN_VIDEO_QUALITY, timeout=3000)
        try:
            recorder.stop(final=final)
        except Exception:
            log.exception("run %s: could not store its video segment", self.run.pk)

    def finish(self) -> None:
        from runs.states import run_transition

        self.stop_recording(snapshot=True)
        run = self.run
        context_id = run.browser_context_id
        won = run_transition(
            run,
            to=RunStatus.COMPLETED,
            expect=[RunStatus.RUNNING],
            outputs=run.outputs,
            lease_owner="",
            lease_until=None,
            browser_context_id="",
            target_id="",
        )
        if won:
            self.session.close_context(context_id)

    def _fail(self, error: str) -> None:
        from runs.states import run_transition

        self.stop_recording(snapshot=True)
        run = self.run
        context_id = run.browser_context_id
        if run_transition(
            run,
            to=RunStatus.FAILED,
            expect=[RunStatus.RUNNING],
            error=self.scrub(error),
            outputs=run.outputs,
            lease_owner="",
            lease_until=None,
            browser_context_id="",
            target_id="",
        ):
            self.session.close_context(context_id)


def replay_bundle(step: dict[str, Any]) -> dict[str, Any] | None:
    """The locator bundle a skill step finds its element by; None: the step's selector does.

    A step whose selector depends on a template (a parameter, a human's choice) means another
    element when the template's value differs: its recorded bundle is not used.
    """
    bundle = step.get("locator")
    if not isinstance(bundle, dict):
        return None
    if templates_in(str(step.get("selector", ""))):
        return None
    return locators.clean_bundle(bundle)


def _origin(url: str) -> str:
    """The page's origin in the form secrets list theirs; "" for pages without one (about:, data:)."""
    try:
        return normalize_origin(url)
    except SecretError:
        return ""


def visible_text(text: str, limit: int = PAGE_TEXT_LIMIT) -> str:
    """The page's text as a person reads it: blank lines and runs of spaces folded, trimmed."""
    lines = (" ".join(line.split()) for line in (text or "").splitlines())
    return cut("\n".join(line for line in lines if line), limit)


def cut(text: str, limit: int) -> str:
    """At most ``limit`` characters; a cut text ends with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _short_error(exc: Exception) -> str:
    message = str(exc).strip().splitlines()
    first = message[0] if message else type(exc).__name__
    return first.removeprefix("Error: ")[:500]


_CANDIDATES_JS = """(els) => els.map((el) => {
  const clean = (s) => (s || '').replace(/\\s+/g, ' ').trim();
  const text = clean(el.innerText) || clean(el.value) || clean(el.getAttribute('aria-label')) ||
    clean(el.getAttribute('title')) || clean(el.getAttribute('placeholder')) ||
    clean(el.getAttribute('name')) || el.tagName.toLowerCase();
  const context = [];
  for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
    context.push(clean(a.innerText));
  }
  return {text: text.slice(0, 80), context};
})"""


def _describe_candidates(raw: list[dict[str, Any]]) -> list[str]:
    """One label per element, worded so a person can tell them apart."""
    texts = [c["text"] for c in raw]
    labels: list[str] = []
    for i, candidate in enumerate(raw):
        label = candidate["text"]
        if texts.count(label) > 1:
            others = [c for j, c in enumerate(raw) if j != i and c["text"] == label]
            for level, ancestor in enumerate(candidate["context"]):
                if ancestor and all(
                    level >= len(o["context"]) or o["context"][level] != ancestor for o in others
                ):
                    extra = ancestor.replace(label, " ").strip(" -—:|·,")
                    extra = " ".join(extra.split())[:60]
                    if extra:  # else this ancestor differs only in the label itself: look further up
                        label = f"{label} — {extra}"
                        break
        labels.append(label)
    seen: dict[str, int] = {}
    unique = []
    for i, label in enumerate(labels):
        if labels.count(label) > 1:
            seen[label] = seen.get(label, 0) + 1
            label = f"{label} (#{seen[label]} of {labels.count(label)})"
        unique.append(label)
        del i
    return unique


# -- host housekeeping ---------------------------------------------------------------------------
def enforce_parking_budget() -> None:
    """Keep this host's parked pages within TWIN_PARKED_MEMORY_MB (and TWIN_MAX_PARKED_PAGES, if
    set): past it the least recently paused runs are checkpoint-only (their pages are closed; an
    answer restores them from the checkpoint, verified: engine.restore)."""
    from .memory import page_memory

    parked = list(
        Run.objects.filter(host=settings.TWIN_HOST_ID, status=RunStatus.AWAITING_APPROVAL)
        .exclude(target_id="")
        .order_by("-updated_at")
        .values_list("pk", "browser_context_id")
    )
    keep, reason = len(parked), ""
    cap = settings.TWIN_MAX_PARKED_PAGES
    if cap and keep > cap:
        keep, reason = cap, "count"
    memory = page_memory() if parked else None
    page_mb = memory.per_page_mb if memory is not None else 0.0
    if page_mb > 0 and keep * page_mb > settings.TWIN_PARKED_MEMORY_MB:
        keep, reason = int(settings.TWIN_PARKED_MEMORY_MB // page_mb), "memory"
    for run_id, context_id in parked[keep:]:
        if Run.objects.filter(
            pk=run_id, browser_context_id=context_id, status=RunStatus.AWAITING_APPROVAL
        ).update(browser_context_id="", target_id=""):
            browser_mod.session().close_context(context_id)
            run = Run.objects.get(pk=run_id)
            with transaction.atomic():
                record_event(
                    run,
                    "page.evicted",
                    step_index=run.current_step,
                    data={
                        "host": settings.TWIN_HOST_ID,
                        "reason": reason,
                        "cap": cap or None,
                        "budget_mb": settings.TWIN_PARKED_MEMORY_MB,
                        "page_mb": round(page_mb, 1),
                        "parked": len(parked),
                    },
                )


def release_page(context_id: str) -> None:
    browser_mod.session().close_context(context_id)


def execute_run(run_id: Any, *, reason: str) -> None:
    """Start or continue the run until it pauses or ends (the tasks' one entry point)."""
    from runs.states import run_transition

    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return
    if run.status == RunStatus.QUEUED:
        run_transition(run, to=RunStatus.RUNNING, expect=[RunStatus.QUEUED])
        run.refresh_from_db()
    if run.status != RunStatus.RUNNING:
        log.info("run %s: %s, nothing to %s", run.pk, run.status, reason)
        return
    first_step = run.program[max(run.current_step, 1) - 1] if run.program else {}
    owner = claim_lease(run, float(first_step.get("timeout") or settings.TWIN_DEFAULT_STEP_TIMEOUT) + 30)
    if owner is None:
        log.info("run %s: another execution holds the lease; leaving it alone", run.pk)
        return
    run.refresh_from_db()
    # The scrub list is rebuilt for every execution (start, resume, restore): an earlier one's is gone.
    execution = Execution(run=run, owner=owner, reason=reason, scrubber=scrubber_for_run(run))
    with scrubbing(execution.scrubber):
        try:
            execution.execute()
        except Stop:
            run.refresh_from_db()
            if run.status in {RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.EXPIRED, RunStatus.REJECTED}:
                execution.session.close_context(run.browser_context_id)
        finally:
            execution.stop_recording()
            execution.close_mask()
            execution.documents.close()
            Run.objects.filter(pk=run.pk, lease_owner=owner).update(lease_owner="", lease_until=None)
