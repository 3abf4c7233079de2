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
