"""OpenAPI post-processing: every operation documents its problem+json error answers."""

from typing import Any

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": True, "description": "Per-field messages (400)."},
        "open_items": {"type": "array", "items": {"type": "string"}, "description": "Close gate (409)."},
    },
    "required": ["type", "title", "status", "detail"],
}
ERRORS = {
    "400": "Invalid request (field errors in `errors`).",
    "401": "No valid credentials.",
    "403": "The token lacks the scope, or the account's role does not allow this.",
    "404": "Not found, or not visible to you.",
    "405": "Method not allowed.",
    "406": "Not acceptable.",
    "415": "Unsupported media type.",
}
WRITE_ERRORS = {
    "409": "Conflicts with the incident's state (closed, transition not allowed, close gate).",
    "412": "If-Match does not match the current ETag.",
    "422": "Refused by a business rule (the detail says which).",
}


def add_problem_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    reference = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            errors = ERRORS | (WRITE_ERRORS if method != "get" else {})
            for status, description in errors.items():
                operation["responses"].setdefault(status, {"description": description, "content": reference})
    return result
