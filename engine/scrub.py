"""Keeping what a secret or a human's input became out of everything Twin records or sends.

Two halves:

* **Text.** An execution builds a :class:`Scrubber` from the run's secret references (resolved
  from the vault) and its sealed inputs, and keeps it active (:func:`scrubbing`) while it runs:
  the executor scrubs every page text it keeps, ``record_event`` scrubs every event's data
  (and with it webhook bodies and notifications, which are built from those), and log records
  made meanwhile are scrubbed too. Values typed during the execution (a TOTP code, a human's
  one-time code) join the list and are kept on the run, sealed, so a later execution (resume,
  restore) scrubs them as well; the sealed list is erased when the run ends.
* **Pixels.** :class:`PageMask` keeps the values in an isolated world of the page (CDP
  ``Page.addScriptToEvaluateOnNewDocument`` with a ``worldName``), where a MutationObserver
  covers every element whose text or field value contains one with a black box before it is
  painted. The page's own scripts never receive the values; every capture of the page (the
  pause screenshot, the video's screencast frames, the live view) shows the boxes.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import re
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote, quote_plus

from vault.crypto import InvalidToken, open_json, seal_json

log = logging.getLogger(__name__)

# Below this length a value is not replaced inside longer text: a 1-3 character secret would
# turn every "a" or "12" of every page into dots, and make the record unreadable. Such values
# are still typed as dots, replaced where a whole text is exactly the value (an extracted output,
# a field), and masked in pictures where an element's whole text is the value. Twin logs a
# warning when a run uses one (see docs/security.md).
MIN_SCRUB_LENGTH = 4
MASK = "••••••"
# The isolated world the page mask lives in (its name, not a secret).
MASK_WORLD = "twin-mask"


def encodings(value: str) -> set[str]:
    """The forms a value takes in the text a page or URL carries: as typed, URL-encoded (a GET form
    submits it as ``quote_plus``), HTML-escaped and JSON-escaped."""
    forms = {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        html.escape(value),
        html.escape(value, quote=False),
        json.dumps(value)[1:-1],
    }
    return {form for form in forms if form}


class Scrubber:
    """The values to keep out of text, with the forms they take; replace them with ``MASK``."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values: list[str] = []
        self._long: list[str] = []  # forms replaced anywhere in a text, longest first
        self._short: set[str] = set()  # forms replaced only where a whole text is the value
        self._pattern: re.Pattern[str] | None = None
        self.add(values)

    def __bool__(self) -> bool:
        return bool(self.values)

    def add(self, values: Iterable[str]) -> bool:
        """Add values (empty and known ones are ignored); True when one was new."""
        new = False
        for value in values:
            if not isinstance(value, str) or not value or value in self.values:
                continue
            self.values.append(value)
            new = True
            for form in encodings(value):
                if len(form) >= MIN_SCRUB_LENGTH:
                    self._long.append(form)
                else:
                    self._short.add(form)
        if new:
            self._long = sorted(set(self._long), key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(f) for f in self._long)) if self._long else None
        return new

    def short_values(self) -> list[str]:
        return [v for v in self.values if len(v) < MIN_SCRUB_LENGTH]

    def text(self, text: str) -> str:
        if not text or not self.values or not isinstance(text, str):
            return text
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        if self._short and text.strip() in self._short:
            return MASK
        return text

    def data(self, value: Any) -> Any:
        """``value`` with every string in it (keys too) scrubbed; other types as they are."""
        if not self.values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


# -- the execution's scrubber, for code that does not know the execution ------------------------------
_active: ContextVar[Scrubber | None] = ContextVar("twin_scrubber", default=None)


@contextlib.contextmanager
def scrubbing(scrubber: Scrubber) -> Iterator[Scrubber]:
    """Make ``scrubber`` the one events and logs of this thread/task are scrubbed with."""
    _install_log_scrubbing()
    token = _active.set(scrubber)
    try:
        yield scrubber
    finally:
        _active.reset(token)


def active() -> Scrubber | None:
    return _active.get()


def scrub_text(text: str) -> str:
    scrubber = _active.get()
    return scrubber.text(text) if scrubber else text


def scrub_data(value: Any) -> Any:
    scrubber = _active.get()
    return scrubber.data(value) if scrubber else value


_log_factory_installed = False


def _install_log_scrubbing() -> None:
    """Scrub every log record made while an execution's scrubber is active (any logger: Twin's,
    Celery's, Playwright's), message and traceback alike."""
    global _log_factory_installed
    if _log_factory_installed:
        return
    _log_factory_installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        scrubber = _active.get()
        if scrubber:
            with contextlib.suppress(Exception):
                message = record.getMessage()
                clean = scrubber.text(message)
                if clean != message:
                    record.msg, record.args = clean, None
                if record.exc_info and not record.exc_text:
                    record.exc_text = scrubber.text(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)


# -- the run's sealed scrub list -------------------------------------------------------------------------
def scrub_scope(tenant_id: int) -> str:
    return f"tenant:{tenant_id}:scrub"


