"""The inverse manifest of a run: `batchtag undo REPORT` and `apply --undo-file FILE`.

For every `ok` report row, the json-form manifest row that takes the snapshot back: each
user tag the run changed or removed gets its old value, each tag it added gets ``null``,
and the name its old name when it changed. Read-only tags never appear (the API never
wrote them and would ignore them).

Drift: a snapshot whose current user tags or name no longer equal what the run left
(`tags_after`, `name_after`) was changed by someone else since; undoing it would overwrite
that change, so it is a `conflict` and left out unless ``force``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from batchtag.errors import UsageError, option
from batchtag.gcore import read_only_keys, tags_dict
from batchtag.model import CONFLICT, NOT_FOUND, OK, PLANNED, Result, json_text
from batchtag.record._columns import frame_of

UNDO_COLUMNS = ["project_id", "region_id", "snapshot_id", "tags", "name"]
SKIPPED_COLUMNS = ["project_id", "region_id", "snapshot_id", "status", "error"]

Key = tuple[int, int, str]


@dataclass
class Undo:
    """What `undo_manifest` returns."""

    manifest: pd.DataFrame  # UNDO_COLUMNS: the json-form inverse manifest
    skipped: pd.DataFrame  # SKIPPED_COLUMNS: status `conflict` (drift) or `not_found`


def inverse_row(
    key: Key,
    before: Mapping[str, str],
    after: Mapping[str, str],
    name_before: str | None = None,
    name_after: str | None = None,
    read_only: frozenset[str] | set[str] = frozenset(),
) -> dict[str, Any] | None:
    """The json-form manifest row that takes `after` back to `before`; None if equal.

    Examples
    --------
    >>> inverse_row((1, 1, "id"), {"env": "dev", "a": "1"}, {"env": "prod", "b": "2"})
    {'project_id': 1, 'region_id': 1, 'snapshot_id': 'id', \
'tags': {'a': '1', 'b': None, 'env': 'dev'}, 'name': None}
    """
    keys = sorted((before.keys() | after.keys()) - set(read_only))
    patch = {k: before.get(k) for k in keys if before.get(k) != after.get(k)}
    name = name_before if name_before is not None and name_before != name_after else None
    if not patch and name is None:
        return None
    project_id, region_id, snapshot_id = key
    return dict(zip(UNDO_COLUMNS, (project_id, region_id, snapshot_id, patch, name), strict=True))


def _missing(value: Any) -> bool:
    """None, NA or NaN: a cell with no value."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _cell(value: Any) -> Any:
    """A report cell as a Python value: JSON text parsed, NA to None."""
    if isinstance(value, str) and value[:1] in "{[":
        return json.loads(value)
    return None if _missing(value) else value


def _no_before_state(report_name: str, snapshot_id: str) -> UsageError:
    return UsageError(
        f"{report_name}: no before-state for snapshot {snapshot_id} (tags_before is empty): "
        "the run wrote without reading the snapshots first, so it cannot be undone; "
        f"undo needs a run with {option('check_current', True)}"
    )


def _ok_records(report: pd.DataFrame, report_name: str) -> list[dict[str, Any]]:
    """The `ok` rows as dicts with parsed cells; refuses a report without before-state,
    one without what the run left (`tags_after`), a cell of tags that is not an object of
    tags, and a dry run's report (it changed nothing)."""
    if "status" not in report.columns:
        raise UsageError(f"{report_name}: not a batchtag report (no status column)")
    done = (report["status"] == OK).to_numpy()
    if not done.any() and (report["status"] == PLANNED).any():
        raise UsageError(
            f"{report_name}: the report of a dry run (its rows are {PLANNED!r}): a dry run "
            "changed nothing, so there is nothing to undo"
        )
    ok = report[done]
    if len(ok) and "tags_before" not in ok.columns:
        raise _no_before_state(report_name, str(ok["snapshot_id"].iloc[0]))
    if len(ok) and "tags_after" not in ok.columns:
        raise UsageError(
            f"{report_name}: no tags_after column: undo needs the tags each snapshot was left "
            "with (to revert only what the run changed); pass the whole report"
        )
    wanted = ("tags_before", "tags_after", "name_before", "name_after", "ro_tags")
    records = []
    rows = np.flatnonzero(done) + 1
    for row, raw in zip(rows.tolist(), ok.to_dict("records"), strict=True):
        record = {c: _cell(raw.get(c)) for c in wanted}
        if record["tags_before"] is None:
            raise _no_before_state(report_name, str(raw["snapshot_id"]))
        if record["tags_after"] is None:
            raise UsageError(
                f"{report_name}: row {row} (snapshot {raw['snapshot_id']}): tags_after is "
                "empty (or the column is missing): undo needs the tags the run left"
            )
        for column in ("tags_before", "tags_after", "ro_tags"):
            _check_tags_cell(record[column], column, row, raw, report_name)
        record["key"] = (int(raw["project_id"]), int(raw["region_id"]), str(raw["snapshot_id"]))
        records.append(record)
    return records


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


