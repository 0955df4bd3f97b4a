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

Memory: nothing is held per snapshot but a few bytes (`Inversion`). A report file is read
once (`ReportRows`): each row's key and status kept in 21 bytes (`batchtag.record.KeyColumns`,
which also finds a snapshot's latest row, as `read_report` does), the cells an undo needs of
each `ok` row in an unlinked temporary file (`batchtag.memory.Spill`). Those rows are then
checked and turned into change rows a chunk of `ROWS_AT_ONCE` at a time (`Inversion.scan`);
the change rows wait in a second temporary file, and the snapshots whose current state is
needed are kept as keys, 16 bytes and a scope number each (`batchtag.model.PlanIndex`, for
the read). Once that state is read, the change rows are checked against it a chunk at a
time (`Inversion.changes`). The skipped snapshots are counted; only the first few are kept
unless all are asked for (`Skipped`).
"""

from __future__ import annotations

import json
import marshal
import math
import os
import sys
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from batchtag.errors import UsageError, option
from batchtag.memory import Spill
from batchtag.model import (
    CONFLICT,
    NOT_FOUND,
    OK,
    PLANNED,
    SKIPPED,
    PlanIndex,
    Snapshot,
    as_snapshot,
    keys_of,
    uuid_text,
)
from batchtag.record._changes import CHANGE_COLUMNS, NAME, change_kind, inverse_changes
from batchtag.record._columns import frame_of
from batchtag.record._report_keys import KeyColumns
from batchtag.record._schema import record_key
from batchtag.record._store import report_exists, scan_records
from batchtag.record._summary import BLIND_META

if TYPE_CHECKING:
    import pandas as pd

SKIPPED_COLUMNS = ["project_id", "region_id", "snapshot_id", "status", "error"]
# the cells of an `ok` row an undo reads (besides its key)
WANTED = ("tags_before", "tags_after", "name_before", "name_after", "ro_tags", "rows")
ROWS_AT_ONCE = 1 << 12  # `ok` rows turned into change rows at once

Key = tuple[int, int, str]
Current = Callable[[int, Key], Any]  # (position among the reverts with rows, key) -> state


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
    """None, NA or NaN: a cell with no value (NA only where pandas is in: a report file read
    for `batchtag undo` has none, and needs no pandas)."""
    pd = sys.modules.get("pandas")
    return (
        value is None
        or (pd is not None and value is pd.NA)
        or (isinstance(value, float) and math.isnan(value))
    )


def _cell(value: Any) -> Any:
    """A report cell as a Python value: JSON text parsed, NA to None."""
    if value is None or type(value) is dict or type(value) is list:
        return value  # (most cells: a report file's, decoded by the reader)
    if isinstance(value, str) and value[:1] in "{[":
        return json.loads(value)
    if isinstance(value, list | dict):
        return value
    if hasattr(value, "tolist"):  # a Parquet list read by pandas
        return value.tolist()
    return None if _missing(value) else value


# ---------------------------------------------------------------- the ok rows of a report


class OkRows(Protocol):
    """The `ok` rows of a report (the latest row of each snapshot), in report order."""

    def chunks(self) -> Iterator[tuple[list[int], list[Mapping[str, Any]]]]:
        """Up to `ROWS_AT_ONCE` rows at a time: their numbers (from 1, among every row of
        `read_report`'s frame) and their cells (the key columns and `WANTED`); every call
        goes through them all again."""
        ...


class FrameRows:
    """The `ok` rows of a report frame (`read_report`'s, or a caller's).

    Raises
    ------
    UsageError
        `frame` is not a batchtag report, is a dry run's, or lacks ``tags_after``.
    """

    def __init__(self, frame: pd.DataFrame, report_name: str = "report"):
        if "status" not in frame.columns:
            raise UsageError(f"{report_name}: not a batchtag report (no status column)")
        done = (frame["status"] == OK).to_numpy()
        _refuse_dry_run(bool(done.any()), bool((frame["status"] == PLANNED).any()), report_name)
        self._ok = frame[done]
        if len(self._ok) and "tags_after" not in self._ok.columns:
            raise UsageError(
                f"{report_name}: no tags_after column: undo needs the tags each snapshot was "
                "left with (to revert only what the run changed); pass the whole report"
            )
        self._numbers = np.flatnonzero(done) + 1

    def chunks(self) -> Iterator[tuple[list[int], list[Mapping[str, Any]]]]:
        for start in range(0, len(self._ok), ROWS_AT_ONCE):
            part = self._ok.iloc[start : start + ROWS_AT_ONCE]
            yield self._numbers[start : start + ROWS_AT_ONCE].tolist(), part.to_dict("records")

    def close(self) -> None:
        pass

    def __enter__(self) -> FrameRows:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ReportRows:
    """The `ok` rows of a report file, read once (see the module docstring): the latest row
    of each snapshot, at the place of its first, as `read_report` gives them.

    Raises
    ------
    UsageError
        No report at `path`, a row that cannot be read (named by its line), or the report
        of a dry run.
    """

    def __init__(self, path: str | os.PathLike[str], report_name: str = "report"):
        if not report_exists(path):
            raise UsageError(f"no report at {path}")
        self._spill = Spill("the report's rows")
        try:
            log = KeyColumns()
            offsets = array("q")  # per report row: where its cells are in the spill (-1: none)
            for record in scan_records(path):
                key, status = record_key(record), record.get("status")
                log.add(key, status)
                if status == OK:
                    cells = marshal.dumps((key, [record.get(c) for c in WANTED]))
                    offsets.append(self._spill.append(cells))
                else:
                    offsets.append(-1)
            self._spill.flush()
            _, last = log.positions()  # row n of the frame is the report's row last[n - 1]
            ok = log.status_in(last, {OK})
            _refuse_dry_run(bool(ok.any()), bool(log.status_in(last, {PLANNED}).any()), report_name)
            self._numbers = np.flatnonzero(ok) + 1
            self._offsets = np.frombuffer(offsets, dtype=np.int64)[last[ok]]
        except BaseException:
            self.close()
            raise

    def chunks(self) -> Iterator[tuple[list[int], list[Mapping[str, Any]]]]:
        for start in range(0, len(self._numbers), ROWS_AT_ONCE):
            records = []
            for offset in self._offsets[start : start + ROWS_AT_ONCE].tolist():
                key, cells = marshal.loads(self._spill.read(offset))
                record = dict(zip(WANTED, cells, strict=True))
                record["project_id"], record["region_id"], record["snapshot_id"] = key
                records.append(record)
            yield self._numbers[start : start + ROWS_AT_ONCE].tolist(), records

    def close(self) -> None:
        """Drop the kept cells (the temporary file is deleted)."""
        self._spill.close()

    def __enter__(self) -> ReportRows:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def ok_rows(report: Any, report_name: str = "report") -> FrameRows | ReportRows:
    """The `ok` rows of a report: a frame as it is, a path read once (`ReportRows`)."""
    if isinstance(report, str | os.PathLike):
        return ReportRows(report, report_name)
    return FrameRows(report, report_name)


def _refuse_dry_run(any_ok: bool, any_planned: bool, report_name: str) -> None:
    if not any_ok and any_planned:
        raise UsageError(
            f"{report_name}: the report of a dry run (its rows are {PLANNED!r}): a dry run "
            "changed nothing, so there is nothing to undo"
        )


# ---------------------------------------------------------------- the change rows back


def revert_chunks(
    rows: OkRows, report_name: str = "report", meta: Mapping[str, Any] | None = None
) -> Iterator[tuple[list[Revert], list[tuple]]]:
    """Each chunk of `ok` rows as their ways back and the rows that cannot be undone
    (skipped rows: no before-state).

    Raises
    ------
    UsageError
        A row lacks what the run left (`tags_after`), or holds a tags cell that is not an
        object of tags (the first such row, named by its number).
    """
    reason = cannot_undo(meta)
    for numbers, raws in rows.chunks():
        out, skipped = [], []
        for row, raw in zip(numbers, raws, strict=True):
            record = {c: _cell(raw.get(c)) for c in WANTED}
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
            changes = inverse_changes(
                key,
                record["tags_before"],
                record["tags_after"],
                record["name_before"],
                record["name_after"],
                record["ro_tags"] or (),
                record["rows"],
            )
            out.append(Revert(key, changes))
        yield out, skipped


def reverts(
    report: pd.DataFrame, report_name: str = "report", meta: Mapping[str, Any] | None = None
) -> tuple[list[Revert], list[tuple]]:
    """Every `ok` row's change rows back, and the rows that cannot be undone (skipped rows:
    no before-state), all at once.

    Raises
    ------
    UsageError
        `report` is not a batchtag report, is a dry run's (it changed nothing), lacks what
        the run left (`tags_after`), or holds a tags cell that is not an object of tags.
    """
    out: list[Revert] = []
    skipped: list[tuple] = []
    for found, cannot in revert_chunks(FrameRows(report, report_name), report_name, meta):
        out += found
        skipped += cannot
    return out, skipped


def _check_tags_cell(
    value: Any, column: str, row: int, raw: Mapping[str, Any], report_name: str
) -> None:
    """A tags cell must be an object of text keys and values (None: no cell)."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise UsageError(
            f"{_where(report_name, row, raw, column)} holds a JSON {_json_kind(value)}, not the "
            'tags as an object {"key": "value"}'
        )
    for key, text in value.items():
        if not isinstance(text, str):
            raise UsageError(
                f"{_where(report_name, row, raw, column)}: tag {key!r} has the value {text!r}, "
                "not text"
            )


