"""The plan diff of a whole plan: `DiffCollector` streams (entry, snapshot) pairs, one at a
time (`diff_entry`) or a page at a time (`diff_block`), into the diff's rows and its
summary; `diff_frame` and `diff_plan` are its one-call forms.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batchtag.diff._block import EntryBlock, Shapes, diff_block
from batchtag.diff._entry import NOOP, VERDICTS, WRITES, Change, SnapshotDiff, diff_entry
from batchtag.diff._store import DIFF_COLUMNS, Diff, DiffColumns
from batchtag.model import Plan, PlanEntry, Snapshot, as_snapshot
from batchtag.record import ADD, CONFLICT_NOTE, MODIFY, NAME, READ_ONLY, REMOVE

if TYPE_CHECKING:
    import pandas as pd

PASSTHROUGH_PREFIX = "manifest_"  # a manifest column named like a diff column gets this


@dataclass
class PlanSummary:
    """Counts over a plan's diffs: per verdict, per key, names, read-only problems,
    conflicts, and the plan's notes (blank cells ignored)."""

    verdicts: Counter = field(default_factory=lambda: Counter(dict.fromkeys(VERDICTS, 0)))
    keys: dict[str, Counter] = field(default_factory=dict)  # key -> {add, remove, change}
    names: int = 0  # snapshots whose name changes
    read_only: int = 0  # (snapshot, key) writes to read-only tags, ignored by the API
    conflicts: int = 0  # (snapshot, key) conflict notes
    notes: list[str] = field(default_factory=list)

    def add(self, diff: SnapshotDiff) -> None:
        self.verdicts[diff.verdict] += 1
        for c in diff.changes:
            self._count(c.field, c.key, c.change, 1)

    def add_lines(self, verdicts: Iterable[str], lines: Iterable[tuple]) -> None:
        """Count many snapshots at once: their verdicts, and their diff lines as
        (field, key, change) triples (a blank line's are None)."""
        self.verdicts.update(verdicts)
        for (field_, key, change), n in Counter(lines).items():
            if change is not None:
                self._count(field_, key, change, n)

    def _count(self, field_: str, key: str | None, change: str, n: int) -> None:
        if change == READ_ONLY:
            self.read_only += n
        elif change == CONFLICT_NOTE:
            self.conflicts += n
        elif field_ == NAME:
            self.names += n
        else:
            self.keys.setdefault(key, Counter())[change] += n

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
            "conflicts": self.conflicts,
            "notes": list(self.notes),
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
    keep_rows : bool
        False: only count (the summary), keep no row (a plan that shows none).
    """

    def __init__(
        self,
        passthrough: Iterable[str] = (),
        *,
        include_noop: bool = False,
        keep_rows: bool = True,
        notes: Iterable[str] = (),
    ):
        self.passthrough = list(passthrough)
        self.include_noop = include_noop
        self.keep_rows = keep_rows
        self.summary = PlanSummary(notes=list(notes))
        self._shapes = None  # a diffblock.Shapes, once add_block is used
        self._rows: DiffColumns | None = DiffColumns(
            DIFF_COLUMNS + [passthrough_name(c) for c in self.passthrough]
        )

    def add(
        self, entry: PlanEntry, snapshot: Snapshot | None, position: int | None = None
    ) -> SnapshotDiff:
        """Diff one entry, count it, and keep its rows; returns the diff.

        `position` (the entry's index in its plan) lets pairs arrive in any order (as the
        list pages deliver them): the rows then come back in plan order."""
        if self._rows is None:
            raise RuntimeError("DiffCollector.add() after finish()")
        diff = diff_entry(entry, snapshot)
        self.summary.add(diff)
        for line in _row_changes(diff, self.include_noop) if self.keep_rows else ():
            self._rows.append(self._values(diff, line), position)
        return diff

    def add_block(self, block: EntryBlock, snapshots: Sequence[Snapshot | None]) -> None:
        """Diff many entries (`batchtag.diff._block.EntryBlock`) against their snapshots (None:
        not found), count them and keep their rows: the rows `add` would keep, made
        column by column."""
        if self._rows is None:
            raise RuntimeError("DiffCollector.add_block() after finish()")
        self._shapes = self._shapes or Shapes()
        done = diff_block(block, snapshots, self._shapes, include_noop=self.include_noop)
        if not self.keep_rows:
            cells = list(zip(*done.lines, strict=True))[1:4] or [(), (), ()]
            self.summary.add_lines(done.verdicts, zip(*cells, strict=True))
            return
        columns, positions = done.columns(block, self.passthrough)
        self.summary.add_lines(done.verdicts, zip(*columns[4:7], strict=True))
        if len(positions):
            self._rows.extend(columns, positions)

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
    pairs: Iterable[tuple[PlanEntry, Snapshot | Mapping[str, Any] | None]],
    passthrough: Iterable[str] = (),
    *,
    include_noop: bool = False,
) -> pd.DataFrame:
    """The full diff of (entry, current snapshot or None) pairs as a DataFrame.

    Parameters
    ----------
    pairs : iterable of (PlanEntry, Snapshot or Mapping or None)
        Each plan entry with its current state: a `Snapshot`, or the API's JSON object
        (decoded by `batchtag.model.as_snapshot`); None: not found.
    passthrough : iterable of str
        Manifest columns copied into each row (named ``manifest_<col>`` on a clash).
    include_noop : bool
        Give `noop` snapshots a row too (by default they only count in the summary).

    Returns
    -------
    pandas.DataFrame
        A change frame (`batchtag.record.CHANGE_SCHEMA`: project_id, region_id, snapshot_id,
        verdict, field, key, change, old, new, rows) then the passthrough ones;
        ``attrs["summary"]`` holds `PlanSummary.as_dict()`.

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
        collector.add(entry, as_snapshot(snapshot))
    return collector.frame()


def diff_plan(
    plan: Plan,
    current: Mapping[tuple[int, int, str], Snapshot | Mapping[str, Any] | None],
    *,
    include_noop: bool = False,
) -> pd.DataFrame:
    """`diff_frame` of a whole plan against the snapshots the state reader returned.

    Parameters
    ----------
    plan : Plan
        The planned manifest; its passthrough columns are carried into the rows.
    current : Mapping
        (project_id, region_id, snapshot_id) → its current `Snapshot` or the API's JSON
        object; a snapshot that is missing (or None) is `not_found`.
    include_noop : bool
        Give `noop` snapshots a row too.

    Returns
    -------
    pandas.DataFrame
        As `diff_frame`.
    """
    collector = DiffCollector(plan.passthrough, include_noop=include_noop, notes=plan.notes)
    for entry in plan.entries:
        collector.add(entry, as_snapshot(current.get(entry.key)))
    return collector.frame()
