"""Skills: compiling a completed run into a version, running a version, archiving.

Everything that changes skills lives here (reads are in selectors.py).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from approvals.models import Approval, ApprovalStatus, Cause
from engine.locators import bundle_templates, map_displayed, playwright_selector
from engine.scrub import MASK
from runs.events import record_event
from runs.models import Run, RunStatus, Step, StepStatus
from runs.program import (
    ELEMENT_ACTIONS,
    INTERNAL_ACTIONS,
    NAME_RE,
    TEMPLATE_RE,
    Problem,
    describe,
    templates_in,
    validate_run_fields,
)
from runs.services import ProgramInvalid, run_create
from tenants.models import Tenant
from twin_site import limits

from .models import Skill, SkillVersion


class CompileError(Exception):
    """A run that cannot be compiled as asked: ``code`` and ``http_status`` for the API."""

    def __init__(
        self, code: str, detail: str, *, http_status: int = 400, problems: list[Problem] | None = None
    ):
        super().__init__(detail)
        self.code, self.detail, self.http_status = code, detail, http_status
        self.problems = problems or []


class SkillParamsInvalid(ValueError):
    """Params for a skill run that are missing, unknown or of the wrong type (every problem at once)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass
class Preview:
    """What compiling the run would give, before anything is stored."""

    slug: str
    name: str
    version: int  # the number the new version would get
    steps: list[dict[str, Any]]
    params: list[dict[str, Any]]  # [{"name", "type", "example", "options"?}]
    # Literals that look like personal data (emails, card numbers) and are not parameters yet:
    # [{"name": suggested parameter name, "literal", "reason", "steps": [indexes]}]
    suggested: list[dict[str, Any]] = field(default_factory=list)
    # Source-run step indexes left out (skipped after a block), and folded answers, for the preview.
    left_out: list[int] = field(default_factory=list)
    changed_steps: list[int] = field(default_factory=list)


# The fields of a step a literal can be promoted to a parameter in.
LITERAL_FIELDS = ("url", "value", "text", "selector", "key")
SLUG_RE = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*\Z")
MAX_SLUG = 100
PARAM_TYPES = ("string", "number", "boolean", "enum")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
DIGITS_RE = re.compile(r"\d+")
CARD_RE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
PHONE_RE = re.compile(r"(?<![\w+])\+\d[\d ()-]{7,16}\d(?!\d)")


TRAILING_PUNCTUATION = ".!?,;:…\u3002\uff01\uff1f "


def goal_key(goal: str) -> str:
    """A goal as the agent matches it: lower case, whitespace collapsed, trailing punctuation dropped.

    Only that: "pay $42" and "pay $420" are different jobs, and so are "order 7" and "order #7".
    """
    return " ".join(goal.lower().split()).rstrip(TRAILING_PUNCTUATION).rstrip()[:500]


