"""Collecting a plan's diffs: the summary counts (`PlanSummary`) and the rows, streamed in as
(entry, snapshot) pairs (`DiffCollector`), or all at once (`diff_frame`, `diff_plan`).

The comparison of one entry with its snapshot is `batchtag.diff.diff_entry`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batchtag.diff import (
    ADD,
    MODIFY,
    NAME,
    NOOP,
    PASSTHROUGH_PREFIX,
    READ_ONLY,
    REMOVE,
    VERDICTS,
    WRITES,
    Change,
    DiffMemo,
    SnapshotDiff,
)
from batchtag.diffstore import DIFF_COLUMNS, Diff, DiffColumns
from batchtag.plan import Plan, PlanEntry

if TYPE_CHECKING:
    import pandas as pd


# ---------------------------------------------------------------- the summary


@dataclass
class PlanSummary:
    """Counts over a plan's diffs: per verdict, per key, names, read-only problems."""

    verdicts: Counter = field(default_factory=lambda: Counter(dict.fromkeys(VERDICTS, 0)))
    keys: dict[str, Counter] = field(default_factory=dict)  # key -> {add, remove, change}
    names: int = 0  # snapshots whose name changes
    read_only: int = 0  # (snapshot, key) writes to read-only tags, ignored by the API

    def add(self, diff: SnapshotDiff) -> None:
        self.verdicts[diff.verdict] += 1
        for c in diff.changes:
            if c.change == READ_ONLY:
                self.read_only += 1
            elif c.field == NAME:
                self.names += 1
            else:
                self.keys.setdefault(c.key, Counter())[c.change] += 1

    @property
    def snapshots(self) -> int:
        return sum(self.verdicts.values())

    @property
    def writes(self) -> int:
        """How many PATCHes an apply would send now (changes, locked ones included)."""
        return sum(self.verdicts[v] for v in WRITES)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able form (the diff DataFrame carries it in ``attrs["summary"]``)."""
        return {
            "snapshots": self.snapshots,
            "verdicts": {v: self.verdicts[v] for v in VERDICTS},
            "writes": self.writes,
            "names": self.names,
            "read_only": self.read_only,
            "keys": {
                k: {c: counts[c] for c in (ADD, REMOVE, MODIFY)}
                for k, counts in sorted(self.keys.items())
            },
        }


# ---------------------------------------------------------------- the DataFrame


def passthrough_name(column: str) -> str:
    """The diff column for a manifest passthrough column (prefixed if it clashes)."""
    return f"{PASSTHROUGH_PREFIX}{column}" if column in DIFF_COLUMNS else column


class DiffCollector:
    """Streams (entry, snapshot) pairs into diff rows and a summary; keeps no per-snapshot
    object and no Python object per row: the rows are held columnar (`DiffColumns`), so
    memory grows by a few dozen bytes per change, not by a list cell per column.

    Parameters
    ----------
    passthrough : iterable of str
        Manifest columns to carry into every row (`Plan.passthrough`).
    include_noop : bool
        Also give each `noop` snapshot without problems one row (field/key empty).
    """

    def __init__(self, passthrough: Iterable[str] = (), *, include_noop: bool = False):
        self.passthrough = list(passthrough)
        self.include_noop = include_noop
        self.summary = PlanSummary()
        self._diff = DiffMemo()  # a plan repeats a few tag states over a few tag sets
        self._rows: DiffColumns | None = DiffColumns(
            DIFF_COLUMNS + [passthrough_name(c) for c in self.passthrough]
        )

    def add(
        self, entry: PlanEntry, snapshot: Mapping[str, Any] | None, position: int | None = None
    ) -> SnapshotDiff:
        """Diff one entry, count it, and keep its rows; returns the diff.

        `position` (the entry's index in its plan) lets pairs arrive in any order (as the
        list pages deliver them): the rows then come back in plan order."""
        if self._rows is None:
            raise RuntimeError("DiffCollector.add() after finish()")
        diff = self._diff(entry, snapshot)
        self.summary.add(diff)
        for line in _row_changes(diff, self.include_noop):
            self._rows.append(self._values(diff, line), position)
        return diff

    def _values(self, diff: SnapshotDiff, line: Change | None) -> list[Any]:
        e = diff.entry
        values = [e.project_id, e.region_id, e.snapshot_id, diff.verdict]
        if line is None:
            values += [None] * 5
        else:
            values += [line.field, line.key, line.change, line.old, line.new]
        values.append(e.rows)
        values += [e.extra.get(c) for c in self.passthrough]
        return values

    def finish(self) -> Diff:
        """The diff, columnar (`Diff`: `records()`, `frame()`, `summary`); call it once."""
        if self._rows is None:
            raise RuntimeError("DiffCollector.finish() was already called")
        rows, self._rows = self._rows, None
        return rows.finish(self.summary.as_dict())

    def frame(self) -> pd.DataFrame:
        """The diff as a DataFrame: one row per (snapshot, change); ``attrs["summary"]``
        the summary. Call it (or `finish`) once, at the end."""
        return self.finish().frame()


def _row_changes(diff: SnapshotDiff, include_noop: bool) -> Iterator[Change | None]:
    """The lines a snapshot contributes: its changes, or one blank line for a snapshot
    that has none but must show up (not found; noop when asked)."""
    if diff.changes:
        yield from diff.changes
    elif diff.verdict != NOOP or include_noop:
        yield None


def diff_frame(
    pairs: Iterable[tuple[PlanEntry, Mapping[str, Any] | None]],
    passthrough: Iterable[str] = (),
    *,
    include_noop: bool = False,
) -> pd.DataFrame:
    """The full diff of (entry, current snapshot or None) pairs as a DataFrame.

    Parameters
    ----------
    pairs : iterable of (PlanEntry, Mapping or None)
        Each plan entry with its current snapshot JSON (None: not found).
    passthrough : iterable of str
        Manifest columns copied into each row (named ``manifest_<col>`` on a clash).
    include_noop : bool
        Give `noop` snapshots a row too (by default they only count in the summary).

    Returns
    -------
    pandas.DataFrame
        Columns `DIFF_COLUMNS` (project_id, region_id, snapshot_id, verdict, field, key,
        change, old, new, rows) then the passthrough ones; ``attrs["summary"]`` holds
        `PlanSummary.as_dict()`.

    Examples
    --------
    >>> e = PlanEntry(1, 1, "id", tags={"env": None})
    >>> snap = {"name": "db-1", "task_id": None,
    ...         "tags": [{"key": "env", "value": "dev", "read_only": False}]}
    >>> diff_frame([(e, snap)])[["key", "change", "old"]].values.tolist()
    [['env', 'remove', 'dev']]
    """
    collector = DiffCollector(passthrough, include_noop=include_noop)
    for entry, snapshot in pairs:
        collector.add(entry, snapshot)
    return collector.frame()


def diff_plan(
    plan: Plan,
    current: Mapping[tuple[int, int, str], Mapping[str, Any] | None],
    *,
    include_noop: bool = False,
) -> pd.DataFrame:
    """`diff_frame` of a whole plan against the snapshots the state reader returned.

    Parameters
    ----------
    plan : Plan
        The planned manifest; its passthrough columns are carried into the rows.
    current : Mapping
        (project_id, region_id, snapshot_id) → current snapshot JSON; a snapshot that is
        missing (or None) is `not_found`.
    include_noop : bool
        Give `noop` snapshots a row too.

    Returns
    -------
    pandas.DataFrame
        As `diff_frame`.
    """
    pairs = ((entry, current.get(entry.key)) for entry in plan.entries)
    return diff_frame(pairs, plan.passthrough, include_noop=include_noop)