def _where(report_name: str, row: int, raw: Mapping[str, Any], column: str) -> str:
    return f"{report_name}: row {row} (snapshot {raw['snapshot_id']}): {column}"


def _json_kind(value: Any) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)


class Skipped:
    """The snapshots an undo leaves out, in order (`SKIPPED_COLUMNS` tuples): each counted
    by status; the first `shown` kept (every one when `shown` is None).

    Examples
    --------
    >>> skipped = Skipped(shown=1)
    >>> skipped.add((1, 1, "a", "conflict", "why")); skipped.add((1, 1, "b", "not_found", "gone"))
    >>> len(skipped), skipped.rows, skipped.by_status()
    (2, [(1, 1, 'a', 'conflict', 'why')], {'conflict': 1, 'not_found': 1})
    """

    def __init__(self, shown: int | None = None):
        self.shown = shown
        self.rows: list[tuple] = []
        self.counts: Counter[str] = Counter()

    def add(self, row: tuple) -> None:
        self.counts[row[3]] += 1
        if self.shown is None or len(self.rows) < self.shown:
            self.rows.append(row)

    def __len__(self) -> int:
        return sum(self.counts.values())

    def by_status(self) -> dict[str, int]:
        """Counts by status, the most first (equal counts: the status met first first)."""
        return dict(self.counts.most_common())

    def frame(self) -> pd.DataFrame:
        """The rows kept, as `skipped_frame`."""
        return skipped_frame(self.rows)


