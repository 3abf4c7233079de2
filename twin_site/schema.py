"""OpenAPI postprocessing: every API operation documents the error answers it can give."""

from __future__ import annotations

from typing import Any

ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
COMMON = {
    "400": "The request is not valid (body, query or header); `error` says which rule and `detail` why.",
    "401": "No token, or an unknown or revoked one.",
    "403": "Your role in the tenant does not allow this.",
    "404": "No such object in your tenant.",
    "429": "Too many failed token attempts from this address (see `Retry-After`).",
}
TOO_LARGE = "The body is larger than the limit (1 MB unless `TWIN_MAX_BODY_BYTES` says otherwise)."
BY_METHOD = {
    "post": {
        "409": "The run is not in a state that allows this; `status` says which it is.",
        "413": TOO_LARGE,
        "422": "This `Idempotency-Key` was used for a different request.",
    },
    "patch": {"413": TOO_LARGE},
}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/") or path == "/api/schema":
            continue
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            answers = operation["responses"]
            for code, description in {**COMMON, **BY_METHOD.get(method, {})}.items():
                answers.setdefault(code, {"description": description, "content": ERROR})
                if "content" not in answers[code]:
                    answers[code]["content"] = ERROR
                if not answers[code].get("description"):
                    answers[code]["description"] = description
    return result


# Components whose fields are not all in every answer: the error body (``problems`` and ``status``
# only when they apply).
SOMETIMES = {"Error"}


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node)) if node else set()
    return set()


def _closure(names: set[str], components: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen or name not in components:
            continue
        seen.add(name)
        todo.extend(_refs(components[name]) - seen)
    return seen


def answers_carry_every_field(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """A component only answers use (a run, a step, a skill...) lists every field as required:
    the serializers write each field on every answer (null when it has no value), so a typed
    client (the TypeScript types are generated from this schema) need not guard against a
    missing one. ``test_the_api_keeps_to_its_schema`` checks the answers against it."""
    components = result.get("components", {}).get("schemas", {})
    asked: set[str] = set()
    answered: set[str] = set()
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            asked |= _refs(operation.get("requestBody", {}))
            answered |= _refs(operation.get("responses", {}))
    only_answers = _closure(answered, components) - _closure(asked, components) - SOMETIMES
    for name in sorted(only_answers):
        schema = components[name]
        if schema.get("type") == "object" and schema.get("properties"):
            schema["required"] = list(schema["properties"])
    return result
