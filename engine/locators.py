"""Locator bundles: what an element step acted on, recorded so a skill can find it again.

At the moment a step acts, :func:`describe_element` reads a *bundle* of the element: its role
and accessible name, test id, label, placeholder, visible text, stable attributes (id, name,
href, type), a CSS path and an XPath, and a fingerprint (tag, role, name). It also notes which
of those locators found that element and nothing else on the page then (``unique``).

A replay (:func:`find`) tries the unique locators in one fixed order (:data:`ORDER`) and
accepts the first that finds exactly one element whose fingerprint agrees. The first one of
the bundle is the *primary*; another one holding instead is a *heal*. Nothing matching, or
several look-alikes that no locator tells apart, is a question for a human, never a guess:
the positional locators (CSS path, XPath) count only when the page has a single element
with the fingerprint, so they never pick one of several look-alikes by place.

The role and accessible name are computed by the same script at record time and at replay
(a simplified form of the ARIA rules), so the two always agree with each other. Nothing is
read from a form field's value: a bundle never holds what a step typed.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from .bridge import let_go, soon
from .scrub import MASK

# The order a replay tries a bundle's locators in; positional ones last.
ORDER = (
    "testid",
    "id",
    "role",
    "label",
    "placeholder",
    "name",
    "href",
    "text",
    "context",
    "css",
    "xpath",
)
POSITIONAL = frozenset({"css", "xpath"})
BUNDLE_VERSION = 1
# Sizes a bundle's strings are cut to (a page chooses them).
MAX_FIELD = 200
MAX_PATH = 1000
MAX_OPTIONS = 100
MAX_OPTION = 200
# How long a replay watches a page that shows several look-alikes before asking which one is meant
# (a page that is still rendering may be about to show the recorded element).
AMBIGUITY_SETTLE_S = 0.3
POLL_S = 0.05

# The shared library: role, accessible name, visibility, the matchers of every locator.
_LIB = r"""
const clean = (s) => (s || '').replace(/\s+/g, ' ').trim();
const cut = (s, n) => { s = clean(s); return s.length > n ? s.slice(0, n) : s; };
const MAXF = %(max_field)d;
const SKIP_TEXT = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE']);
// An element's text: its text nodes joined by spaces, up to a length. No layout is needed (innerText
// would lay out every element it reads): a page of thousands of rows is read in milliseconds.
const wordsCache = new Map();
function words(el, limit) {
  const key = el;
  const cached = wordsCache.get(key);
  if (cached !== undefined && cached.limit >= limit) return cached.text.slice(0, limit);
  const parts = [];
  let length = 0;
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n && length <= limit; n = walker.nextNode()) {
    if (n.parentElement && SKIP_TEXT.has(n.parentElement.tagName)) continue;
    const t = clean(n.data);
    if (t) { parts.push(t); length += t.length + 1; }
  }
  const text = parts.join(' ');
  wordsCache.set(key, {limit, text});
  return text.slice(0, limit);
}
function lines(el, limit) {
  const found = [];
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n && found.length < limit; n = walker.nextNode()) {
    if (n.parentElement && SKIP_TEXT.has(n.parentElement.tagName)) continue;
    const t = clean(n.data);
    if (t) found.push(t.slice(0, MAXF));
  }
  return found;
}
const TEXT_ROLES = new Set(['button', 'link', 'heading', 'option', 'tab', 'menuitem', 'cell',
  'columnheader', 'rowheader', 'treeitem', 'checkbox', 'radio', 'switch', 'listitem', 'tooltip']);
const FIELDS = new Set(['input', 'select', 'textarea']);
const INPUT_ROLES = {button: 'button', submit: 'button', reset: 'button', image: 'button',
  checkbox: 'checkbox', radio: 'radio', range: 'slider', number: 'spinbutton', search: 'searchbox',
  email: 'textbox', tel: 'textbox', text: 'textbox', url: 'textbox', password: 'textbox', '': 'textbox'};
