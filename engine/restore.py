"""The page a restored run acts on is the page its approver saw.

A checkpoint holds what the browser keeps outside the document (URL, cookies, storage), not
what earlier steps typed, selected or ticked in the document itself. So:

* the executor tracks which step loaded the current document (its main frame's CDP
  ``loaderId`` changes with every new document, not with same-document navigations, and a
  page cannot forge it) and keeps that step in the checkpoint;
* at every pause it keeps a digest of what the person deciding saw: the URL, how many
  elements the paused step's selector matches, and the value of every field the run
  filled/selected/checked on this document. Values are HMAC'd with a key derived from the
  master key (per tenant, bound to the run and step), never stored in the clear: they may
  be secrets or one-time codes, and a plain hash of a six-digit code is no secret at all;
* after a restore, the fills, selects and checks since that step are performed again (never
  clicks or presses: they have effects outside the page), and the page is compared with
  the digest before the approved step acts.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from typing import Any

from approvals.models import Approval, ApprovalStatus, Cause
from runs.models import Run, Step, StepStatus
from runs.program import render, templates_in
from vault.crypto import derived_key

# Steps that only set the state of the document they act on: performed again after a restore.
REFILL_ACTIONS = frozenset({"fill", "select", "check"})
PAGE_STATE_VERSION = 1

# The value a field holds now, as the step that set it would see it (null: no such element).
_FIELD_VALUE_JS = """(els, nth) => {
  const el = els[nth];
  if (!el) return null;
  if (el instanceof HTMLInputElement && (el.type === 'checkbox' || el.type === 'radio'))
    return el.checked ? 'checked' : 'unchecked';
  if (el instanceof HTMLSelectElement) return Array.from(el.selectedOptions).map((o) => o.value).join('\\n');
  if (typeof el.value === 'string') return el.value;
  return el.innerText || '';
}"""


def _key(tenant_id: int) -> bytes:
    # Derived from the master key (never stored in the database), one per tenant.
    return derived_key(f"page-state:tenant:{tenant_id}")


def _mac(run: Run, *parts: object) -> str:
    message = "\0".join([str(run.pk), *(str(p) for p in parts)]).encode()
    return hmac.new(_key(run.tenant_id), message, hashlib.sha256).hexdigest()


# -- which document, which steps --------------------------------------------------------------------
class DocumentWatch:
    """Reads the page's document identity over one CDP session kept for the execution.

    The main frame's ``loaderId`` is new for every new document and unchanged by same-document
    navigations; the page's own scripts cannot forge it. (Opening a CDP session costs about
    100 ms; a call on an open one a few ms.)
    """

    def __init__(self) -> None:
        self._page: Any = None
        self._session: Any = None

    def document_id(self, page: Any) -> str:
        """The id of the page's current document; "" when it cannot be read."""
        try:
            return loader_id(self.session_for(page).send("Page.getFrameTree"))
        except Exception:
            self.close()
            return ""

    def session_for(self, page: Any) -> Any:
        """The CDP session on ``page`` (opened once for it)."""
        if self._session is None or self._page is not page:
            self.close()
            self._session, self._page = page.context.new_cdp_session(page), page
        return self._session

    def close(self) -> None:
        session, self._session, self._page = self._session, None, None
        if session is not None:
            with contextlib.suppress(Exception):
                session.detach()


def loader_id(frame_tree: dict[str, Any]) -> str:
    """The main frame's document id in a ``Page.getFrameTree`` answer."""
    return str(frame_tree["frameTree"]["frame"].get("loaderId", ""))


def refill_steps(run: Run, document_step: int, index: int) -> list[int]:
    """The fills, selects and checks done on the current document before step ``index``."""
    done = Step.objects.filter(
        run=run, index__gt=document_step, index__lt=index, status=StepStatus.DONE
    ).values_list("index", flat=True)
    return sorted(i for i in done if run.program[i - 1]["action"] in REFILL_ACTIONS)


def one_time(step: dict[str, Any]) -> bool:
    """A step typing a human's input: erased once used, it cannot be typed again."""
    return "input" in templates_in(str(step.get("value", "")))