def drift(record: Mapping[str, Any], snapshot: Mapping[str, Any]) -> str | None:
    """Why `snapshot` (its current JSON) no longer matches what the run left, or None."""
    ro = read_only_keys(dict(snapshot))
    now = tags_dict(dict(snapshot), user_only=True)
    left = {k: v for k, v in record["tags_after"].items() if k not in ro}
    reasons = []
    if now != left:
        keys = sorted(k for k in now.keys() | left.keys() if now.get(k) != left.get(k))
        shown = ", ".join(f"{k}: {left.get(k)!r} → {now.get(k)!r}" for k in keys[:5])
        reasons.append(f"tags changed since the run ({shown}{', …' if len(keys) > 5 else ''})")
    name_after = record.get("name_after")
    if name_after is not None and snapshot.get("name") != name_after:
        reasons.append(f"name changed since the run ({name_after!r} → {snapshot.get('name')!r})")
    return "; ".join(reasons) or None


def undo_manifest(
    report: pd.DataFrame,
    current: Mapping[Key, Mapping[str, Any] | None] | None = None,
    *,
    force: bool = False,
    report_name: str = "report",
) -> Undo:
    """The inverse manifest of a run's report.

    Parameters
    ----------
    report : pandas.DataFrame
        The report as `read_report` returns it (tags_before / tags_after dicts or JSON
        text, optional name_before / name_after / ro_tags, status).
    current : Mapping, optional
        (project_id, region_id, snapshot_id) → current snapshot JSON (None: not found)
        for the drift check; None skips the check. A key missing from the mapping is
        treated as not found.
    force : bool
        Undo drifted snapshots too (overwriting the later change).
    report_name : str
        How messages name the report (its path).

    Returns
    -------
    Undo
        ``manifest``: one json-form row per `ok` snapshot to revert (columns
        UNDO_COLUMNS, ``tags`` a merge-patch dict, ``name`` the old name or None);
        ``skipped``: the snapshots left out, status ``conflict`` or ``not_found``.

    Raises
    ------
    UsageError
        The report has no before-state for an `ok` row (the run did not read).
    """
    rows, skipped = [], []
    for record in _ok_records(report, report_name):
        row, left_out = _undo_one(record, current, force)
        if row is not None:
            rows.append(row)
        if left_out is not None:
            skipped.append(left_out)
    return Undo(frame_of(rows, UNDO_COLUMNS), _skipped_frame(skipped))


def _undo_one(
    record: Mapping[str, Any],
    current: Mapping[Key, Mapping[str, Any] | None] | None,
    force: bool,
) -> tuple[dict[str, Any] | None, tuple | None]:
    """(the inverse row or None, the skipped row or None) for one `ok` report record."""
    key = record["key"]
    read_only = set(record.get("ro_tags") or ())
    if current is not None:
        snapshot = current.get(key)
        if snapshot is None:
            return None, (*key, NOT_FOUND, "the snapshot no longer exists")
        read_only |= read_only_keys(dict(snapshot))
        reason = drift(record, snapshot)
        if reason and not force:
            return None, (*key, CONFLICT, f"{reason}; left alone ({option('force')})")
    row = inverse_row(
        key,
        record["tags_before"],
        record["tags_after"],
        record.get("name_before"),
        record.get("name_after"),
        read_only,
    )
    return row, None


def undo_line(row: Mapping[str, Any]) -> str:
    """One undo-file line: the row as strict JSON, missing values (None, NaN) left out.

    Examples
    --------
    >>> undo_line({"snapshot_id": "id", "tags": {"a": None}, "name": float("nan")})
    '{"snapshot_id":"id","tags":{"a":null}}'
    """
    return json_text({k: v for k, v in row.items() if not _missing(v)})


def _skipped_frame(rows: list[tuple]) -> pd.DataFrame:
    return frame_of((dict(zip(SKIPPED_COLUMNS, row, strict=True)) for row in rows), SKIPPED_COLUMNS)


class UndoWriter:
    """Writes the inverse manifest as JSON Lines while a run goes (`apply --undo-file`).

    Crash-safe like the report: each line is handed to the OS before `write` returns (a
    `kill -9` loses nothing written), and `close` fsyncs. The file is a json-form manifest
    that `apply` reads as it is, even after a crash.

    Parameters
    ----------
    path : str or PathLike
        The undo file (``.jsonl``).
    append : bool
        Keep what the file holds (a resumed run); else start it empty.
    """

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False):
        self.path = Path(path)
        if self.path.suffix.lower() not in (".jsonl", ".ndjson"):
            raise UsageError(
                f"{option('undo_file', str(path))}: the undo file is JSON Lines, name it *.jsonl"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a" if append else "w", encoding="utf-8")
        self.written = 0

    def write(self, result: Result) -> bool:
        """Record the inverse of one result; True when it needed one (an `ok` write that
        changed something and whose before-state is known)."""
        if result.status != OK or result.tags_before is None or result.tags_after is None:
            return False
        row = inverse_row(
            result.key,
            result.tags_before,
            result.tags_after,
            result.name_before,
            result.name_after,
            set(result.ro_tags or ()),
        )
        if row is None:
            return False
        self.write_record(row)
        return True

    def write_record(self, row: Mapping[str, Any]) -> None:
        """Write one manifest row (a dict with UNDO_COLUMNS), flushed."""
        if self._fh is None:
            raise ValueError(f"undo file {self.path} is closed")
        self._fh.write(undo_line(row) + "\n")
        self._fh.flush()
        self.written += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def __enter__(self) -> UndoWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
