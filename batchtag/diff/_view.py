"""Printing a plan: the summary and the first changes as a compact, optionally coloured diff.

    Plan: 2 to change, 1 locked, 5 no-op, 1 not found (9 snapshots, 3 writes)
    ~ 1/1/8e1c…  rows 1, 2
        + cost-center=cc-7
        - tmp (was yes)
        ~ env: Prod → prod
        ~ name: db-1 → db-01
        ! created-by: read-only, not written (wanted gcore)
    ! 1/1/0c2d…  conflict, left alone
        ! env: 'test' now, 'dev' expected

`plan_exit_code` gives the ``--detailed-exitcode`` value, as ``terraform plan`` does:
0 nothing to change, 2 changes present, 1 errors (snapshots not found, writes to
read-only tags, conflicts), errors winning over changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import IO, Any, Union

import click
import pandas as pd

from batchtag.defaults import default
from batchtag.diff._entry import CHANGE, LOCKED, NOOP, NOT_FOUND
from batchtag.diff._store import Diff
from batchtag.model import CONFLICT
from batchtag.record import (
    ADD,
    CONFLICT_NOTE,
    EXIT_FAILED,
    EXIT_OK,
    MODIFY,
    NAME,
    READ_ONLY,
    REMOVE,
)

Rows = Union[Diff, "pd.DataFrame"]  # a diff, columnar or as the Python API's frame

EXIT_CHANGES = 2  # --detailed-exitcode: the plan would change something
DEFAULT_SHOWN = default("limit")  # snapshots shown in the printed diff
KEYS_SHOWN = 15  # keys listed in the per-key summary

VERDICT_WORDS = {
    CHANGE: "to change",
    LOCKED: "locked",
    NOOP: "no-op",
    NOT_FOUND: "not found",
    CONFLICT: "conflict",
}
COLOURS = {
    ADD: "green",
    REMOVE: "red",
    MODIFY: "yellow",
    READ_ONLY: "magenta",
    CONFLICT_NOTE: "red",
}
MARKS = {ADD: "+", REMOVE: "-", MODIFY: "~", READ_ONLY: "!", CONFLICT_NOTE: "!"}


def plan_exit_code(summary: Mapping[str, Any], *, detailed: bool = True) -> int:
    """The exit code of `plan` for this summary (`PlanSummary.as_dict()`).

    Parameters
    ----------
    summary : Mapping
        The plan summary.
    detailed : bool
        ``--detailed-exitcode``: 2 when something would change. Without it a plan
        exits 0 unless there are errors.

    Returns
    -------
    int
        1 when some snapshot is not found or a conflict, the manifest writes read-only
        tags or a scope listed to find the snapshots in could not be read, else 2 (detailed
        only) when there are writes to send, else 0.

    Examples
    --------
    >>> plan_exit_code({"verdicts": {"change": 3, "not_found": 0}, "read_only": 0})
    2
    """
    verdicts = summary["verdicts"]
    if verdicts.get(NOT_FOUND, 0) or verdicts.get(CONFLICT, 0) or summary.get("read_only", 0):
        return EXIT_FAILED
    if summary.get("failed_scopes"):
        return EXIT_FAILED
    if detailed and (summary["verdicts"].get(CHANGE, 0) or summary["verdicts"].get(LOCKED, 0)):
        return EXIT_CHANGES
    return EXIT_OK


def format_summary(summary: Mapping[str, Any], *, color: bool = False) -> str:
    """The summary lines: counts per verdict, names, read-only problems, then per key.

    Examples
    --------
    >>> s = {"snapshots": 2, "writes": 1, "names": 0, "read_only": 0,
    ...      "verdicts": {"change": 1, "noop": 1, "not_found": 0, "locked": 0},
    ...      "keys": {"env": {"add": 1, "remove": 0, "change": 0}}}
    >>> print(format_summary(s))
    Plan: 1 to change, 1 no-op (2 snapshots, 1 write)
      env  +1
    """
    counts = summary["verdicts"]
    parts = [f"{counts[v]} {word}" for v, word in VERDICT_WORDS.items() if counts.get(v)]
    counted = f"{_count(summary['snapshots'], 'snapshot')}, {_count(summary['writes'], 'write')}"
    head = f"Plan: {', '.join(parts) or 'nothing'} ({counted})"
    lines = [_style(head, bold=True, color=color)]
    for scope in summary.get("failed_scopes") or ():
        text = f"  scope {scope['project_id']}/{scope['region_id']} could not be read: "
        lines.append(_style(text + scope["error"], fg="red", color=color))
    if summary.get("names"):
        lines.append(f"  {_count(summary['names'], 'snapshot')} renamed")
    if summary.get("read_only"):
        text = f"  {_count(summary['read_only'], 'write')} to read-only tags (the API ignores them)"
        lines.append(_style(text, fg=COLOURS[READ_ONLY], color=color))
    if summary["verdicts"].get(CONFLICT):
        text = (
            f"  {_count(summary['verdicts'][CONFLICT], 'snapshot')} left alone: a conflict"
            " (a key changed since the change was written, or a rename would replace a value)"
        )
        lines.append(_style(text, fg=COLOURS[CONFLICT_NOTE], color=color))
    for note in summary.get("notes") or ():
        lines.append(f"  note: {note}")
    keys = dict(sorted((summary.get("keys") or {}).items(), key=_most_touched))
    width = max((len(k) for k in list(keys)[:KEYS_SHOWN]), default=0)
    for key, by_change in list(keys.items())[:KEYS_SHOWN]:
        cells = [
            _style(f"{MARKS[c]}{by_change[c]}", fg=COLOURS[c], color=color)
            for c in (ADD, REMOVE, MODIFY)
            if by_change.get(c)
        ]
        lines.append(f"  {key:<{width}}  {' '.join(cells)}")
    if len(keys) > KEYS_SHOWN:
        lines.append(f"  ... and {len(keys) - KEYS_SHOWN} more keys")
    return "\n".join(lines)


def format_changes(frame: Rows, *, limit: int = DEFAULT_SHOWN, color: bool = False) -> str:
    """The first `limit` snapshots of a diff (a `Diff` or a `diff_frame` DataFrame) as a
    compact diff; only those snapshots' rows are made into records."""
    blocks = []
    groups = _snapshot_groups(frame)
    for shown, rows in enumerate(groups):
        if shown == limit:
            blocks.append(f"... and {_snapshots(frame) - limit} more snapshots")
            break
        blocks.append(_format_snapshot(rows, color))
    return "\n".join(blocks)