def step_answers(run: Run, index: int) -> dict[str, Approval]:
    """The decisions already spent on step ``index`` (its gate's choice, the element chosen)."""
    spent: dict[str, Approval] = {}
    for approval in Approval.objects.filter(
        run=run, step_index=index, status=ApprovalStatus.APPROVED
    ).order_by("created_at"):
        spent[approval.cause] = approval
    return spent


def chosen_nth(approval: Approval | None, count: int) -> int:
    """Which of the selector's matches a person chose at an ambiguity (the first when none)."""
    if approval is not None:
        for candidate in approval.candidates or []:
            if candidate["label"] == approval.choice and candidate["nth"] < count:
                return int(candidate["nth"])
    return 0


def _selector(run: Run, step: dict[str, Any]) -> str:
    """The step's selector as the step used it (params and outputs filled in; nothing else is)."""

    def resolve(expr: str) -> str:
        source, _, name = expr.partition(".")
        if source == "params":
            return str(run.params.get(name, ""))
        if source == "outputs":
            return str(run.outputs.get(name, ""))
        return "{{" + expr + "}}"

    return render(str(step.get("selector", "")), resolve)


# -- the digest ------------------------------------------------------------------------------------
def page_state(page: Any, run: Run, index: int, document_step: int) -> dict[str, Any]:
    """What the person deciding about step ``index`` sees of the page, as keyed digests."""
    step = run.program[index - 1]
    url = page.url
    element = None
    if step.get("selector"):
        try:
            count: int | None = page.locator(_selector(run, step)).count()
        except Exception:  # a selector this page cannot evaluate: recorded as such, compared as such
            count = None
        element = {"step": index, "count": count}
    fields: dict[str, str] = {}
    for i in refill_steps(run, document_step, index):
        fields[str(i)] = _mac(run, "field", i, _field_value(page, run, i))
    state: dict[str, Any] = {
        "version": PAGE_STATE_VERSION,
        "document_step": document_step,
        "url": _mac(run, "url", url),
        "element": element,
        "fields": fields,
    }
    state["digest"] = _mac(run, "page", index, json.dumps(state, sort_keys=True))
    return state


def same_url(page: Any, run: Run, expected: dict[str, Any]) -> bool:
    """Whether the page is at the address it had at the pause."""
    return bool(expected.get("url")) and hmac.compare_digest(_mac(run, "url", page.url), str(expected["url"]))


def _field_value(page: Any, run: Run, index: int) -> str:
    step = run.program[index - 1]
    locator = page.locator(_selector(run, step))
    try:
        count = locator.count()
        nth = chosen_nth(step_answers(run, index).get(Cause.AMBIGUITY), count)
        value = locator.evaluate_all(_FIELD_VALUE_JS, nth)
    except Exception:
        value = None
    return "\x00missing" if value is None else str(value)


def differences(expected: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Which parts of the page differ: "url", "element", "field:<step>" (no values)."""
    found = []
    if expected.get("url") != current.get("url"):
        found.append("url")
    if (expected.get("element") or {}).get("count") != (current.get("element") or {}).get("count"):
        found.append("element")
    want, have = expected.get("fields") or {}, current.get("fields") or {}
    for key in sorted(set(want) | set(have), key=int):
        if want.get(key) != have.get(key):
            found.append(f"field:{key}")
    if not found and expected.get("digest") != current.get("digest"):
        found.append("digest")
    return found


def describe_difference(run: Run, difference: str, expected: dict[str, Any], current: dict[str, Any]) -> str:
    """A sentence for the person deciding again (selectors and step numbers only, never values)."""
    if difference == "url":
        return "the page is at another address"
    if difference == "element":
        step = run.program[current["element"]["step"] - 1]
        was, now = (expected.get("element") or {}).get("count"), current["element"]["count"]
        where = repr(_selector(run, step))
        if now is None or was is None:
            return f"{where} cannot be looked for on this page as it was at the decision"
        if now == 0:
            return f"{where} is no longer on the page (it matched {was} element{'s' * (was != 1)})"
        return f"{where} matches {now} element{'s' * (now != 1)} now, {was} before"
    if difference.startswith("field:"):
        i = int(difference.partition(":")[2])
        return f"the field of step {i} ({_selector(run, run.program[i - 1])!r}) does not hold what it held"
    return "the page differs from the one seen"