def url_key(url: str) -> str:
    """The URL's origin and path (no query or fragment): what a skill's job is tied to."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path or '/'}"


def compile_preview(
    run: Run, *, slug: str | None = None, name: str | None = None, params: dict[str, Any] | None = None
) -> Preview:
    """The skill version the run would compile into (nothing is stored): see :func:`skill_compile`."""
    if run.status != RunStatus.COMPLETED:
        raise CompileError(
            "not_completed",
            f"only a completed run compiles into a skill; this one is {run.status}",
            http_status=409,
        )
    name = (name or "").strip()
    slug = (slug or "").strip()
    problems: list[Problem] = []
    if name and (reason := limits.bounded_text(name, 200)):
        problems.append(Problem(None, "name", reason))
    if slug and (len(slug) > MAX_SLUG or not SLUG_RE.match(slug)):
        problems.append(
            Problem(
                None,
                "slug",
                f"must be 1 to {MAX_SLUG} lower-case letters, digits, - and _ (e.g. pay-invoice)",
            )
        )
    literals = _check_literals(params, problems)
    if problems:
        raise CompileError("invalid", f"{len(problems)} problem(s) with the request", problems=problems)
    source = run.skill_version
    if not slug:
        slug = source.skill.slug if source is not None else _slug_for(name or run.goal)
    skill = Skill.objects.filter(tenant_id=run.tenant_id, slug=slug).first()
    previous = skill.versions.order_by("-version").first() if skill is not None else None
    if not name:
        name = skill.name if skill is not None else (run.goal.strip()[:200] or slug)

    rows = {row.index: row for row in Step.objects.filter(run=run)}
    answered = set(
        Approval.objects.filter(run=run, cause=Cause.AMBIGUITY, status=ApprovalStatus.APPROVED).values_list(
            "step_index", flat=True
        )
    )
    # A replay of this very skill: only what a human repaired (or a fallback locator healed) changes.
    repairing = source is not None and skill is not None and source.skill_id == skill.pk

    unused = {param: literal for param, literal in literals.items()}
    extracted = sorted(
        {
            str(value)
            for value in (run.outputs or {}).values()
            if isinstance(value, str | int | float) and not isinstance(value, bool) and len(str(value)) >= 3
        },
        key=len,
        reverse=True,
    )
    shown = {**_displayed_params(run.params), **literals}
    steps: list[dict[str, Any]] = []
    left_out: list[int] = []
    for index, original in enumerate(run.program, start=1):
        row = rows.get(index)
        if original["action"] in INTERNAL_ACTIONS:
            continue  # the agent's own steps: its questions were answered in the steps that followed
        if row is not None and row.status == StepStatus.SKIPPED:
            left_out.append(index)
            continue
        step = copy.deepcopy(original)
        repaired = index in answered or bool(row is not None and row.healed_by)
        recorded = row.locator if row is not None and step["action"] in ELEMENT_ACTIONS else None
        if recorded and (not repairing or repaired or "locator" not in step):
            _use_bundle(step, recorded, answered=index in answered)
        step.setdefault("label", (row.label if row is not None else "") or describe(original))
        for field_name in LITERAL_FIELDS:
            if isinstance(step.get(field_name), str):
                step[field_name] = _promote(step[field_name], literals, unused)
        if isinstance(step.get("locator"), dict):
            # What the page showed of a parameter's value (a "Thanks, ann@…" heading) is the parameter.
            step["locator"] = map_displayed(step["locator"], lambda text: _promote(text, shown, {}))
            # What the run read off the page (its outputs) differs from run to run: a receipt
            # number in a paragraph's text must not pin the paragraph to this run's receipt.
            step["locator"] = map_displayed(step["locator"], lambda text: _wildcard(text, extracted))
        if templates_in(str(step.get("selector", ""))) and "locator" in step:
            del step["locator"]  # the element now depends on a value: the selector finds it
        steps.append(step)
    if unused:
        raise CompileError(
            "literal_not_used",
            "every parameter must replace a literal the run used",
            problems=[
                Problem(None, f"params.{param}", f"the run never used {literal!r}")
                for param, literal in unused.items()
            ],
        )
    declared = _declare_params(steps, run.params, literals, previous)
    changed = _changed(previous.steps if previous is not None else None, steps)
    return Preview(
        slug=slug,
        name=name,
        version=(skill.latest_version if skill is not None else 0) + 1,
        steps=steps,
        params=declared,
        suggested=_suggest(steps, declared),
        left_out=left_out,
        changed_steps=changed,
    )


def _wildcard(text: str, values: list[str]) -> str:
    """``text`` with what varies of each of ``values`` (longest first) as the wildcard a replay matches.

    A value inside a longer text is replaced whole (the rest of the text still tells the element);
    a text that *is* the value keeps its words and loses its numbers ("Receipt: R-0001" matches
    "Receipt: R-0002"): a wildcard for the whole text would match any element.
    """
    for value in values:
        if "{{" in value or value not in text:
            continue
        if text.strip() == value.strip():
            return DIGITS_RE.sub(MASK, text)
        text = text.replace(value, MASK)
    return text


def _displayed_params(params: dict[str, Any]) -> dict[str, str]:
    """The run's params whose values are distinctive enough to recognize in a page's text."""
    return {
        name: str(value)
        for name, value in params.items()
        if isinstance(value, str | int | float) and not isinstance(value, bool) and len(str(value)) >= 3
    }


def _slug_for(text: str) -> str:
    return slugify(text)[:MAX_SLUG].strip("-_") or "skill"


def _check_literals(params: Any, problems: list[Problem]) -> dict[str, str]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        problems.append(
            Problem(None, "params", "must be an object of parameter names to the literals they replace")
        )
        return {}
    literals: dict[str, str] = {}
    for param, literal in params.items():
        if not isinstance(param, str) or len(param) > limits.MAX_PARAM_NAME or not NAME_RE.match(param):
            problems.append(
                Problem(None, "params", f"parameter name {str(param)[:40]!r} must be letters, digits and _")
            )
            continue
        if isinstance(literal, bool) or not isinstance(literal, str | int | float):
            problems.append(
                Problem(None, f"params.{param}", "must be the literal (a string or number) it replaces")
            )
            continue
        text = str(literal)
        if not text.strip():
            problems.append(Problem(None, f"params.{param}", "must be a non-empty literal"))
        elif reason := limits.bounded_text(text, limits.MAX_PARAM_VALUE, multiline=True):
            problems.append(Problem(None, f"params.{param}", reason))
        elif "{{" in text or "}}" in text:
            problems.append(Problem(None, f"params.{param}", "a literal cannot contain {{ or }}"))
        else:
            literals[param] = text
    texts = list(literals.values())
    for param, text in literals.items():
        if texts.count(text) > 1:
            problems.append(Problem(None, f"params.{param}", f"{text!r} is named by more than one parameter"))
    return literals


def _use_bundle(step: dict[str, Any], bundle: dict[str, Any], *, answered: bool) -> None:
    """Make the step find its element by the bundle recorded when the run acted on it."""
    if templates_in(str(step.get("selector", ""))):
        return  # a human's choice or a parameter decides the element: the selector stays
    if bundle.get("unique"):
        step["locator"] = bundle
        step["selector"] = playwright_selector(bundle)
    elif answered:
        # A human picked one of look-alikes nothing tells apart: the replay asks again, never "the 2nd".
        step["locator"] = bundle
    # else: the author's selector found exactly one element where nothing else did: it stays.


def _promote(text: str, literals: dict[str, str], unused: dict[str, str]) -> str:
    """``text`` with each literal (longest first) replaced by ``{{params.NAME}}``, outside templates."""
    if not literals:
        return text
    parts = TEMPLATE_RE.split(text)  # odd items are the insides of templates
    out: list[str] = []
    for number, part in enumerate(parts):
        if number % 2:
            out.append("{{" + part + "}}")
            continue
        for param, literal in sorted(literals.items(), key=lambda item: -len(item[1])):
            if literal in part:
                part = part.replace(literal, "\x00" + param + "\x00")
                unused.pop(param, None)
        out.append(re.sub("\x00([^\x00]*)\x00", lambda m: "{{params." + m.group(1) + "}}", part))
    return "".join(out)


def _declare_params(
    steps: list[dict[str, Any]],
    run_params: dict[str, Any],
    literals: dict[str, str],
    previous: SkillVersion | None,
) -> list[dict[str, Any]]:
    used: list[str] = []
    options: dict[str, list[str]] = {}
    for step in steps:
        if isinstance(step.get("locator"), dict):
            # What the page showed of a parameter: the replay renders it, so the skill declares it.
            for expr in bundle_templates(step["locator"]):
                source, _, param = expr.partition(".")
                if source == "params" and param not in used:
                    used.append(param)
        for field_name in LITERAL_FIELDS:
            for expr in templates_in(str(step.get(field_name, ""))):
                source, _, param = expr.partition(".")
                if source == "params" and param not in used:
                    used.append(param)
                if (
                    source == "params"
                    and step["action"] == "select"
                    and field_name == "value"
                    and step.get("value") == "{{" + expr + "}}"
                    and isinstance(step.get("locator"), dict)
                    and step["locator"].get("options")
                ):
                    options[param] = list(step["locator"]["options"])
    known = {p["name"]: p for p in (previous.params if previous is not None else [])}
    declared = []
    for param in used:
        example: Any = literals.get(param, run_params.get(param, known.get(param, {}).get("example", "")))
        entry: dict[str, Any] = {"name": param, "type": _type_of(example), "example": example}
        if param in options and isinstance(example, str) and example in options[param]:
            entry.update(type="enum", options=options[param])
        declared.append(entry)
    return declared


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _changed(before: list[dict[str, Any]] | None, after: list[dict[str, Any]]) -> list[int]:
    if before is None:
        return []
    return [
        index
        for index, step in enumerate(after, start=1)
        if index > len(before) or _canonical(before[index - 1]) != _canonical(step)
    ]


def _canonical(step: dict[str, Any]) -> str:
    return json.dumps(step, sort_keys=True, default=str)


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        number = int(char)
        if position % 2:
            number *= 2
            if number > 9:
                number -= 9
        total += number
    return total % 10 == 0


def _suggest(steps: list[dict[str, Any]], declared: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Literals that look like personal data (emails, card numbers, phone numbers): parameters to be."""
    found: dict[str, dict[str, Any]] = {}
    taken = {p["name"] for p in declared}
    for index, step in enumerate(steps, start=1):
        for field_name in ("url", "value", "text"):
            text = step.get(field_name)
            if not isinstance(text, str):
                continue
            plain = TEMPLATE_RE.sub(" ", text)
            hits: list[tuple[str, str, str]] = [
                (m, "email", "looks like an email address") for m in EMAIL_RE.findall(plain)
            ]
            for match in CARD_RE.findall(plain):
                digits = re.sub(r"\D", "", match)
                if 13 <= len(digits) <= 19 and _luhn(digits):
                    hits.append((match.strip(), "card_number", "looks like a payment card number"))
            hits += [(m, "phone", "looks like a phone number") for m in PHONE_RE.findall(plain)]
            for literal, base, reason in hits:
                if literal in found:
                    if index not in found[literal]["steps"]:
                        found[literal]["steps"].append(index)
                    continue
                param, number = base, 1
                while param in taken:
                    number += 1
                    param = f"{base}_{number}"
                taken.add(param)
                found[literal] = {"name": param, "literal": literal, "reason": reason, "steps": [index]}
    return list(found.values())