function roleOf(el) {
  const explicit = clean(el.getAttribute('role')).split(' ')[0];
  if (explicit) return explicit.toLowerCase();
  const tag = el.tagName.toLowerCase();
  if (tag === 'a' || tag === 'area') return el.hasAttribute('href') ? 'link' : '';
  if (tag === 'button') return 'button';
  if (tag === 'input') {
    const type = (el.getAttribute('type') || '').toLowerCase();
    return type === 'hidden' ? '' : (INPUT_ROLES[type] || 'textbox');
  }
  if (tag === 'select') return (el.multiple || el.size > 1) ? 'listbox' : 'combobox';
  if (tag === 'textarea') return 'textbox';
  if (tag === 'option') return 'option';
  if (tag === 'img') return el.getAttribute('alt') === '' ? 'presentation' : 'img';
  if (/^h[1-6]$/.test(tag)) return 'heading';
  if (tag === 'li') return 'listitem';
  if (tag === 'summary') return 'button';
  if (tag === 'nav') return 'navigation';
  if (tag === 'main') return 'main';
  if (tag === 'dialog') return 'dialog';
  if (tag === 'td') return 'cell';
  if (tag === 'th') return 'columnheader';
  if (tag === 'label') return '';
  return '';
}
// Labels by the id they are for, read once per call (el.labels searches the document every time).
let labelIndex = null;
const labelTexts = new Map();
function labelsOf(el) {
  if (labelTexts.has(el)) return labelTexts.get(el);
  if (labelIndex === null) {
    labelIndex = new Map();
    for (const l of document.querySelectorAll('label[for]')) {
      const id = l.getAttribute('for');
      if (!labelIndex.has(id)) labelIndex.set(id, []);
      labelIndex.get(id).push(l);
    }
  }
  const found = el.id && labelIndex.has(el.id) ? [...labelIndex.get(el.id)] : [];
  const wrapping = el.closest('label');
  if (wrapping && !found.includes(wrapping)) found.push(wrapping);
  const text = cut(found.map((l) => words(l, MAXF)).join(' '), MAXF);
  labelTexts.set(el, text);
  return text;
}
const names = new Map();
function nameOf(el, role) {
  if (!names.has(el)) names.set(el, computeName(el, role));
  return names.get(el);
}
function computeName(el, role) {
  const by = clean(el.getAttribute('aria-labelledby'));
  if (by) {
    const text = by.split(' ')
      .map((id) => { const r = document.getElementById(id); return r ? words(r, MAXF) : ''; }).join(' ');
    if (clean(text)) return cut(text, MAXF);
  }
  const aria = clean(el.getAttribute('aria-label'));
  if (aria) return cut(aria, MAXF);
  const tag = el.tagName.toLowerCase();
  if (tag === 'input') {
    const type = (el.getAttribute('type') || '').toLowerCase();
    if (type === 'button' || type === 'submit' || type === 'reset') {
      const fallback = type === 'submit' ? 'Submit' : type === 'reset' ? 'Reset' : '';
      return cut(el.getAttribute('value') || fallback, MAXF);
    }
    if (type === 'image') return cut(el.getAttribute('alt') || el.getAttribute('value') || 'Submit', MAXF);
  }
  if (FIELDS.has(tag)) {
    const label = labelsOf(el);
    if (label) return label;
    return cut(el.getAttribute('title') || el.getAttribute('placeholder') || '', MAXF);
  }
  if (tag === 'img') return cut(el.getAttribute('alt') || el.getAttribute('title') || '', MAXF);
  if (TEXT_ROLES.has(role)) {
    const text = words(el, MAXF);
    if (text) return cut(text, MAXF);
  }
  return cut(el.getAttribute('title') || '', MAXF);
}
function visible(el) {
  if (el.checkVisibility) return el.checkVisibility();
  return el.getClientRects().length > 0;
}
function textOf(el) {
  const tag = el.tagName.toLowerCase();
  if (FIELDS.has(tag)) return '';
  return cut(words(el, MAXF), MAXF);
}
function fingerprint(el) {
  const role = roleOf(el);
  return {tag: el.tagName.toLowerCase(), role, name: nameOf(el, role)};
}
// A recorded text with a value kept out of it (a secret the page showed, scrubbed to the mask) agrees
// with any text that differs only there.
const MASK = %(mask)s;
const patterns = new Map();
function same(actual, recorded) {
  if (!recorded.includes(MASK)) return actual === recorded;
  if (!patterns.has(recorded)) {
    const parts = recorded.split(MASK).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    patterns.set(recorded, new RegExp('^' + parts.join('[^]+?') + '$'));
  }
  return patterns.get(recorded).test(actual);
}
const agrees = (el, fp) => {
  if (el.tagName.toLowerCase() !== fp.tag) return false;
  const role = roleOf(el);
  return role === fp.role && same(nameOf(el, role), fp.name);
};
const quote = (s) => '"' + String(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\a ') + '"';
function all(selector) {
  try { return Array.from(document.querySelectorAll(selector)); } catch (e) { return []; }
}
function byXpath(path) {
  const found = [];
  try {
    const r = document.evaluate(path, document, null, XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null);
    for (let i = 0; i < r.snapshotLength && i < 50; i++) {
      const n = r.snapshotItem(i);
      if (n && n.nodeType === 1) found.push(n);
    }
  } catch (e) {}
  return found;
}
const TESTID_ATTRS = ['data-testid', 'data-test-id', 'data-test', 'data-qa'];
// Each look-alike's region: its highest ancestor that holds no other look-alike. What is written in
// an element's region is its own (a card's "Pro"), and tells it apart from the others.
const regionsFor = new Map();
function regions(lookalikes) {
  if (regionsFor.has(lookalikes)) return regionsFor.get(lookalikes);
  const counts = new Map();
  for (const e of lookalikes) {
    for (let a = e.parentElement; a; a = a.parentElement) counts.set(a, (counts.get(a) || 0) + 1);
  }
  const found = new Map();
  for (const e of lookalikes) {
    let top = e;
    while (top.parentElement && top.parentElement !== document.documentElement
           && counts.get(top.parentElement) === 1) top = top.parentElement;
    found.set(e, top);
  }
  regionsFor.set(lookalikes, found);
  return found;
}
const REGION_TEXT = 2000;
const holds = (text, line) => (' ' + text + ' ').includes(' ' + line + ' ');
function within(el, text, lookalikes) {
  const top = regions(lookalikes).get(el);
  return !!top && top !== el && holds(words(top, REGION_TEXT), text);
}
// What a person reads to tell candidates apart: the texts from the element up to its region.
function ancestorsText(el, lookalikes) {
  const top = regions(lookalikes).get(el) || el;
  const texts = [];
  for (let a = el.parentElement; a && a !== document.documentElement; a = a.parentElement) {
    texts.push(words(a, 400));
    if (a === top || texts.length >= 6) break;
  }
  return texts;
}
// Every element the page has that a locator of the bundle could mean.
function matches(by, b, lookalikes) {
  const tag = b.fingerprint.tag;
  switch (by) {
    case 'testid': return all('[' + b.testid_attr + '=' + quote(b.testid) + ']');
    case 'id': return all('[id=' + quote(b.attributes.id) + ']');
    case 'role': return all(tag + ',[role]').filter((e) => {
      const role = roleOf(e); return role === b.role && same(nameOf(e, role), b.name); });
    case 'label': return all('input,select,textarea').filter((e) => same(labelsOf(e), b.label));
    case 'placeholder': return all('[placeholder=' + quote(b.placeholder) + ']');
    case 'name': return all(tag + '[name=' + quote(b.attributes.name) + ']');
    case 'href': return all(tag + '[href=' + quote(b.attributes.href) + ']');
    case 'text': return all(tag).filter((e) => same(textOf(e), b.text));
    case 'context': return lookalikes.filter((e) => within(e, b.context, lookalikes));
    case 'css': return all(b.css);
    case 'xpath': return byXpath(b.xpath);
  }
  return [];
}
function present(by, b) {
  switch (by) {
    case 'testid': return !!b.testid;
    case 'id': return !!(b.attributes && b.attributes.id);
    case 'role': return !!(b.role && b.name);
    case 'label': return !!b.label;
    case 'placeholder': return !!b.placeholder;
    case 'name': return !!(b.attributes && b.attributes.name);
    case 'href': return !!(b.attributes && b.attributes.href);
    case 'text': return !!b.text;
    case 'context': return !!b.context;
    case 'css': return !!b.css;
    case 'xpath': return !!b.xpath;
  }
  return false;
}
function lookalikesOf(fp, onlyVisible) {
  return all(fp.tag).filter((e) => agrees(e, fp) && (!onlyVisible || visible(e)));
}
"""

_BUNDLE_BODY = r"""
const tag = el.tagName.toLowerCase();
const fp = fingerprint(el);
const attributes = {};
const volatile = (v) => /\d{4,}|[0-9a-f]{8,}|^:|^ember|^react|^mui-|^radix-/i.test(v);
for (const a of ['id', 'name', 'type', 'href']) {
  const v = el.getAttribute(a);
  if (v && v.length <= MAXF && !(a === 'id' && volatile(v))) attributes[a] = v;
}
let testid = '', testid_attr = '';
for (const a of TESTID_ATTRS) {
  const v = el.getAttribute(a);
  if (v && v.length <= MAXF) { testid = v; testid_attr = a; break; }
}
function cssPath(e) {
  const parts = [];
  for (; e && e.nodeType === 1 && e !== document.documentElement; e = e.parentElement) {
    const t = e.tagName.toLowerCase();
    const p = e.parentElement;
    if (!p) { parts.unshift(t); break; }
    const same = Array.from(p.children).filter((c) => c.tagName === e.tagName);
    parts.unshift(same.length > 1 ? t + ':nth-of-type(' + (same.indexOf(e) + 1) + ')' : t);
  }
  return parts.join(' > ');
}
function xpathOf(e) {
  const parts = [];
  for (; e && e.nodeType === 1; e = e.parentElement) {
    const p = e.parentElement;
    const t = e.tagName.toLowerCase();
    if (!p) { parts.unshift(t); break; }
    const same = Array.from(p.children).filter((c) => c.tagName === e.tagName);
    parts.unshift(t + '[' + (same.indexOf(e) + 1) + ']');
  }
  return '/' + parts.join('/');
}
const shown = visible(el);
const b = {
  v: %(version)d, tag, role: fp.role, name: fp.name, testid, testid_attr,
  label: FIELDS.has(tag) ? labelsOf(el) : '',
  placeholder: cut(el.getAttribute('placeholder') || '', MAXF),
  text: textOf(el), attributes, css: cssPath(el), xpath: xpathOf(el), fingerprint: fp,
  visible: shown, context: '', nth: 0, lookalikes: 1, unique: [],
};
if (tag === 'select') {
  b.options = Array.from(el.options).slice(0, %(max_options)d).map((o) => o.value.slice(0, %(max_option)d));
}
const alike = lookalikesOf(fp, shown);
if (!alike.includes(el)) alike.push(el);
b.lookalikes = alike.length;
b.nth = alike.indexOf(el);
if (alike.length > 1) {
  // The shortest text of this element's region that no other look-alike's region holds.
  const top = regions(alike).get(el);
  if (top && top !== el) {
    const others = alike.filter((e) => e !== el).map((e) => words(regions(alike).get(e) || e, REGION_TEXT));
    const own = lines(top, 50).filter((l) => l !== fp.name && !others.some((t) => holds(t, l)));
    own.sort((x, y) => x.length - y.length);
    if (own.length) b.context = own[0];
  }
}
for (const by of ORDER) {
  if (!present(by, b)) continue;
  if (POSITIONAL.has(by) && b.lookalikes > 1) continue;
  const found = matches(by, b, alike).filter((e) => !shown || visible(e));
  if (found.length === 1 && found[0] === el) b.unique.push(by);
}
return b;
"""

_FIND_BODY = r"""
const fp = b.fingerprint;
const alike = lookalikesOf(fp, b.visible !== false);
const primary = b.unique[0] || '';
if (pick !== null && pick !== undefined) {
  // A human's answer to an earlier question about these look-alikes: the one they chose.
  const el = alike[pick];
  return el ? {el, info: {status: 'found', by: 'human', primary, lookalikes: alike.length, ready: true}}
            : {el: null, info: {status: 'missing', primary, lookalikes: alike.length, ready: true}};
}
for (const by of b.unique) {
  if (!ORDER.includes(by) || !present(by, b)) continue;
  if (POSITIONAL.has(by) && alike.length !== 1) continue;
  const found = matches(by, b, alike).filter((e) => b.visible === false || visible(e));
  if (found.length === 1 && agrees(found[0], fp)) {
    // The common case, the primary holding: the element itself (one round trip, nothing to read).
    if (by === primary) return found[0];
    return {el: found[0], info: {status: 'found', by, primary, lookalikes: alike.length,
      ready: document.readyState === 'complete'}};
  }
}
const candidates = alike.slice(0, 50).map((el) => {
  const context = ancestorsText(el, alike);
  return {text: (fp.name || textOf(el) || fp.tag).slice(0, 80), context};
});
return {el: null, info: {status: alike.length > 1 ? 'ambiguous' : 'missing', primary,
  lookalikes: alike.length, candidates, ready: document.readyState === 'complete'}};
"""


def _lib() -> str:
    order = ", ".join(f"'{by}'" for by in ORDER)
    positional = ", ".join(f"'{by}'" for by in sorted(POSITIONAL))
    return (
        _LIB % {"max_field": MAX_FIELD, "mask": json.dumps(MASK)}
        + f"const ORDER = [{order}];\nconst POSITIONAL = new Set([{positional}]);\n"
    )


BUNDLE_JS = (
    "(el) => {"
    + _lib()
    + _BUNDLE_BODY % {"version": BUNDLE_VERSION, "max_options": MAX_OPTIONS, "max_option": MAX_OPTION}
    + "}"
)
FIND_JS = "([b, pick]) => {" + _lib() + _FIND_BODY + "}"
# A hand-written step's selector, in one page call without waiting: the bundle of the one element it
# matches now, else how many it matches (0: not there yet; several: Playwright's strictness decides).
BUNDLE_ONE_JS = "(els) => els.length === 1 ? (" + BUNDLE_JS + ")(els[0]) : els.length"
# The same for a selector that is plain CSS, found by the page's own querySelectorAll: no Playwright
# selector engine, whose first use in a document injects its script into the page's world (tens of ms
# that the step's action, resolving in Playwright's utility world, does not need). -1 when the
# selector is not plain CSS or the page has open shadow roots (Playwright's CSS looks into those).
# "CSS >> nth=0" (Locator.first) counts when the CSS matches one element, whatever the order.
_BUNDLE_CSS_BODY = r"""
let nth = null;
const m = /^([^]*?) >> nth=(-?\d+)$/.exec(selector);
if (m) { selector = m[1]; nth = Number(m[2]); }
let found;
try { found = document.querySelectorAll(selector); } catch (e) { return -1; }
if (found.length !== 1) return nth === null ? found.length : -1;
if (nth !== null && nth !== 0 && nth !== -1) return -1;
const walker = document.createTreeWalker(document, NodeFilter.SHOW_ELEMENT);
for (let n = walker.nextNode(); n; n = walker.nextNode()) if (n.shadowRoot) return -1;
return describe(found[0]);
"""
BUNDLE_CSS_JS = "(selector) => { const describe = " + BUNDLE_JS + ";" + _BUNDLE_CSS_BODY + "}"


# -- bundles in Python ------------------------------------------------------------------------------
_STRING_FIELDS = ("tag", "role", "name", "testid", "testid_attr", "label", "placeholder", "text", "context")


def clean_bundle(raw: Any) -> dict[str, Any] | None:
    """A bundle reduced to known fields of bounded size (a page, or a program's author, chose it);
    None if it is not one."""
    if not isinstance(raw, dict):
        return None
    bundle: dict[str, Any] = {"v": BUNDLE_VERSION}
    for key in _STRING_FIELDS:
        value = raw.get(key, "")
        bundle[key] = value[:MAX_FIELD] if isinstance(value, str) else ""
    for key in ("css", "xpath"):
        value = raw.get(key, "")
        bundle[key] = value[:MAX_PATH] if isinstance(value, str) and len(value) <= MAX_PATH else ""
    attributes = raw.get("attributes")
    bundle["attributes"] = {
        key: value
        for key, value in (attributes.items() if isinstance(attributes, dict) else ())
        if key in {"id", "name", "type", "href"} and isinstance(value, str) and 0 < len(value) <= MAX_FIELD
    }
    fingerprint = raw.get("fingerprint")
    if not isinstance(fingerprint, dict):
        fingerprint = {}
    bundle["fingerprint"] = {
        key: value[:MAX_FIELD] if isinstance(value := fingerprint.get(key), str) else ""
        for key in ("tag", "role", "name")
    }
    if not bundle["fingerprint"]["tag"] or not bundle["fingerprint"]["tag"].replace("-", "").isalnum():
        return None
    bundle["visible"] = raw.get("visible") is not False
    for key in ("nth", "lookalikes"):
        value = raw.get(key)
        bundle[key] = (
            value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**6 else 0
        )
    unique = raw.get("unique")
    bundle["unique"] = [
        by for by in ORDER if isinstance(unique, list) and by in unique
    ]  # the fixed order, whatever order it came in
    options = raw.get("options")
    if isinstance(options, list):
        bundle["options"] = [o[:MAX_OPTION] for o in options[:MAX_OPTIONS] if isinstance(o, str)]
    return bundle


def scrub_bundle(bundle: dict[str, Any], scrub: Any) -> dict[str, Any]:
    """The bundle with every string passed through ``scrub`` (a secret shown on the page stays out)."""

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return scrub(value)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return dict(walk(bundle))


# The strings of a bundle that show what a page displays (and so may show a skill's parameter).
TEXT_FIELDS = ("name", "text", "label", "placeholder", "context")


def bundle_templates(bundle: dict[str, Any]) -> list[str]:
    """The ``{{…}}`` expressions in the bundle's displayed strings (a compiled skill's parameters)."""
    from runs.program import templates_in

    found: list[str] = []
    for text in _displayed(bundle):
        found += templates_in(text)
    return found


def _displayed(bundle: dict[str, Any]) -> list[str]:
    texts = [bundle.get(key, "") for key in TEXT_FIELDS]
    texts.append(bundle.get("fingerprint", {}).get("name", ""))
    texts.append(bundle.get("attributes", {}).get("href", ""))
    return [t for t in texts if isinstance(t, str)]


def map_displayed(bundle: dict[str, Any], change: Any) -> dict[str, Any]:
    """The bundle with ``change(text)`` applied to each displayed string (promote or render parameters)."""
    out = dict(bundle)
    for key in TEXT_FIELDS:
        if isinstance(out.get(key), str):
            out[key] = change(out[key])
    out["fingerprint"] = dict(out.get("fingerprint", {}))
    if isinstance(out["fingerprint"].get("name"), str):
        out["fingerprint"]["name"] = change(out["fingerprint"]["name"])
    out["attributes"] = dict(out.get("attributes", {}))
    if isinstance(out["attributes"].get("href"), str):
        out["attributes"]["href"] = change(out["attributes"]["href"])
    return out


def describe_element(target: Any, *, timeout_ms: float) -> dict[str, Any] | None:
    """The bundle of the element ``target`` (a strict Locator or an ElementHandle) means, now."""
    if hasattr(target, "as_element"):  # an ElementHandle
        raw = target.evaluate(BUNDLE_JS)
    else:
        raw = target.evaluate(BUNDLE_JS, timeout=timeout_ms)
    return clean_bundle(raw)


def selector_of(locator: Any) -> str | None:
    """The selector of a Playwright Locator (``Locator.first`` adds " >> nth=0"); None if unknown.

    Playwright has no public accessor: this reads its implementation's attribute, and a Playwright
    without it only loses :func:`describe_css`, the fast way.
    """
    selector = getattr(getattr(locator, "_impl_obj", None), "_selector", None)
    return selector if isinstance(selector, str) else None


def describe_css(page: Any, selector: str, *, cdp: Any = None) -> tuple[int, dict[str, Any] | None]:
    """How many elements a plain CSS ``selector`` matches on ``page`` now (-1: not plain CSS, or the
    page has shadow roots: ask Playwright), and the bundle of the element when it is one.

    One page call, nothing waits and no Playwright selector engine is involved. Over ``cdp`` (a CDP
    session on the page) it is a plain ``Runtime.evaluate`` in the page's main world: no
    Playwright evaluation helpers, which the first ``Page.evaluate`` in a new document installs
    first (about 5 ms after every navigation).
    """
    if cdp is not None:
        return describe_css_answer(cdp.send("Runtime.evaluate", describe_css_request(selector)))
    return _counted(page.evaluate(BUNDLE_CSS_JS, selector))


def describe_css_request(selector: str) -> dict[str, Any]:
    """The ``Runtime.evaluate`` parameters of :func:`describe_css` (the selector as a JSON literal)."""
    return {"expression": f"({BUNDLE_CSS_JS})({json.dumps(selector)})", "returnByValue": True}


def describe_css_answer(answer: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    """:func:`describe_css`'s answer from the page's answer to :func:`describe_css_request`."""
    if "exceptionDetails" in answer:
        raise RuntimeError(str(answer["exceptionDetails"].get("text", "the page could not be read")))
    return _counted(answer.get("result", {}).get("value"))


def _counted(raw: Any) -> tuple[int, dict[str, Any] | None]:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return int(raw), None
    return 1, clean_bundle(raw)


def describe_only(locator: Any) -> tuple[int, dict[str, Any] | None]:
    """How many elements ``locator`` matches now, and the bundle of the element when it is one.

    One page call (``Locator.evaluate_all``: the selector is resolved in the page, nothing waits),
    against three for a strict resolution to a handle (``element_handle``) described after.
    """
    raw = locator.evaluate_all(BUNDLE_ONE_JS)
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return int(raw), None
    return 1, clean_bundle(raw)


def primary(bundle: dict[str, Any]) -> str:
    return str(bundle["unique"][0]) if bundle.get("unique") else ""


def playwright_selector(bundle: dict[str, Any]) -> str:
    """The bundle's primary locator as a Playwright selector (what a person reads in the skill)."""

    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    by = primary(bundle)
    tag = bundle["fingerprint"]["tag"]
    attributes = bundle.get("attributes", {})
    if by == "testid":
        return f"[{bundle['testid_attr']}={quoted(bundle['testid'])}]"
    if by == "id":
        return f"[id={quoted(attributes['id'])}]"
    if by == "role":
        return f"internal:role={bundle['role']}[name={quoted(bundle['name'])}s]"
    if by == "label":
        return f"internal:label={quoted(bundle['label'])}s"
    if by == "placeholder":
        return f"[placeholder={quoted(bundle['placeholder'])}]"
    if by in {"name", "href"}:
        return f"{tag}[{by}={quoted(attributes[by])}]"
    if by == "text":
        return f"{tag}:text-is({quoted(bundle['text'])})"
    if by == "xpath":
        return f"xpath={bundle['xpath']}"
    if bundle.get("css"):
        return str(bundle["css"])
    return tag


# -- finding the element again ----------------------------------------------------------------------
class NotFound(Exception):
    """No element of the page agrees with the bundle."""


class Ambiguous(Exception):
    """Several look-alikes and no locator tells them apart: carries them, described for a person."""

    def __init__(self, candidates: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(candidates)} elements look alike")
        self.candidates = candidates


@dataclass
class Found:
    handle: Any
    by: str
    primary: str
    lookalikes: int = 1
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def healed(self) -> bool:
        return self.by not in {self.primary, "human"}


def find_soon(page: Any, bundle: dict[str, Any]) -> Any:
    """:func:`find`'s first look at the page, started now on the browser's loop (a read: nothing
    happens to the page), for ``find(first=...)`` to take in later: a ``bridge.Soon``."""
    return soon(page, lambda target: target.evaluate_handle(FIND_JS, [bundle, None]))


def find(
    page: Any, bundle: dict[str, Any], *, timeout_ms: float, pick: int | None = None, first: Any = None
) -> Found:
    """The element the bundle means on ``page`` now, waiting up to ``timeout_ms`` for it.

    ``pick`` is a human's answer to an earlier :class:`Ambiguous`: the index among the look-alikes.
    A fallback locator is accepted once the page has loaded (before that the primary may still
    come); several look-alikes are asked about once they have stayed so for a moment. ``first``:
    the first look, asked for earlier (:func:`find_soon`, with no pick); if it failed (the page
    was between documents), the page is asked again.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    ambiguous_since: float | None = None
    last: dict[str, Any] = {}
    while True:
        result = None
        if first is not None:
            with contextlib.suppress(Exception):
                result = first.result(timeout=max(0.0, deadline - time.monotonic()) + 5)
            first = None
        early = result is not None  # (taken as the step started)
        if result is None:
            result = page.evaluate_handle(FIND_JS, [bundle, pick])
        element = result.as_element()  # known without a round trip: the primary held
        if element is not None:
            return Found(element, primary(bundle), primary(bundle))
        try:
            properties = result.get_properties()
            info = properties["info"].json_value()
            element = properties["el"].as_element() if info.get("status") == "found" else None
        finally:
            let_go(result, lambda handle: handle.dispose())  # (sent, not waited for)
        last = info
        now = time.monotonic()
        if element is not None:
            found = Found(
                element, str(info["by"]), str(info.get("primary", "")), int(info["lookalikes"]), info
            )
            if not found.healed or info.get("ready") or now >= deadline:
                return found
            element.dispose()
        elif info.get("status") == "ambiguous":
            ambiguous_since = ambiguous_since or now
            if now - ambiguous_since >= AMBIGUITY_SETTLE_S or now >= deadline:
                raise Ambiguous(list(info.get("candidates") or []))
        else:
            ambiguous_since = None
        if now >= deadline:
            break
        if not early:  # (the early look is as old as the step's start: the page is asked again now)
            time.sleep(POLL_S)
    raise NotFound(
        "no element on the page agrees with the one recorded "
        f"({_fingerprint_words(bundle)}; {last.get('lookalikes', 0)} look-alikes)"
    )


def _fingerprint_words(bundle: dict[str, Any]) -> str:
    fp = bundle["fingerprint"]
    words = f"a {fp['role'] or fp['tag']}"
    if fp["name"]:
        words += f" named {fp['name']!r}"
    return words
