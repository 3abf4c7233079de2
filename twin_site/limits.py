"""Every input bound in one place, and the JSON parser that enforces the body-wide ones.

The numbers are far above what a person or an integration writes, and far below what makes
a database row, a pause prompt, a webhook body or the dashboard heavy: a 1 MB selector would
otherwise come back in every run list and webhook for as long as the run exists. They are
documented in docs/api.md ("Limits") and, per field, in the OpenAPI schema.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.parsers import JSONParser

# -- request bodies -------------------------------------------------------------------------------
# TWIN_MAX_BODY_BYTES (settings) bounds a request body; MAX_JSON_DEPTH its nesting. A run's body
# is {"params": {"k": "v"}, "steps": [{"gate": {"options": ["…"]}}]}: depth 4.
MAX_JSON_DEPTH = 32

# -- a run ------------------------------------------------------------------------------------------
MAX_GOAL = 2_000
MAX_URL = 2_048
MAX_PARAMS = 100
MAX_PARAM_NAME = 100
MAX_PARAM_VALUE = 10_000
# -- a step (MAX_STEPS, MAX_TIMEOUT and MAX_EXPIRES_IN live in runs.program) -------------------------
MAX_SELECTOR = 2_000
MAX_VALUE = 10_000  # a fill's or select's value
MAX_KEY = 100  # a press's key ("Control+Shift+Enter")
MAX_TEXT = 2_000  # assert_text
MAX_NAME = 100  # an extract's output name, an attribute name
MAX_LABEL = 200
MAX_OUTPUT = 10_000  # an extracted value: a hostile page's megabyte must not ride in every answer
MAX_PROMPT = 1_000
MAX_PATTERN = 500  # also the column's size (approvals.Approval.pattern)
MAX_OPTIONS = 50
MAX_OPTION = 200
# -- answers ------------------------------------------------------------------------------------------
MAX_INPUT = MAX_VALUE  # an input becomes a fill's value
MAX_CHOICE = 500  # it must be one of the options anyway; the column's size
MAX_NOTE = 10_000  # a decision's note, a rejection's reason
# -- the vault and webhooks ---------------------------------------------------------------------------
MAX_SECRET_NAME = 100
MAX_SECRET_VALUE = 10_000
MAX_ORIGINS = 20
MAX_ORIGIN = 300
MAX_WEBHOOK_URL = 2_048
MAX_DESCRIPTION = 200

# Control characters (Unicode category Cc: U+0000 to U+001F, U+007F to U+009F), and the characters
# that change how the text around them is displayed (bidirectional overrides and isolates):
# "Pay $24" can be made to read "Pay $42". Never needed in a name, selector or prompt.
_REFUSED_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_REFUSED_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def refused_character(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` cannot be stored as a name, selector, URL or prompt (None when it can).

    Control characters (NUL, escape, DEL, …) have no place in what a person reads or a
    browser parses, and PostgreSQL cannot store NUL at all; ``multiline`` text (a prompt, a
    goal, an assertion's text) may hold tabs and line breaks.
    """
    found = (_REFUSED_IN_TEXT if multiline else _REFUSED_IN_LINE).search(value)
    if found is None:
        return None
    return f"must not contain control characters (found U+{ord(found.group()):04X})"


def bounded_text(value: Any, limit: int, *, multiline: bool = False, blank: bool = True) -> str | None:
    """The problem with ``value`` as a string field of at most ``limit`` characters, or None."""
    if not isinstance(value, str):
        return "must be a string"
    if not value and not blank:
        return "must not be empty"
    if len(value) > limit:
        return f"must be at most {limit:,} characters (got {len(value):,})"
    return refused_character(value, multiline=multiline)


def one_line(value: str) -> None:
    """A serializer validator: no control characters (a name, a URL, an origin, a description)."""
    if reason := refused_character(value):
        raise ValidationError(reason)


# -- the JSON parser -----------------------------------------------------------------------------------
class PayloadTooLarge(APIException):
    status_code = 413
    default_detail = "the request body is too large"
    default_code = "payload_too_large"


def max_body_bytes() -> int:
    return int(settings.TWIN_MAX_BODY_BYTES)


def _too_large_detail() -> str:
    return f"the request body is larger than {max_body_bytes():,} bytes"


# Where a value sits, as a chain (parent, key or index): built only when there is an error,
# so a body of many items under a long key costs no copies of that key.
_Path = tuple[Any, str | int] | None


def _shown(path: _Path) -> str:
    parts: list[str] = []
    while path is not None:
        path, segment = path
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        else:
            shown = segment if len(segment) <= 40 else segment[:40] + "…"
            parts.append(f".{shown!r}" if not shown.isidentifier() else f".{shown}")
    return "".join(reversed(parts)).lstrip(".")


def _nul_found(path: _Path, *, key: bool = False) -> ParseError:
    # Phrased to read after "this is" (the dashboard's start form) as well as on its own.
    where = _shown(path)
    where = f" in a key of {where or 'the body'}" if key else f" at {where}" if where else ""
    return ParseError(f"JSON with NUL (\\u0000){where}: no name, selector or text may hold it")


def check_json(value: Any) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH or holding NUL anywhere (walked without recursion).

    PostgreSQL cannot store NUL in text or jsonb, a selector or name never needs it, and a
    string that ends at a NUL for one parser and not for another is how checks get bypassed.
    """
    stack: list[tuple[Any, int, _Path]] = [(value, 1, None)]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    if "\x00" in key:
                        raise _nul_found(path, key=True)
                    stack.append((child, depth + 1, (path, key)))
            else:
                stack.extend((child, depth + 1, (path, i)) for i, child in enumerate(item))
        elif isinstance(item, str) and "\x00" in item:
            raise _nul_found(path)


def load_json(raw: bytes | str) -> Any:
    """Parse a JSON document within the bounds: what the API and the dashboard's start form accept.

    Raises PayloadTooLarge (413) past TWIN_MAX_BODY_BYTES and ParseError (400) for anything
    that is not strict JSON (NaN and Infinity are not JSON), is nested too deep or holds NUL.
    """
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > max_body_bytes():
        raise PayloadTooLarge(_too_large_detail())
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        # The decoder recurses per level: far past the limit it gives up before we can count.
        raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise ParseError(f"not valid JSON: {exc}") from None
    check_json(value)
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, reading at most TWIN_MAX_BODY_BYTES (declared or not) and checking depth."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        if stream is None:
            return {}
        # A body sent without Content-Length (chunked) is not stopped by the middleware: count here.
        raw = stream.read(max_body_bytes() + 1)
        if len(raw) > max_body_bytes():
            raise PayloadTooLarge(_too_large_detail())
        try:
            text = codecs.decode(raw, encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"the body is not valid {encoding}: {exc}") from None
        return load_json(text)


# -- the middleware ------------------------------------------------------------------------------------
def _declared_too_large(request: HttpRequest) -> HttpResponse | None:
    if not request.path.startswith("/api/"):
        return None
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared <= max_body_bytes():
        return None
    return JsonResponse({"error": "payload_too_large", "detail": _too_large_detail()}, status=413)


class ApiBodyLimitMiddleware:
    """A declared body over the limit answers 413 in the API's JSON error shape, before it is read.

    Without this, Django reads it and answers an HTML 400 (RequestDataTooBig), and a client
    learns nothing it can act on. Sync and async, so the async API views stay on the event loop.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        return _declared_too_large(request) or self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> Any:
        return _declared_too_large(request) or await self.get_response(request)
