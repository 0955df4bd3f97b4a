"""The way back from a run: `batchtag undo REPORT`, key by key.

For every `ok` report row, the change rows that take the snapshot back
(`batchtag.record._changes.inverse_changes`): per user tag key the run changed, old = what
the run left, new = what it held before; the name likewise. Read-only tags never appear.

Only the keys the run changed are compared with what the run left (three-way, key by key):

- a key that still holds what the run left is reverted;
- a key that holds its old value again needs nothing;
- a key someone changed since makes the snapshot a `conflict`, left alone (and listed)
  unless ``force``, which reverts it from the value it holds now;
- a later change to any other key is kept, and is no conflict.

A row whose before-state was not read (a run with ``--no-check-current`` writes blind)
cannot be undone: it is listed as ``skipped`` with why, and the rest is still reverted.
The result is a change file: `apply` checks every ``old`` again when it applies it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from batchtag.errors import UsageError, option
from batchtag.model import CONFLICT, NOT_FOUND, OK, PLANNED, SKIPPED, Snapshot, as_snapshot
from batchtag.record._changes import CHANGE_COLUMNS, NAME, change_kind, inverse_changes
from batchtag.record._columns import frame_of
from batchtag.record._summary import BLIND_META

SKIPPED_COLUMNS = ["project_id", "region_id", "snapshot_id", "status", "error"]

Key = tuple[int, int, str]


@dataclass
class Undo:
    """What `undo_changes` returns."""

    changes: pd.DataFrame  # the change rows that revert the run (CHANGE_SCHEMA)
    skipped: pd.DataFrame  # SKIPPED_COLUMNS: conflict, not_found, or skipped (why)


@dataclass
class Revert:
    """One `ok` report row's way back: its change rows (empty: the run changed nothing)."""

    key: Key
    rows: list[dict[str, Any]]


def cannot_undo(meta: Mapping[str, Any] | None) -> str:
    """Why a row without before-state cannot be undone (from the report's metadata)."""
    if meta and meta.get("before_state") == BLIND_META:
        how = f"the run wrote blind ({option('check_current', False)})"
    else:
        how = "the run did not read the snapshot before writing it"
    return f"cannot be undone: {how}, so its before-state is unknown"


