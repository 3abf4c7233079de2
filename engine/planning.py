"""The agent's loop inside the executor: a goal-only run's steps are planned one at a time.

A planned run's program starts as one step (open the run's URL). When the executor runs out of
steps and the run is still being planned, it appends a ``plan`` step; performing it observes the
page, asks the model for one tool call (:mod:`engine.planner`), checks it, and *replaces* the
``plan`` step with the real step it decided: an element step with the locator bundle and a stable
selector of the element acted on (aria refs do not survive a reload, so nothing later depends on
them), the model's intent as its label, and a gate when a person must decide first (the tenant's
policy, a one-time code, the model's own question). From there it is an ordinary step: it pauses,
resumes, restores and compiles like any other.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F

from runs.events import record_event
from runs.models import Run, Step, StepStatus
from runs.program import validate_program
from twin_site import limits
from vault.crypto import InvalidToken, open_text

from . import locators
from . import planner as model
from .netguard import UrlRefused, check_url

log = logging.getLogger(__name__)

PLAN_LABEL = "Plan the next action"
BLOCKED_OPTIONS = ["retry", "skip", "fail"]
REF_TIMEOUT_MS = 3000


class ToolError(Exception):
    """What was wrong with the model's tool call: told to the model, which may try again."""


class Planning:
    """Mixed into :class:`engine.executor.Execution` (it brings run, page, scrubber, renew, …)."""

    run: Run
    page: Any
    owner: str
    scrubber: Any
    handles: list[Any]
    acted_locator: dict[str, Any] | None
    described: bool
    # The element the model just chose, acted on directly the first time (index, handle).
    planned_handle: tuple[int, Any] | None = None
    _tenant: Any = None
    _refs: set[str] | None = None

    # -- growing the program -------------------------------------------------------------------------
    def planning(self) -> bool:
        run = self.run
        return run.planner == "model" and not (run.plan or {}).get("finished")

    def add_plan_step(self, index: int) -> None:
        """Append a ``plan`` step at ``index`` (the model decides what it becomes when it runs)."""
        run = self.run
        program = [*run.program, {"action": "plan", "label": PLAN_LABEL}]
        with transaction.atomic():
            Step.objects.get_or_create(run=run, index=index, defaults={"action": "plan", "label": PLAN_LABEL})
            self._save_program(program)

    def _save_program(self, program: list[dict[str, Any]], **fields: Any) -> None:
        run = self.run
        Run.objects.filter(pk=run.pk).update(program=program, step_total=len(program), **fields)
        run.program, run.step_total = program, len(program)
        for name, value in fields.items():
            setattr(run, name, value)

    def _plan_state(self, **changes: Any) -> dict[str, Any]:
        state = {"rounds": 1, "steps": 0, "finished": False, "summary": "", "paused_for": ""}
        state.update(self.run.plan or {})
        state.update(changes)
        return state

    def save_plan(self, **changes: Any) -> None:
        state = self._plan_state(**changes)
        Run.objects.filter(pk=self.run.pk).update(plan=state)
        self.run.plan = state

    @property
    def tenant(self) -> Any:
        if self._tenant is None:
            from tenants.models import Tenant

            self._tenant = Tenant.objects.get(pk=self.run.tenant_id)
        return self._tenant

    # -- one plan step -----------------------------------------------------------------------------------
    def plan_step(self, index: int, retrying: bool) -> dict[str, Any]:
        """Ask the model what step ``index`` is; store it in place of the ``plan`` step; return it."""

        run, tenant = self.run, self.tenant
        state = self._plan_state()
        if retrying:
            # A person chose "retry" at this step's pause: past a limit, that grants another round.
            rounds = state["rounds"] + (1 if state.get("paused_for") == "limit" else 0)
            self.save_plan(rounds=rounds, paused_for="")
            state = self._plan_state()
        config = model.model_config(tenant)
        if config is None:
            self._blocked(
                "model", "no language model is configured any more (TWIN_LLM_BASE_URL, TWIN_LLM_MODEL)"
            )
        self._check_limits(state, counting_step=True)
        messages = self.plan_messages(index)
        errors: list[str] = []
        calls = tokens_in = tokens_out = latency = 0
        while True:
            self._check_limits(self._plan_state())
            self.renew(index, {"timeout": settings.TWIN_LLM_TIMEOUT})
            try:
                answer = model.ask(config, messages)  # type: ignore[arg-type]
            except model.ModelUnavailable as exc:
                self._blocked("model", str(exc))
            calls += 1
            tokens_in += answer.tokens_in
            tokens_out += answer.tokens_out
            latency += answer.latency_ms
            Run.objects.filter(pk=run.pk).update(
                model_calls=F("model_calls") + 1,
                tokens_in=F("tokens_in") + answer.tokens_in,
                tokens_out=F("tokens_out") + answer.tokens_out,
            )
            run.model_calls += 1
            run.tokens_in += answer.tokens_in
            run.tokens_out += answer.tokens_out
            try:
                if answer.call is None:
                    raise ToolError("answer with exactly one tool call")
                step, record = self.decide(answer.call, index)
                break
            except ToolError as exc:
                error = str(exc)
                errors.append(error)
                log.info("run %s: the model's call was refused: %s", run.pk, error)
                if len(errors) >= model.MAX_ERRORS_IN_A_ROW:
                    self._blocked(
                        "errors",
                        f"the model made {len(errors)} invalid calls in a row (the last: {error})",
                        errors=errors,
                    )
                if answer.call is not None:
                    messages = [
                        *messages,
                        answer.message,
                        {"role": "tool", "tool_call_id": answer.call.id, "content": f"Error: {error}"},
                    ]
        record.update(
            calls=calls,
            errors=[self.scrub(e) for e in errors],
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_ms=latency,
        )
        program = list(run.program)
        program[index - 1] = step
        finished = step["action"] == "done"
        plan = self._plan_state(steps=state["steps"] + 1, finished=finished, paused_for="")
        if finished:
            plan["summary"] = self.scrub(str(record["arguments"].get("summary", "")))[: limits.MAX_PROMPT]
        with transaction.atomic():
            Step.objects.filter(run=run, index=index).update(
                action=step["action"], label=step.get("label", "")[:300], planned=record
            )
            self._save_program(program, plan=plan)
            event: dict[str, Any] = {
                "tool": record["tool"],
                "action": step["action"],
                "intent": step.get("label", ""),
                "calls": calls,
                "tokens_in": tokens_in,
                "tokens_out": tokens_out,
            }
            if record.get("policy"):
                event["policy"] = record["policy"]
            record_event(run, "step.planned", step_index=index, data=event)
            if record.get("vault"):
                record_event(run, "agent.mfa_from_vault", step_index=index, data=record["vault"])
        if finished and isinstance(record["arguments"].get("outputs"), dict):
            for name, value in record["arguments"]["outputs"].items():
                # What a step read off the page stays the record: a skill replays the extract, never
                # the model's rewording of it. Values only the model reported are added.
                if name not in run.outputs:
                    run.outputs[name] = model._short(self.scrub(str(value)), limits.MAX_OUTPUT)
            Run.objects.filter(pk=run.pk).update(outputs=run.outputs)
        return step

    def _check_limits(self, state: dict[str, Any], *, counting_step: bool = False) -> None:
        tenant, run = self.tenant, self.run
        rounds = max(int(state.get("rounds") or 1), 1)
        reached = ""
        if counting_step and state.get("steps", 0) >= tenant.agent_max_steps * rounds:
            reached = f"{tenant.agent_max_steps} planned steps"
        elif run.model_calls >= tenant.agent_max_model_calls * rounds:
            reached = f"{tenant.agent_max_model_calls} model calls"
        elif run.tokens_in + run.tokens_out >= tenant.agent_max_tokens * rounds:
            reached = f"{tenant.agent_max_tokens:,} model tokens"
        if reached:
            self._blocked(
                "limit",
                f"the agent reached its limit of {reached} for this run"
                + (f" ({rounds} rounds)" if rounds > 1 else "")
                + ". Retry grants one more round of every limit; skip finishes the run as it stands; "
                "fail ends it",
            )

    def _blocked(self, why: str, message: str, **data: Any) -> Any:
        from .executor import Pause

        self.save_plan(paused_for=why)
        with transaction.atomic():
            record_event(
                self.run,
                "agent.blocked",
                step_index=self.run.current_step,
                data={"why": why, "detail": self.scrub(message)[:2000], **data},
            )
        raise Pause(
            cause="blocked",
            trigger="blocked",
            kind="choice",
            options=BLOCKED_OPTIONS,
            prompt=f"The agent cannot plan step {self.run.current_step}: {self.scrub(message)}",
        )

    def stop_planning(self) -> None:
        """A person skipped a ``plan`` step: the run finishes as it stands."""
        self.save_plan(finished=True, paused_for="")

    # -- what the model is told ---------------------------------------------------------------------------
    def plan_messages(self, index: int, note: str = "") -> list[dict[str, Any]]:
        run, page = self.run, self.page
        redactor = self.redactor()
        with contextlib.suppress(Exception):
            page.wait_for_load_state("load", timeout=5000)
        try:
            snapshot = page.aria_snapshot(mode="ai", timeout=10_000)
        except Exception as exc:
            snapshot = f"- text: [the page could not be read: {model._short(str(exc), 200)}]"
        self._refs = model.snapshot_refs(snapshot)
        snapshot = redactor.snapshot(snapshot, model.password_values(page))
        snapshot = model.cut_snapshot(snapshot, settings.TWIN_LLM_SNAPSHOT_LIMIT)
        title = ""
        with contextlib.suppress(Exception):
            title = page.title()
        from vault.selectors import secret_list

        text = model.user_message(
            goal=run.goal,
            params=run.params or {},
            secrets=[(s.name, s.kind) for s in secret_list(tenant=self.tenant)],
            actions=self.history(index),
            url=page.url,
            title=title,
            snapshot=snapshot,
        )
        text = redactor.text(text)
        content: Any = text
        if self.tenant.agent_vision:
            with contextlib.suppress(Exception):
                shot = page.screenshot(type="jpeg", quality=70, timeout=10_000)
                content = [
                    {"type": "text", "text": text},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(shot).decode()},
                    },
                ]
        messages: list[dict[str, Any]] = [{"role": "system", "content": model.SYSTEM_PROMPT}]
        if note:  # a task of its own (a repair): said apart, the user message keeps its layout
            messages.append({"role": "system", "content": note})
        return [*messages, {"role": "user", "content": content}]

    def redactor(self) -> model.Redactor:
        """Every secret of the tenant as ``[secret:NAME]``; what the run typed or was told otherwise
        (a human's input, a one-time code) as ``[redacted]``. Built afresh: TOTP codes move on."""
        from vault.selectors import secret_list
        from vault.services import secret_scrub_values

        redactor = model.Redactor()
        for secret in secret_list(tenant=self.tenant):
            try:
                redactor.add(
                    secret_scrub_values(tenant_id=self.run.tenant_id, name=secret.name),
                    f"[secret:{secret.name}]",
                )
            except Exception as exc:  # an unreadable secret: it cannot be typed either
                log.warning(
                    "run %s: could not read secret %r: %s", self.run.pk, secret.name, type(exc).__name__
                )
        redactor.add(self.scrubber.values, "[redacted]")
        return redactor

    def history(self, index: int) -> list[str]:
        """One line per step before ``index``: the tool call (or the step) and its outcome."""
        run = self.run
        rows = {row.index: row for row in Step.objects.filter(run=run, index__lt=index)}
        lines = []
        for number, step in enumerate(run.program[: index - 1], start=1):
            row = rows.get(number)
            planned = row.planned if row is not None and isinstance(row.planned, dict) else None
            if planned is not None:
                tool, arguments = planned.get("tool", step["action"]), dict(planned.get("arguments") or {})
            else:
                tool = step["action"]
                arguments = {k: step[k] for k in ("url", "selector", "value", "key", "name") if k in step}
                if step.get("label"):
                    arguments["intent"] = step["label"]
            lines.append(model.action_line(number, tool, arguments, self._outcome(step, row, planned)))
        return lines

    def _outcome(self, step: dict[str, Any], row: Step | None, planned: dict[str, Any] | None) -> str:
        if row is None:
            return "not done"
        if row.status == StepStatus.DONE:
            if step["action"] == "ask" and planned is not None:
                return f"answered: {planned.get('answer', '')}"
            if step["action"] == "extract" and step.get("name") in self.run.outputs:
                return f"done: {step['name']} = {self.run.outputs[step['name']]}"
            return "done"
        if row.status == StepStatus.SKIPPED:
            return "skipped"
        if row.status == StepStatus.FAILED:
            return f"failed: {model._short(row.error, 200)}"
        return str(row.status)

    # -- judging the call ------------------------------------------------------------------------------------
    def decide(self, call: model.ToolCall, index: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The step the call means, and what to record of it; ToolError if it cannot be done."""
        name, args = call.name, call.arguments
        if name not in model.TOOL_NAMES:
            raise ToolError(f"unknown tool {name!r}; the tools are {', '.join(model.TOOL_NAMES)}")
        if args is None:
            raise ToolError(f"the arguments of {name} must be a JSON object")
        arguments = {k: v for k, v in args.items() if isinstance(k, str)}
        record: dict[str, Any] = {"tool": name, "arguments": self.scrubber.data(arguments)}
        intent = arguments.get("intent")
        if name not in {"ask_human", "done", "goto"} and (not isinstance(intent, str) or not intent.strip()):
            raise ToolError(f"{name} needs an intent: a short sentence saying what the action is for")
        label = " ".join(str(intent or "").split())[: limits.MAX_LABEL]
        record["intent"] = label
        if name == "goto":
            return self._decide_goto(arguments, record)
        if name == "ask_human":
            return self._decide_ask(arguments, record)
        if name == "done":
            summary = arguments.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                raise ToolError("done needs a summary")
            outputs = arguments.get("outputs") or {}
            if not isinstance(outputs, dict) or not all(
                model.valid_name(k) and isinstance(v, str | int | float) for k, v in outputs.items()
            ):
                raise ToolError("done's outputs must be an object of names (letters, digits, _) to strings")
            if len(outputs) > limits.MAX_PARAMS:
                raise ToolError(f"done takes at most {limits.MAX_PARAMS} outputs")
            record["intent"] = " ".join(summary.split())[: limits.MAX_LABEL]
            return {"action": "done", "label": "Done: " + record["intent"]}, record
        return self._decide_element(name, arguments, label, record)

    def _decide_goto(
        self, arguments: dict[str, Any], record: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        url = arguments.get("url")
        if not isinstance(url, str) or not url:
            raise ToolError("goto needs a url")
        try:
            check_url(url)
        except UrlRefused as exc:
            raise ToolError(f"that URL is refused: {exc}") from None
        step = {"action": "goto", "url": url, "label": f"Open {model.page_place(url)}"}
        self._validate(step)
        self._apply_policy(step, record, tool="goto", role="", name="", origin=_origin(url), flagged=False)
        return step, record

    def _decide_ask(
        self, arguments: dict[str, Any], record: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        prompt, kind, options = arguments.get("prompt"), arguments.get("kind"), arguments.get("options")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ToolError("ask_human needs a prompt")
        if kind not in {"input", "choice"}:
            raise ToolError('ask_human\'s kind must be "input" or "choice"')
        gate: dict[str, Any] = {"kind": kind, "trigger": "ambiguity", "prompt": prompt.strip()}
        if kind == "choice":
            if not isinstance(options, list) or not options:
                raise ToolError("ask_human of kind choice needs options: a list of strings")
            gate["options"] = list(dict.fromkeys(str(o).strip() for o in options if str(o).strip()))
        step = {"action": "ask", "label": model._short(prompt.strip(), limits.MAX_LABEL), "gate": gate}
        self._validate(step)
        record["intent"] = step["label"]
        return step, record

    def _decide_element(
        self, name: str, arguments: dict[str, Any], label: str, record: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        page = self.page
        ref = arguments.get("ref")
        if name == "press" and ref in (None, ""):
            handle = page.evaluate_handle("() => document.activeElement || document.body").as_element()
        else:
            if not isinstance(ref, str) or not ref:
                raise ToolError(f"{name} needs the ref of an element of the newest snapshot")
            if ref not in (self._refs or set()):
                raise ToolError(f"there is no element [ref={ref}] in the newest snapshot")
            try:
                handle = page.locator(f"aria-ref={ref}").element_handle(timeout=REF_TIMEOUT_MS)
            except Exception:
                raise ToolError(f"the element [ref={ref}] is no longer on the page") from None
        if handle is None:
            raise ToolError(f"the element [ref={ref}] is no longer on the page")
        self.handles.append(handle)
        try:
            bundle = locators.describe_element(handle, timeout_ms=REF_TIMEOUT_MS)
            info = handle.evaluate(model.ELEMENT_INFO_JS)
        except Exception as exc:
            raise ToolError(
                f"the element [ref={ref}] cannot be read: {model._short(str(exc), 200)}"
            ) from None
        if bundle is None:
            raise ToolError(f"the element [ref={ref}] cannot be acted on")
        bundle = locators.scrub_bundle(bundle, self.scrub)
        step: dict[str, Any] = {
            "action": name,
            "selector": locators.playwright_selector(bundle),
            "locator": bundle,
        }
        if label:
            step["label"] = label
        role, accessible = bundle.get("role") or "", bundle.get("name") or ""
        value_shown = ""
        if name in {"fill", "select"}:
            value = arguments.get("value")
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise ToolError(f"{name} needs a value (a string)")
            step["value"] = str(value)
            value_shown = _shown_value(step["value"])
            self._check_secret_place(step["value"])
        if name == "press":
            key = arguments.get("key")
            if not isinstance(key, str) or not key.strip():
                raise ToolError("press needs a key, such as Enter")
            step["key"] = key.strip()
        if name == "extract":
            if not model.valid_name(arguments.get("name")):
                raise ToolError("extract needs a name of letters, digits and _")
            step["name"] = arguments["name"]
        record["element"] = {"role": role, "name": accessible, "ref": ref or ""}
        if name == "fill" and model.is_one_time_code(info):
            self._one_time_code(step, record, info)
        self._validate(step)
        flagged = arguments.get("consequential") is True
        also = info.get("submits", []) if name == "press" and step.get("key", "").lower() == "enter" else []
        self._apply_policy(
            step,
            record,
            tool=name,
            role=role,
            name=accessible,
            origin=_origin(page.url),
            flagged=flagged,
            also=also,
            value_shown=value_shown,
        )
        self.planned_handle = (self.run.current_step, handle)
        return step, record

    def _check_secret_place(self, value: str) -> None:
        """A page can talk the model into typing a secret anywhere: a secret the vault scopes to no
        origin is typed by a planned step only on the origin the run started at."""
        from runs.program import templates_in
        from vault.selectors import secret_list

        names = [e.partition(".")[2] for e in templates_in(value) if e.startswith("secrets.")]
        if not names:
            return
        scoped = {s.name: s.origins for s in secret_list(tenant=self.tenant)}
        here, start = _origin(self.page.url), _origin(self.run.url)
        for name in names:
            origins = scoped.get(name)
            if origins is None:
                raise ToolError(f"the vault has no secret named {name!r}")
            if not origins and here != start:
                raise ToolError(
                    f"the secret {name!r} is typed only on {start or 'the start page'} (this page is "
                    f"{here or self.page.url}); the vault can allow other origins for it"
                )

    def _one_time_code(self, step: dict[str, Any], record: dict[str, Any], info: dict[str, Any]) -> None:
        """A one-time-code field: the vault's TOTP secret for this origin types the code, else a person."""
        from vault.models import SecretKind
        from vault.selectors import secret_list

        origin = _origin(self.page.url)
        for secret in secret_list(tenant=self.tenant):
            if secret.kind == SecretKind.TOTP and origin and origin in (secret.origins or []):
                step["value"] = "{{secrets." + secret.name + "}}"
                record["vault"] = {"secret": secret.name, "origin": origin}
                return
        step["value"] = "{{input}}"
        step["gate"] = {
            "kind": "input",
            "trigger": "mfa",
            "prompt": f"One-time code for {model.page_place(self.page.url)}"
            + (f" ({info['labels'][0]})" if info.get("labels") else ""),
        }
        record["policy"] = "one-time code"

    def _apply_policy(
        self,
        step: dict[str, Any],
        record: dict[str, Any],
        *,
        tool: str,
        role: str,
        name: str,
        origin: str,
        flagged: bool,
        also: list[str] | None = None,
        value_shown: str = "",
    ) -> None:
        tenant = self.tenant
        reason = model.consequential_reason(
            tool=tool,
            name=name,
            also=also or [],
            origin=origin,
            flagged=flagged,
            patterns=tenant.agent_consequential_patterns or [],
            origins=tenant.agent_approval_origins or [],
        )
        if not reason or step.get("gate"):
            return
        if tool == "goto":
            what = f"Open {model.page_place(step['url'])}"
        else:
            what = model.action_words(
                tool, role=role, name=name, value_shown=value_shown, key=step.get("key", "")
            )
            what += f" on {model.page_place(self.page.url)}"
        step["gate"] = {"kind": "approval", "trigger": "approval", "prompt": what}
        record["policy"] = reason

    def _validate(self, step: dict[str, Any]) -> None:
        from vault.selectors import secret_names

        problems = validate_program(
            [step],
            params=self.run.params or {},
            secret_names=secret_names(tenant_id=self.run.tenant_id),
            internal=True,
        )
        if problems:
            raise ToolError("; ".join(f"{p.field}: {p.message}" for p in problems))

    # -- a replayed skill's step handed back to the model ---------------------------------------------
    def hand_back(self, index: int, step: dict[str, Any], answers: Any, reason: str) -> dict[str, Any] | None:
        """The model finds the element of one skill step the page no longer shows as recorded.

        Only for a skill replay, when the tenant asks for it (``agent_repair_with_model``), a model
        is configured and no person has answered for this step. The model must answer with the same
        action; the step keeps its value, gate and label and takes the element's new bundle. None:
        a person decides, as without a model (the model declined, erred, or may not be asked).
        """
        from .executor import replay_bundle

        run, tenant = self.run, self.tenant
        if run.planner != "skill" or not tenant.agent_repair_with_model or answers.used:
            return None
        if replay_bundle(step) is None or step["action"] not in model.REF_TOOLS | {"press"}:
            return None
        config = model.model_config(tenant)
        if config is None:
            return None
        note = (
            f"You are repairing step {index} of a recorded skill that could not be done on this page "
            f"({reason}). The step: {step['action']} - {step.get('label') or step['action']}. Answer with "
            f"exactly one {step['action']} call on the element of this page that the step means."
        )
        repaired: dict[str, Any] | None = None
        record: dict[str, Any] = {}
        calls = tokens_in = tokens_out = latency = 0
        try:
            self.renew(index, {"timeout": settings.TWIN_LLM_TIMEOUT})
            answer = model.ask(config, self.plan_messages(index, note=note))
            calls, tokens_in, tokens_out, latency = 1, answer.tokens_in, answer.tokens_out, answer.latency_ms
            Run.objects.filter(pk=run.pk).update(
                model_calls=F("model_calls") + 1,
                tokens_in=F("tokens_in") + answer.tokens_in,
                tokens_out=F("tokens_out") + answer.tokens_out,
            )
            if answer.call is not None and answer.call.name == step["action"]:
                arguments = dict(answer.call.arguments or {})
                arguments.setdefault("intent", step.get("label") or step["action"])
                for kept in ("value", "key", "name"):  # what the skill types and names stays the skill's
                    if kept in step:
                        arguments[kept] = "x" if kept != "name" else step[kept]
                decided, record = self._decide_element(
                    step["action"], arguments, str(arguments["intent"]), {"tool": step["action"]}
                )
                repaired = {**step, "selector": decided["selector"], "locator": decided["locator"]}
                if decided.get("gate", {}).get("kind") == "approval" and "gate" not in step:
                    repaired["gate"] = decided["gate"]  # the policy adds gates, never removes one
        except (model.ModelUnavailable, ToolError) as exc:
            reason = f"{reason}; the model could not repair it: {exc}"
        with transaction.atomic():
            if repaired is not None:
                record.update(
                    arguments=self.scrubber.data(dict(answer.call.arguments or {})),  # type: ignore[union-attr]
                    intent=step.get("label", ""),
                    calls=calls,
                    errors=[],
                    tokens_in=tokens_in,
                    tokens_out=tokens_out,
                    latency_ms=latency,
                    repair=True,
                )
                program = list(run.program)
                program[index - 1] = repaired
                self._save_program(program)
                Step.objects.filter(run=run, index=index).update(planned=record)
            record_event(
                run,
                "step.replanned" if repaired is not None else "step.replan_declined",
                step_index=index,
                data={"by": "model", "reason": reason[:1000], "calls": calls},
            )
        return repaired

    # -- ask steps ------------------------------------------------------------------------------
    def note_answer(self, index: int, answers: Any) -> None:
        """An ``ask`` step's answer, kept with the step: the model asked, so the model is told."""
        from .executor import approval_scope

        approval = answers.gate
        answer = ""
        if approval is not None:
            if approval.kind == "choice":
                answer = approval.choice
            elif approval.sealed_input:
                with contextlib.suppress(InvalidToken):
                    answer = open_text(approval.sealed_input, scope=approval_scope(self.run.tenant_id))
        row = Step.objects.filter(run=self.run, index=index).values_list("planned", flat=True).first()
        planned = dict(row) if isinstance(row, dict) else {}
        planned["answer"] = self.scrub(answer)[: limits.MAX_INPUT]
        Step.objects.filter(run=self.run, index=index).update(planned=planned)

    def scrub(self, text: str) -> str:  # overridden by Execution
        return text

    def renew(self, index: int, step: dict[str, Any]) -> None:  # overridden by Execution
        raise NotImplementedError


def _origin(url: str) -> str:
    from .executor import _origin as origin_of

    return origin_of(url)


def _shown_value(value: str) -> str:
    """A value as an approver reads it: a template by its name, a literal quoted and cut."""
    if value.startswith("{{") and value.endswith("}}"):
        return value
    return json.dumps(model._short(value, 60), ensure_ascii=False)