def sealed_values(run: Any) -> list[str]:
    """The values earlier executions of the run typed (sealed on the run until it ends)."""
    if not run.scrub_sealed:
        return []
    try:
        values = open_json(run.scrub_sealed, scope=scrub_scope(run.tenant_id))
    except InvalidToken:
        log.error("run %s: its scrub list cannot be decrypted (master key changed?)", run.pk)
        return []
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []


def seal_values(run: Any, values: list[str]) -> None:
    """Keep ``values`` on the run, sealed, for its later executions (only while it is not over)."""
    from runs.models import TERMINAL_STATUSES, Run

    sealed = seal_json(values, scope=scrub_scope(run.tenant_id)) if values else ""
    Run.objects.filter(pk=run.pk).exclude(status__in=TERMINAL_STATUSES).update(scrub_sealed=sealed)
    run.scrub_sealed = sealed


def referenced_secrets(program: list[dict[str, Any]]) -> list[str]:
    """The vault names the program's templates use (``{{secrets.NAME}}``), in order."""
    from runs.program import TEMPLATED_FIELDS, templates_in

    names: list[str] = []
    for step in program or []:
        for field in TEMPLATED_FIELDS:
            value = step.get(field) if isinstance(step, dict) else None
            if not isinstance(value, str):
                continue
            for expr in templates_in(value):
                source, _, name = expr.partition(".")
                if source == "secrets" and name and name not in names:
                    names.append(name)
    return names


def scrubber_for_run(run: Any) -> Scrubber:
    """The scrub list of an execution of ``run``, rebuilt from scratch: the values of the secrets
    its program names (for a TOTP secret its seed and the codes around now), the inputs humans gave
    it that are still sealed on its pauses, and what earlier executions typed (sealed on the run)."""
    from approvals.models import Approval
    from vault.services import secret_scrub_values

    from .executor import approval_scope

    scrubber = Scrubber(sealed_values(run))
    for name in referenced_secrets(run.program):
        try:
            scrubber.add(secret_scrub_values(tenant_id=run.tenant_id, name=name))
        except Exception as exc:  # a broken secret fails its step later, with a reason
            log.warning("run %s: could not read secret %r to scrub it: %s", run.pk, name, type(exc).__name__)
    from vault.crypto import open_text

    for sealed in (
        Approval.objects.filter(run_id=run.pk).exclude(sealed_input="").values_list("sealed_input", flat=True)
    ):
        with contextlib.suppress(InvalidToken):
            scrubber.add([open_text(sealed, scope=approval_scope(run.tenant_id))])
    if scrubber.short_values():
        log.warning(
            "run %s uses %d secret or input value(s) shorter than %d characters: they are typed as dots "
            "but only scrubbed where a whole text is the value",
            run.pk,
            len(scrubber.short_values()),
            MIN_SCRUB_LENGTH,
        )
    return scrubber


# -- masking the page's pixels ----------------------------------------------------------------------------
# Runs in the isolated world MASK_WORLD of every frame: the page's scripts cannot read its
# variables. Its boxes live in a closed shadow root of a <twin-mask> element (no text, no pointer
# events: a click or a selector goes through to the page as before).
MASK_JS = r"""
(function (values, minLength) {
  'use strict';
  if (window.__twinMask) { window.__twinMask.add(values); return; }
  const long = new Set(), short = new Set();
  let host = null, layer = null, boxes = [];
  const hit = (text) => {
    if (!text) return false;
    for (const v of long) if (text.includes(v)) return true;
    return short.size > 0 && short.has(text.trim());
  };
  const deepest = (el, out) => {
    let inChild = false;
    for (const child of el.children) {
      if (child === host) continue;
      if (hit(child.textContent)) { inChild = true; deepest(child, out); }
    }
    if (!inChild) { out.push(el); return; }
    let own = '';
    for (const node of el.childNodes) if (node.nodeType === 3) own += node.data;
    if (hit(own)) out.push(el);
  };
  const collect = () => {
    const out = [];
    const body = document.body;
    if (body) {
      if (long.size && hit(body.textContent)) deepest(body, out);
      if (short.size) {
        const walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
          if (short.has(node.data.trim()) && node.parentElement) out.push(node.parentElement);
        }
      }
    }
    for (const el of document.querySelectorAll('input, textarea')) {
      if (el.type === 'password' || el.type === 'hidden' || !hit(el.value)) continue;
      const security = getComputedStyle(el).webkitTextSecurity;
      if (security && security !== 'none') continue;  // typed as dots already
      out.push(el);
    }
    return out;
  };
  const draw = (targets) => {
    if (!host || !host.isConnected) {
      if (!targets.length || !document.documentElement) return;
      host = document.createElement('twin-mask');
      host.setAttribute('aria-hidden', 'true');
      const fixed = {all: 'initial', display: 'block', position: 'absolute', left: '0', top: '0',
        width: '0', height: '0', overflow: 'visible', 'z-index': '2147483647', 'pointer-events': 'none'};
      for (const [name, value] of Object.entries(fixed)) host.style.setProperty(name, value, 'important');
      layer = host.attachShadow({mode: 'closed'});
      boxes = [];
      document.documentElement.appendChild(host);
    }
    const origin = host.getBoundingClientRect();
    let count = 0;
    for (const el of targets) {
      for (const r of el.getClientRects()) {
        if (r.width <= 0 || r.height <= 0) continue;
        let box = boxes[count];
        if (!box) { box = document.createElement('div'); layer.appendChild(box); boxes.push(box); }
        box.style.cssText = 'position:absolute;background:#000;pointer-events:none;' +
          `left:${r.left - origin.left - 3}px;top:${r.top - origin.top - 3}px;` +
          `width:${r.width + 6}px;height:${r.height + 6}px;`;
        count++;
      }
    }
    for (const extra of boxes.splice(count)) extra.remove();
  };
  const scan = () => {
    if (!long.size && !short.size) return;
    try { draw(collect()); } catch (e) { /* a page between documents: the next scan draws */ }
  };
  const mask = {
    add(list) {
      for (const v of list) {
        if (typeof v === 'string' && v) (v.length >= minLength ? long : short).add(v);
      }
      scan();
    },
  };
  Object.defineProperty(window, '__twinMask', {value: mask});
  // Mutation callbacks run before the next paint: an echo is covered in the frame it appears in.
  new MutationObserver(scan).observe(document, {
    childList: true, subtree: true, characterData: true, attributes: true,
  });
  addEventListener('input', scan, true);
  addEventListener('change', scan, true);
  addEventListener('scroll', scan, true);
  addEventListener('resize', scan);
  addEventListener('DOMContentLoaded', scan);
  addEventListener('load', scan);
  setInterval(scan, 200);  // layout that moves without a mutation (fonts, images, animations)
  mask.add(values);
})
"""