def skill_compile(
    run: Run,
    *,
    actor: Any,
    slug: str | None = None,
    name: str | None = None,
    params: dict[str, Any] | None = None,
) -> SkillVersion:
    """Compile the completed run into the next version of the skill ``slug`` (a new skill if none).

    The run as it happened: its steps in order, each element step with the locator bundle recorded
    when it acted and its label; a human's one-off answers folded in (an ambiguity answered: the
    chosen element's bundle; a blocked step skipped: left out; a retried step: kept once); the
    program's gates kept (their answer may differ next time); ``params`` literals, and the run's
    own params, as ``{{params.NAME}}``; secrets as ``{{secrets.NAME}}`` (the run never held a
    value). A replay of the skill compiled under the same slug (a repair) changes only the steps a
    human repaired or a fallback locator healed.
    """
    for attempt in range(2):
        preview = compile_preview(run, slug=slug, name=name, params=params)
        try:
            return _store(run, preview, actor=actor, name_given=bool(name))
        except IntegrityError:
            if attempt:
                raise  # two compiles of a new slug at once: the second retried once already
    raise AssertionError("unreachable")


def _store(run: Run, preview: Preview, *, actor: Any, name_given: bool) -> SkillVersion:
    with transaction.atomic():
        skill = Skill.objects.select_for_update().filter(tenant_id=run.tenant_id, slug=preview.slug).first()
        if skill is None:
            skill = Skill.objects.create(
                tenant_id=run.tenant_id,
                slug=preview.slug,
                name=preview.name,
                goal=run.goal,
                goal_key=goal_key(run.goal),
                url=url_key(run.url) or _first_url(preview.steps),
                created_by=actor,
            )
        number = skill.latest_version + 1
        if number != preview.version:  # another compile got there first: this one's diff is against it
            preview.changed_steps = _changed(skill.versions.get(version=number - 1).steps, preview.steps)
        version = SkillVersion.objects.create(
            skill=skill,
            tenant_id=run.tenant_id,
            version=number,
            steps=preview.steps,
            params=preview.params,
            source_run=run,
            changed_steps=preview.changed_steps,
            created_by=actor,
        )
        Skill.objects.filter(pk=skill.pk).update(
            latest_version=number,
            archived_at=None,  # compiling an archived slug again brings it back
            name=preview.name if name_given else skill.name,
            updated_at=timezone.now(),
        )
        record_event(
            run,
            "skill.compiled",
            actor=actor,
            data={"skill": skill.slug, "skill_id": str(skill.pk), "version": number},
        )
    skill.refresh_from_db()
    return version