def _missing(value: Any) -> bool:
    """None, NA or NaN: a cell with no value."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _cell(value: Any) -> Any:
    """A report cell as a Python value: JSON text parsed, NA to None."""
    if isinstance(value, str) and value[:1] in "{[":
        return json.loads(value)
    if isinstance(value, list | dict):
        return value
    if hasattr(value, "tolist"):  # a Parquet list read by pandas
        return value.tolist()
    return None if _missing(value) else value


def reverts(
    report: pd.DataFrame, report_name: str = "report", meta: Mapping[str, Any] | None = None
) -> tuple[list[Revert], list[tuple]]:
    """Every `ok` row's change rows back, and the rows that cannot be undone (skipped rows:
    no before-state).

    Raises
    ------
    UsageError
        `report` is not a batchtag report, is a dry run's (it changed nothing), lacks what
        the run left (`tags_after`), or holds a tags cell that is not an object of tags.
    """
    if "status" not in report.columns:
        raise UsageError(f"{report_name}: not a batchtag report (no status column)")
    done = (report["status"] == OK).to_numpy()
    if not done.any() and (report["status"] == PLANNED).any():
        raise UsageError(
            f"{report_name}: the report of a dry run (its rows are {PLANNED!r}): a dry run "
            "changed nothing, so there is nothing to undo"
        )
    ok = report[done]
    if len(ok) and "tags_after" not in ok.columns:
        raise UsageError(
            f"{report_name}: no tags_after column: undo needs the tags each snapshot was left "
            "with (to revert only what the run changed); pass the whole report"
        )
    wanted = ("tags_before", "tags_after", "name_before", "name_after", "ro_tags", "rows")
    out, skipped = [], []
    reason = cannot_undo(meta)
    for row, raw in zip((np.flatnonzero(done) + 1).tolist(), ok.to_dict("records"), strict=True):
        record = {c: _cell(raw.get(c)) for c in wanted}
        key = (int(raw["project_id"]), int(raw["region_id"]), str(raw["snapshot_id"]))
        if record["tags_after"] is None:
            raise UsageError(
                f"{report_name}: row {row} (snapshot {raw['snapshot_id']}): tags_after is "
                "empty (or the column is missing): undo needs the tags the run left"
            )
        for column in ("tags_before", "tags_after", "ro_tags"):
            _check_tags_cell(record[column], column, row, raw, report_name)
        if record["tags_before"] is None:
            skipped.append((*key, SKIPPED, reason))
            continue
        rows = inverse_changes(
            key,
            record["tags_before"],
            record["tags_after"],
            record["name_before"],
            record["name_after"],
            record["ro_tags"] or (),
            record["rows"],
        )
        out.append(Revert(key, rows))
    return out, skipped


def _check_tags_cell(
    value: Any, column: str, row: int, raw: Mapping[str, Any], report_name: str
) -> None:
    """A tags cell must be an object of text keys and values (None: no cell)."""
    where = f"{report_name}: row {row} (snapshot {raw['snapshot_id']}): {column}"
    if value is None:
        return
    if not isinstance(value, dict):
        raise UsageError(
            f'{where} holds a JSON {_json_kind(value)}, not the tags as an object {{"key": "value"}}'
        )
    for key, text in value.items():
        if not isinstance(text, str):
            raise UsageError(f"{where}: tag {key!r} has the value {text!r}, not text")


def _json_kind(value: Any) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)


def undo_changes(
    report: pd.DataFrame,
    current: Mapping[Key, Snapshot | Mapping[str, Any] | None] | None = None,
    *,
    force: bool = False,
    report_name: str = "report",
    meta: Mapping[str, Any] | None = None,
) -> Undo:
    """The change rows that revert a run, checked key by key against the current state.

    Parameters
    ----------
    report : pandas.DataFrame
        The report as `read_report` returns it (tags_before / tags_after dicts or JSON
        text, optional name_before / name_after / ro_tags / rows, status).
    current : Mapping, optional
        (project_id, region_id, snapshot_id) -> its current `batchtag.model.Snapshot` or the
        API's JSON object (None or missing: not found); None skips the check (every row is kept as the run left it).
    force : bool
        Revert conflicting keys too, from the value they hold now (overwriting the later
        change).
    report_name : str
        How messages name the report (its path).
    meta : Mapping, optional
        The report's metadata (says whether the run wrote blind).

    Returns
    -------
    Undo
        ``changes``: the change rows (old = what the key holds now, new = its value before
        the run); ``skipped``: the snapshots left out, with why.

    Examples
    --------
    >>> report = pd.DataFrame([{"project_id": 1, "region_id": 1, "snapshot_id": "s",
    ...     "status": "ok", "tags_before": {"env": "dev"}, "tags_after": {"env": "prod"}}])
    >>> undo_changes(report).changes[["key", "old", "new"]].values.tolist()
    [['env', 'prod', 'dev']]
    """
    found, skipped = reverts(report, report_name, meta)
    rows: list[dict[str, Any]] = []
    for revert in found:
        kept, left_out = _check(revert, current, force)
        rows += kept
        if left_out is not None:
            skipped.append(left_out)
    return Undo(frame_of(rows, CHANGE_COLUMNS), skipped_frame(skipped))


def _check(
    revert: Revert, current: Mapping[Key, Snapshot | Mapping[str, Any] | None] | None, force: bool
) -> tuple[list[dict[str, Any]], tuple | None]:
    """(the rows to keep, the skipped row or None) for one snapshot."""
    if current is None or not revert.rows:
        return revert.rows, None
    snapshot = as_snapshot(current.get(revert.key))
    if snapshot is None:
        return [], (*revert.key, NOT_FOUND, "the snapshot no longer exists")
    now = snapshot.user_tags
    read_only = snapshot.read_only
    kept, changed = [], []
    for row in revert.rows:
        if row["field"] == NAME:
            value = snapshot.name
        elif row["key"] in read_only:
            continue  # read-only now: the API keeps it, there is nothing to revert
        else:
            value = now.get(row["key"])
        if value == row["old"]:
            kept.append(row)
        elif value != row["new"]:  # (already back: nothing to do)
            changed.append((row, value))
    if changed and not force:
        shown = ", ".join(
            f"{'name' if r['field'] == NAME else r['key']}: {r['old']!r} → {v!r}"
            for r, v in changed[:5]
        )
        more = ", …" if len(changed) > 5 else ""
        reason = f"changed since the run ({shown}{more}); left alone ({option('force', True)} reverts it)"
        return [], (*revert.key, CONFLICT, reason)
    for row, value in changed:  # forced: revert from what it holds now
        kept.append({**row, "old": value, "change": change_kind(value, row["new"])})
    return kept, None


def skipped_frame(rows: list[tuple]) -> pd.DataFrame:
    """The snapshots an undo leaves out (`SKIPPED_COLUMNS`, typed by the dtype contract)."""
    return frame_of((dict(zip(SKIPPED_COLUMNS, row, strict=True)) for row in rows), SKIPPED_COLUMNS)