def mask_source(values: Iterable[str]) -> str:
    """The mask script with its values (a JSON literal: data, never code). A page shows text
    decoded, but may print a URL that carries a value: its URL-encoded forms are masked too."""
    forms: list[str] = []
    for value in values:
        for form in (value, quote_plus(value), quote(value, safe="")):
            if form not in forms:
                forms.append(form)
    return f"{MASK_JS.strip()}({json.dumps(forms)}, {MIN_SCRUB_LENGTH});"


# Resolves once the page has painted twice (the mask's boxes are then in every later frame), or
# after a second at most (a hidden page may not paint). Run in the mask's isolated world, whose
# requestAnimationFrame and setTimeout the page's own scripts cannot replace.
PAINTED_JS = (
    "Promise.race([new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))),"
    " new Promise((done) => setTimeout(done, 1000))]).then(() => true)"
)


def painted_commands(frame_tree: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The CDP parameters that wait for the mask to be painted: ``Page.createIsolatedWorld`` in the
    mask's world (it names the world the mask already runs in), then ``Runtime.evaluate`` with the
    context id it answers (set under ``contextId``)."""
    world = {"frameId": frame_tree["frameTree"]["frame"]["id"], "worldName": MASK_WORLD}
    evaluate = {"expression": PAINTED_JS, "awaitPromise": True, "returnByValue": True}
    return world, evaluate


class PageMask:
    """The mask of one page, over its own CDP session (Playwright's sync API)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self._cdp: Any = None
        self._script = ""
        self._values: list[str] = []

    def update(self, values: Iterable[str]) -> None:
        """Mask ``values`` from now on, in this document and every later one of the page."""
        values = list(values)
        if values == self._values or not values:
            return
        self._values = values
        if self._cdp is None:
            self._cdp = self.page.context.new_cdp_session(self.page)
            self._cdp.send("Page.enable")
        if self._script:
            with contextlib.suppress(Exception):
                self._cdp.send("Page.removeScriptToEvaluateOnNewDocument", {"identifier": self._script})
        # runImmediately: the documents already open get it too, in the same isolated world.
        self._script = self._cdp.send(
            "Page.addScriptToEvaluateOnNewDocument",
            {"source": mask_source(values), "worldName": MASK_WORLD, "runImmediately": True},
        )["identifier"]
        # The boxes are in the DOM now, not yet in a frame: a screencast started (or a picture taken)
        # before the next paint would show what they cover.
        with contextlib.suppress(Exception):
            world, evaluate = painted_commands(self._cdp.send("Page.getFrameTree"))
            context = self._cdp.send("Page.createIsolatedWorld", world)["executionContextId"]
            self._cdp.send("Runtime.evaluate", {**evaluate, "contextId": context})

    def close(self) -> None:
        """Detach (the open document keeps its mask; a later document is masked by whoever drives
        or watches the page next)."""
        cdp, self._cdp = self._cdp, None
        if cdp is not None:
            with contextlib.suppress(Exception):
                cdp.detach()