class Wanted:
    """The snapshots whose current state an undo needs, by position (in report order).

    Parameters
    ----------
    index : PlanIndex or None
        Their keys (None: there are none).
    odd : dict
        The ids that are not their key's lowercase UUID text, by position.
    """

    def __init__(self, index: PlanIndex | None, odd: dict[int, str]):
        self.index = index
        self._odd = odd
        self._ranks: np.ndarray | None = None

    def __len__(self) -> int:
        return 0 if self.index is None else len(self.index)

    def ids_at(self, positions: np.ndarray) -> list[str]:
        """The snapshot ids at some positions (exactly as the report has them)."""
        if self.index is None or not len(positions):
            return []
        if self._ranks is None:
            self._ranks = self.index.ranks()
        texts = uuid_text(self.index.key_at(self._ranks[positions]))
        return [self._odd.get(p, t) for p, t in zip(positions.tolist(), texts, strict=True)]


class Inversion:
    """One undo of the `ok` rows `rows`: `scan` first, then `changes` (see the module
    docstring). Skipped snapshots go to `skipped`; `reverted` and `written` count the
    snapshots and the change rows `changes` gave."""

    def __init__(
        self,
        rows: OkRows,
        skipped: Skipped,
        report_name: str = "report",
        meta: Mapping[str, Any] | None = None,
    ):
        self.rows, self.skipped, self.report_name, self.meta = rows, skipped, report_name, meta
        self.reverted = self.written = 0
        self._kept = Spill("the undo's change rows")
        # per chunk, where its reverts are in `_kept` (or the reverts, if marshal cannot
        # hold their cells: a caller's frame may have any objects in its rows)
        self._parts: list[int | list[tuple[Key, list[dict]]]] = []

    def scan(self) -> Wanted:
        """Check every row (raising `UsageError` at the first bad one), add the rows that
        cannot be undone to `skipped`, and find the snapshots whose state `changes` needs:
        those the run changed, in report order (their change rows wait in a temporary
        file for `changes`)."""
        codes: dict[tuple[int, int], int] = {}
        scope_codes, keys, odd = [], [], {}
        count = 0
        self._kept.close()
        self._parts = []
        for found, cannot in revert_chunks(self.rows, self.report_name, self.meta):
            for row in cannot:
                self.skipped.add(row)
            changing = [(r.key, r.rows) for r in found if r.rows]
            if not changing:
                continue
            try:
                self._parts.append(self._kept.append(marshal.dumps(changing)))
            except ValueError:
                self._parts.append(changing)
            ids = [key[2] for key, _ in changing]
            made = keys_of(ids)
            scope_codes.append(
                np.array(
                    [codes.setdefault(key[:2], len(codes)) for key, _ in changing],
                    dtype=np.int64,
                )
            )
            keys.append(made)
            for at, (text, sid) in enumerate(zip(uuid_text(made), ids, strict=True)):
                if text != sid:
                    odd[count + at] = sid
            count += len(ids)
        self._kept.flush()
        if not keys:
            return Wanted(None, {})
        index = PlanIndex.build(np.concatenate(scope_codes), tuple(codes), np.concatenate(keys))
        return Wanted(index, odd)

    def changes(self, current: Current | None, force: bool = False) -> Iterator[list[dict]]:
        """The change rows, a chunk at a time, each snapshot checked against `current`
        (None: no check, every row kept as the run left it): called with the snapshot's
        position among those `scan` found and its key, it answers its `Snapshot` (or the
        API's JSON object; None: not found)."""
        position = 0
        for part in self._parts:
            changing = part if isinstance(part, list) else marshal.loads(self._kept.read(part))
            out: list[dict] = []
            for key, rows in changing:
                if current is None:
                    kept, left_out = rows, None
                else:
                    kept, left_out = check_revert(Revert(key, rows), current(position, key), force)
                    position += 1
                if left_out is not None:
                    self.skipped.add(left_out)
                if kept:
                    out += kept
                    self.reverted += 1
            self.written += len(out)
            yield out

    def close(self) -> None:
        """Drop the change rows kept (the temporary file is deleted)."""
        self._kept.close()
        self._parts = []

    def __enter__(self) -> Inversion:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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
    skipped = Skipped()
    with Inversion(FrameRows(report, report_name), skipped, report_name, meta) as inversion:
        inversion.scan()
        lookup = None if current is None else (lambda _, key: current.get(key))
        rows = [row for chunk in inversion.changes(lookup, force) for row in chunk]
    return Undo(frame_of(rows, CHANGE_COLUMNS), skipped.frame())


def check_revert(
    revert: Revert, current: Snapshot | Mapping[str, Any] | None, force: bool
) -> tuple[list[dict[str, Any]], tuple | None]:
    """(the rows to keep, the skipped row or None) for one snapshot, against its current
    state (None: not found)."""
    if not revert.rows:
        return revert.rows, None
    snapshot = as_snapshot(current)
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