def first_changes(frame: Rows, limit: int = DEFAULT_SHOWN) -> list[dict[str, Any]]:
    """The rows of the first `limit` snapshots of a diff, as records (what the printed plan
    shows, for the ``plan`` JSON event)."""
    out: list[dict[str, Any]] = []
    for shown, rows in enumerate(_snapshot_groups(frame)):
        if shown == limit:
            break
        out += rows
    return out


GROUP_COLUMNS = ["project_id", "region_id", "snapshot_id", "verdict", "field", "key"]
GROUP_COLUMNS += ["change", "old", "new", "rows"]


def _records(frame: Rows, batch: int) -> Iterator[dict[str, Any]]:
    if hasattr(frame, "records"):
        return frame.records(GROUP_COLUMNS, batch=batch)
    cells = frame[GROUP_COLUMNS]
    cells = cells.astype(object).where(cells.notna(), None)  # string-dtype NaN: None
    return (row._asdict() for row in cells.itertuples(index=False))


def _snapshots(frame: Rows) -> int:
    """How many snapshots (runs of rows with one snapshot_id) the diff shows."""
    if hasattr(frame, "runs"):
        return frame.runs("snapshot_id")
    ids = frame["snapshot_id"]
    return int((ids != ids.shift()).sum())


def _snapshot_groups(frame: Rows) -> Iterator[list[dict[str, Any]]]:
    """Consecutive rows of one snapshot, as lists of records."""
    group: list[dict[str, Any]] = []
    for record in _records(frame, 1024):
        if group and record["snapshot_id"] != group[0]["snapshot_id"]:
            yield group
            group = []
        group.append(record)
    if group:
        yield group


