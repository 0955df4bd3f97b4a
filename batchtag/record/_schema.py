"""The report's columns, written once: name, kind, the `Result` field behind it, meaning.

Every reader and writer of reports takes its column order and types from `REPORT_SCHEMA`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from batchtag.model import Result
from batchtag.tabular import FLOAT, INT, JSON, JSON_TEXT, STR, TAGS, TIME, Kind, plain


@dataclass(frozen=True)
class Column:
    """One report column: its `name`, storage `kind`, the `Result` attribute it shows."""

    name: str
    kind: Kind
    field: str
    doc: str


REPORT_SCHEMA: tuple[Column, ...] = (
    Column("project_id", INT, "project_id", "Gcore project"),
    Column("region_id", INT, "region_id", "Gcore region"),
    Column("snapshot_id", STR, "snapshot_id", "the snapshot (uuid)"),
    Column("status", STR, "status", "ok, noop, not_found, failed, skipped, planned, conflict"),
    Column("http_status", INT, "http_status", "the last HTTP status, if any"),
    Column("attempts", INT, "attempts", "requests sent for this snapshot"),
    Column("error_class", STR, "error_class", "the API's exception_class, or the local cause"),
    Column("error", STR, "error", "the error message"),
    Column("request_id", STR, "request_id", "the API's request_id (Gcore support asks for it)"),
    Column("started_at", TIME, "started_at", "first request (UTC)"),
    Column("finished_at", TIME, "finished_at", "outcome known (UTC)"),
    Column("elapsed_ms", FLOAT, "elapsed_ms", "started_at to finished_at, ms"),
    Column("tags_before", TAGS, "tags_before", "user tags before the write, when read"),
    Column("tags_after", TAGS, "tags_after", "user tags after the write (the response)"),
    Column("name_before", STR, "name_before", "the name before the write, when read"),
    Column("name_after", STR, "name_after", "the name after the write"),
    Column("ro_tags", TAGS, "ro_tags", "read-only tags (never written, never undone)"),
    Column("rows", JSON, "rows", "manifest rows (line numbers, or index labels)"),
    Column("request_body", JSON_TEXT, "request_body", "the PATCH body (JSON text in frames)"),
)
BASE_COLUMNS: tuple[str, ...] = tuple(c.name for c in REPORT_SCHEMA)
KINDS: dict[str, Kind] = {c.name: c.kind for c in REPORT_SCHEMA}
KEY_COLUMNS = ("project_id", "region_id", "snapshot_id")
_values_of = attrgetter(*(c.field for c in REPORT_SCHEMA))

Record = dict[str, Any]
Key = tuple[int, int, str]


def passthrough_name(column: str) -> str:
    """A manifest column's name in the report (``manifest_<name>`` if it would clash)."""
    return f"manifest_{column}" if column in KINDS else column


def report_columns(passthrough: Iterable[str]) -> list[str]:
    """The report's columns: the fixed ones, then the passthrough columns."""
    return [*BASE_COLUMNS, *(passthrough_name(c) for c in passthrough)]


def result_values(result: Result, extras: list[str | None]) -> list[Any]:
    """`result` as values in report-column order; `extras` names the manifest column
    behind each passthrough column (None: a column only an earlier run had)."""
    values = list(_values_of(result))
    if extras:
        extra = result.extra
        values.extend(None if c is None else plain(extra.get(c)) for c in extras)
    return values


def result_record(result: Result, passthrough: Iterable[str]) -> Record:
    """One report row as plain Python values (tags and rows as dicts and lists)."""
    passthrough = list(passthrough)
    values = result_values(result, passthrough)
    return dict(zip(report_columns(passthrough), values, strict=True))


def record_key(record: Record) -> Key:
    """(project_id, region_id, snapshot_id) of a record; raises on a damaged one."""
    return (int(record["project_id"]), int(record["region_id"]), str(record["snapshot_id"]))


def union_columns(*column_lists: Iterable[str]) -> list[str]:
    """The fixed columns first, then every other column in order of first appearance (an
    older report without some fixed columns gets them, empty)."""
    merged: dict[str, None] = dict.fromkeys(BASE_COLUMNS)
    for columns in column_lists:
        merged.update(dict.fromkeys(columns))
    return list(merged)