def _first_url(steps: list[dict[str, Any]]) -> str:
    for step in steps:
        if step["action"] == "goto" and not templates_in(step["url"]):
            return url_key(step["url"])
    return ""


def skill_archive(skill: Skill, *, actor: Any) -> Skill:
    """Archive the skill: it no longer lists or runs by default; its versions and runs stay."""
    Skill.objects.filter(pk=skill.pk, archived_at__isnull=True).update(archived_at=timezone.now())
    skill.refresh_from_db()
    return skill


def check_params(version: SkillVersion, params: Any) -> list[Problem]:
    """Every problem of ``params`` for the version: missing, unknown, wrong type."""
    if params is None:
        params = {}
    problems = validate_run_fields(goal="", url="", params=params)
    if not isinstance(params, dict) or problems:
        return problems
    declared = {p["name"]: p for p in version.params}
    for name, spec in declared.items():
        if name not in params:
            problems.append(
                Problem(None, f"params.{name}", f"missing: this skill needs {name} ({_type_words(spec)})")
            )
            continue
        value = params[name]
        kind = spec.get("type", "string")
        wrong = (
            (kind == "string" and not isinstance(value, str))
            or (kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)))
            or (kind == "boolean" and not isinstance(value, bool))
            or (kind == "enum" and value not in spec.get("options", []))
        )
        if wrong:
            problems.append(
                Problem(None, f"params.{name}", f"must be {_type_words(spec)} (got {json.dumps(value)[:60]})")
            )
    for name in params:
        if name not in declared:
            known = ", ".join(declared) or "none"
            problems.append(Problem(None, f"params.{name}", f"unknown parameter; this skill takes: {known}"))
    return problems


