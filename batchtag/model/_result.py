"""The outcome of one snapshot, as the engine records it and the report writes it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

OK, NOOP, NOT_FOUND, FAILED, SKIPPED, PLANNED, CONFLICT = (
    "ok",
    "noop",
    "not_found",
    "failed",
    "skipped",
    "planned",
    "conflict",  # undo: the snapshot changed after the run it would revert; left alone
)
STATUSES = (OK, NOOP, NOT_FOUND, FAILED, SKIPPED, PLANNED, CONFLICT)
DONE_STATUSES = frozenset({OK, NOOP})  # a resumed run does not send these again

# One compact encoder for request bodies and report cells; a body is encoded once and the
# report reuses the text. JSONEncoder.encode builds a new C encoder on every call; one
# C encoder without the circular-reference check (the values are
# parsed JSON and plain cells, never circular) is built once and reused.
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
_c_encode = (
    None
    if c_make_encoder is None
    else c_make_encoder(None, str, encode_basestring, None, ":", ",", False, False, True)
)


def json_text(value: Any) -> str:
    """`value` as compact JSON text (non-ASCII kept, anything else through `str`).

    Examples
    --------
    >>> json_text({"tags": {"env": "prod", "old": None}})
    '{"tags":{"env":"prod","old":null}}'
    """
    if type(value) is str:
        return encode_basestring(value)
    if _c_encode is None:
        return _encoder.encode(value)
    return "".join(_c_encode(value, 0))


@dataclass(slots=True)
class Result:
    project_id: int
    region_id: int
    snapshot_id: str
    status: str
    http_status: int | None = None
    attempts: int = 0
    error_class: str | None = None
    error: str | None = None
    request_id: str | None = None
    started_at: str | None = None  # ISO 8601 UTC
    finished_at: str | None = None
    elapsed_ms: float | None = None
    tags_before: dict[str, str] | None = None  # user tags before the write, when read
    tags_after: dict[str, str] | None = None  # user tags after (from the response)
    name_before: str | None = None  # the name before the write, when read
    name_after: str | None = None  # the name after (from the response)
    ro_tags: dict[str, str] | None = None  # read-only tags (never written, never undone)
    rows: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # passthrough columns
    body: dict[str, Any] | None = None  # the request body (shown for dry-run rows)
    body_json: str | None = None  # `body` as the JSON text that was sent, when it was

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.project_id, self.region_id, self.snapshot_id)

    @property
    def request_body(self) -> dict[str, Any] | str | None:
        """The body as the JSON text that was sent, else the body (not sent: a dry run)."""
        return self.body_json if self.body_json is not None else self.body
