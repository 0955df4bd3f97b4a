"""The sandbox's errors in the Gcore shape, and the checks of a PATCH body."""

from __future__ import annotations

from typing import Any

NAME_MIN, NAME_MAX = 3, 63
TAG_MIN, TAG_MAX = 1, 255


class SandboxError(Exception):
    """An API error the sandbox answers with, in the Gcore error shape."""

    def __init__(
        self,
        status: int,
        exception_class: str,
        message: str,
        invalid_fields: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.exception_class = exception_class
        self.message = message
        self.invalid_fields = invalid_fields


def not_found(resource_id: str, what: str = "Snapshot") -> SandboxError:
    return SandboxError(404, "NotFoundError", f"{what} {resource_id} not found")


def validation_error(invalid_fields: dict[str, Any]) -> SandboxError:
    return SandboxError(400, "ValidationError", "Validation error", invalid_fields)


def tag_text_problems(text: str, what: str) -> list[str]:
    problems = []
    if not TAG_MIN <= len(text) <= TAG_MAX:
        problems.append(f"{what} length must be between {TAG_MIN} and {TAG_MAX}.")
    if any(ch.isspace() for ch in text):
        problems.append(f"{what} must not contain whitespace.")
    if "=" in text:
        problems.append(f"{what} must not contain '='.")
    return problems


def validate_tags(tags: Any) -> dict[str, Any] | list[str] | None:
    """Return the invalid_fields entry for `tags`, or None when it is fine."""
    if tags is None:
        return None
    if not isinstance(tags, dict):
        return ["Not a valid mapping type."]
    problems: dict[str, list[str]] = {}
    for key, value in tags.items():
        found = tag_text_problems(key, "Key")
        if value is not None and not isinstance(value, str):
            found.append("Value must be a string or null.")
        elif value is not None:
            found += tag_text_problems(value, "Value")
        if found:
            problems[key] = found
    return problems or None


def validate_patch(body: Any) -> dict[str, Any]:
    """Check a PATCH body; return it, or raise a 400 ValidationError naming every problem."""
    if not isinstance(body, dict):
        raise validation_error({"_schema": ["Invalid input type: the body must be an object."]})
    invalid: dict[str, Any] = {}
    for key in body:
        if key not in ("name", "tags"):
            invalid[key] = ["Unknown field."]
    if "name" in body:
        name = body["name"]
        if not isinstance(name, str):
            invalid["name"] = ["Not a valid string."]
        elif not NAME_MIN <= len(name) <= NAME_MAX:
            invalid["name"] = [f"Length must be between {NAME_MIN} and {NAME_MAX}."]
    if "tags" in body:
        tag_problems = validate_tags(body["tags"])
        if tag_problems:
            invalid["tags"] = tag_problems
    if invalid:
        raise validation_error(invalid)
    return body