def _type_words(spec: dict[str, Any]) -> str:
    kind = spec.get("type", "string")
    if kind == "enum":
        return "one of " + ", ".join(repr(o) for o in spec.get("options", []))
    return {"string": "a string", "number": "a number", "boolean": "true or false"}.get(kind, kind)


def skill_run(
    *,
    tenant: Tenant,
    skill: Skill,
    actor: Any,
    params: dict[str, Any] | None = None,
    version: int | None = None,
    record_video: bool = True,
) -> Run:
    """Start a replay of the skill (its newest version, or ``version``) with ``params``."""
    chosen = skill.versions.filter(version=version).first() if version is not None else skill.versions.first()
    if chosen is None:
        raise SkillParamsInvalid([Problem(None, "version", f"the skill has no version {version}")])
    problems = check_params(chosen, params)
    if problems:
        raise SkillParamsInvalid(problems)
    return run_create(
        tenant=tenant,
        created_by=actor,
        goal=skill.goal or skill.name,
        url="",
        steps=chosen.steps,
        params=params or {},
        record_video=record_video,
        skill_version=chosen,
        planner="skill",
    )


# -- the agent: goals answered by skills, and planned runs compiled into them ---------------------------
def param_key(params: dict[str, Any] | None) -> str:
    return ",".join(sorted(params or {}))[:1000]


def skill_for_goal(tenant: Tenant, goal: str, url: str, params: dict[str, Any] | None) -> SkillVersion | None:
    """The newest version of the most recently compiled skill that answers this goal: same normalized
    goal, same URL origin and path, same parameter names; None if no skill does."""
    from django.db.models import Max

    key, where = goal_key(goal), url_key(url)
    if not key or not where:
        return None
    skill = (
        Skill.objects.filter(
            tenant=tenant,
            archived_at__isnull=True,
            answers_goals=True,
            goal_key=key,
            url=where,
            param_key=param_key(params),
            latest_version__gt=0,
        )
        .annotate(compiled_at=Max("versions__created_at"))
        .order_by("-compiled_at")
        .first()
    )
    return skill.versions.first() if skill is not None else None