def _format_snapshot(rows: list[dict[str, Any]], color: bool) -> str:
    first = rows[0]
    verdict = first["verdict"]
    where = f"{first['project_id']}/{first['region_id']}/{first['snapshot_id']}"
    rows_text = ", ".join(str(r) for r in first["rows"] or [])
    head = f"~ {where}" + (f"  rows {rows_text}" if rows_text else "")
    if verdict == NOT_FOUND:
        return _style(f"! {where}: not found", fg="red", bold=True, color=color)
    if verdict == CONFLICT:
        head = _style(f"! {where}  conflict, left alone", fg="red", bold=True, color=color)
        lines = [f"    {_format_line(r, color)}" for r in rows if r["change"] is not None]
        return "\n".join([head, *lines])
    if verdict == LOCKED:
        head += "  (locked by a task now: the write would wait and retry)"
    lines = [_style(head, bold=True, color=color)]
    lines += [f"    {_format_line(r, color)}" for r in rows if r["change"] is not None]
    return "\n".join(lines)


def _format_line(row: Mapping[str, Any], color: bool) -> str:
    change, key = row["change"], row["key"]
    if row["field"] == NAME:
        key = "name"
    if change == ADD:
        text = f"+ {key}={row['new']}"
    elif change == REMOVE:
        text = f"- {key} (was {row['old']})"
    elif change == MODIFY:
        text = f"~ {key}: {row['old']} → {row['new']}"
    elif change == CONFLICT_NOTE:
        text = f"! {key}: {_value(row['old'])} now, {_value(row['new'])} expected"
    else:
        wanted = "removal" if row["new"] is None else row["new"]
        text = f"! {key}: read-only, not written (wanted {wanted})"
    return _style(text, fg=COLOURS[change], color=color)


def _value(value: Any) -> str:
    """A value of a conflict line: quoted, or ``absent`` (a missing cell)."""
    return "absent" if value is None else repr(value)


def _most_touched(item: tuple[str, Mapping[str, int]]) -> tuple[int, str]:
    """Sort keys by how many snapshots they change in, most first, then by name."""
    key, by_change = item
    return (-sum(by_change.values()), key)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _style(text: str, *, color: bool, **styles: Any) -> str:
    return click.style(text, **styles) if color else text


def _summary(frame: Rows) -> Mapping[str, Any]:
    own = getattr(frame, "summary", None)
    return own if isinstance(own, Mapping) else frame.attrs["summary"]


def render_plan(
    frame: Rows,
    summary: Mapping[str, Any] | None = None,
    *,
    limit: int = DEFAULT_SHOWN,
    color: bool = False,
) -> str:
    """The printed plan: the summary, a blank line, the first `limit` snapshots' changes.

    Parameters
    ----------
    frame : Diff or pandas.DataFrame
        A diff from the collector (`DiffCollector.finish`) or `batchtag.diff._diff.diff_frame`.
    summary : Mapping, optional
        Its summary; defaults to ``frame.attrs["summary"]``.
    limit : int
        How many snapshots to show in full.
    color : bool
        ANSI colours (only for a terminal; see `print_plan`).

    Returns
    -------
    str
        The text, without a trailing newline.
    """
    summary = _summary(frame) if summary is None else summary
    text = format_summary(summary, color=color)
    changes = format_changes(frame, limit=limit, color=color) if limit > 0 else ""
    return f"{text}\n\n{changes}" if changes else text


def print_plan(
    frame: Rows,
    summary: Mapping[str, Any] | None = None,
    *,
    limit: int = DEFAULT_SHOWN,
    file: IO[str] | None = None,
    color: bool | None = None,
) -> None:
    """Print `render_plan` to `file` (stdout); `color=None` colours only on a terminal."""
    text = render_plan(frame, summary, limit=limit, color=True)
    click.echo(text, file=file, color=color)  # click strips the styles when not a terminal