def goal_run(
    *,
    tenant: Tenant,
    actor: Any,
    goal: str,
    url: str,
    params: dict[str, Any] | None = None,
    plan: str = "auto",
    record_video: bool = True,
) -> Run:
    """A goal-only run: a matching skill replays with no model call, else the model plans it.

    ``plan="always"`` skips the match. Raises ``PlannerNotConfigured`` when it must plan and no
    model is configured, ``ProgramInvalid`` / ``SkillParamsInvalid`` for bad fields.
    """
    from runs.services import run_plan

    problems = validate_run_fields(goal=goal, url=url, params=params)
    if problems:
        raise ProgramInvalid(problems)
    version = skill_for_goal(tenant, goal, url, params) if plan != "always" else None
    if version is None:
        return run_plan(
            tenant=tenant, created_by=actor, goal=goal, url=url, params=params, record_video=record_video
        )
    declared = {p["name"] for p in version.params}
    given = {name: value for name, value in (params or {}).items() if name in declared}
    problems = check_params(version, given)
    if problems:
        raise SkillParamsInvalid(problems)
    return run_create(
        tenant=tenant,
        created_by=actor,
        goal=goal,
        url=url,
        steps=_start_at(version.steps, url),
        params=params or {},
        record_video=record_video,
        skill_version=version,
        planner="skill",
        plan={"matched": True},
    )


def _start_at(steps: list[dict[str, Any]], url: str) -> list[dict[str, Any]]:
    """The skill's steps, opening the run's URL first unless the skill does (a query may differ)."""
    if steps and steps[0].get("action") == "goto" and url_key(steps[0].get("url", "")) == url_key(url):
        return [{**steps[0], "url": url}, *steps[1:]] if not templates_in(steps[0]["url"]) else steps
    return [{"action": "goto", "url": url, "label": f"Open {url}"[:300]}, *steps]


def skill_answers_goals(version: SkillVersion, answers: bool) -> None:
    """Mark the version's skill as answering goal-only runs (its goal, URL and parameter names)."""
    names = {p["name"]: "" for p in version.params}
    Skill.objects.filter(pk=version.skill_id).update(answers_goals=answers, param_key=param_key(names))


def auto_slug(run: Run) -> str:
    key = f"{goal_key(run.goal)}|{url_key(run.url)}|{param_key(run.params)}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{_slug_for(run.goal)[: MAX_SLUG - 9].strip('-_') or 'goal'}-{digest}"


def auto_compile(run: Run) -> SkillVersion | None:
    """Compile a completed goal-only run into the skill that answers its goal, if the tenant wants it:
    a planned run (a new skill, or the next version of the one with its key), or a replay of a
    matched skill that a person or the model repaired (the next version of that skill)."""
    tenant = Tenant.objects.get(pk=run.tenant_id)
    if run.status != RunStatus.COMPLETED or not tenant.agent_auto_compile:
        return None
    matched = bool((run.plan or {}).get("matched"))
    if run.planner == "model":
        slug = auto_slug(run)
    elif run.planner == "skill" and matched and run.skill_version is not None and _was_repaired(run):
        slug = run.skill_version.skill.slug
    else:
        return None
    literals = _literals_used(run)
    # One transaction: when "skill.compiled" goes out (on commit), the skill already answers the goal.
    with transaction.atomic():
        version = skill_compile(run, actor=None, slug=slug, params=literals or None)
        Skill.objects.filter(pk=version.skill_id).update(answers_goals=True, param_key=param_key(run.params))
    return version


def _was_repaired(run: Run) -> bool:
    if Step.objects.filter(run=run).exclude(healed_by="").exists():
        return True
    if Step.objects.filter(run=run, planned__isnull=False).exists():
        return True
    return Approval.objects.filter(run=run, cause=Cause.AMBIGUITY, status=ApprovalStatus.APPROVED).exists()


def _literals_used(run: Run) -> dict[str, str]:
    """The run's params whose values its steps typed literally (the model wrote "alice", not
    ``{{params.user}}``): compiled as the parameter."""
    typed = {
        str(step["value"])
        for step in run.program
        if step.get("action") in {"fill", "select"} and isinstance(step.get("value"), str)
    }
    out = {}
    for name, value in (run.params or {}).items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            continue
        if str(value) and str(value) in typed:  # a whole value typed, never a fragment of one
            out[name] = str(value)
    return out
