"""What a plan would change, snapshot by snapshot, given the current state: the `plan` diff.

Pure logic, no network: the caller reads the snapshots (the state reader) and hands each
plan entry with its current snapshot JSON (or None when the API does not know it) to
`diff_entry`, or streams the pairs through a `DiffCollector` to get the diff DataFrame and
the summary.

Verdicts, one per snapshot:

- ``change``: a PATCH would be sent (its minimal body is `SnapshotDiff.body`).
- ``noop``: nothing would change, no PATCH.
- ``not_found``: the snapshot does not exist (in that project/region).
- ``locked``: it would change, but a task holds a lock on it now (`task_id` set), so the
  write would get 409 and be retried; the change is still shown.

Read-only tags are never written (the API preserves them). A manifest that sets, deletes
or renames onto a read-only key gets a ``read_only`` row for it: a problem, not a change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batchtag.diff._store import DIFF_COLUMNS, Diff, DiffColumns
from batchtag.gcore import read_only_keys, tags_dict
from batchtag.model import EMPTY, Plan, PlanEntry, apply_tags_patch

if TYPE_CHECKING:
    import pandas as pd

    from batchtag.diff._block import EntryBlock

CHANGE, NOOP, NOT_FOUND, LOCKED = "change", "noop", "not_found", "locked"
VERDICTS = (CHANGE, NOOP, NOT_FOUND, LOCKED)
WRITES = frozenset({CHANGE, LOCKED})  # verdicts that send a PATCH
TAG, NAME = "tag", "name"  # the `field` column
ADD, REMOVE, MODIFY, READ_ONLY = "add", "remove", "change", "read_only"  # the `change` column
PASSTHROUGH_PREFIX = "manifest_"  # a manifest column named like a diff column gets this


@dataclass(frozen=True, slots=True)
class Change:
    """One line of the diff: a tag added, removed or changed, the name, or a read-only key."""

    field: str  # TAG or NAME
    key: str | None  # the tag key (None for the name)
    change: str  # ADD, REMOVE, MODIFY or READ_ONLY
    old: str | None
    new: str | None


@dataclass(slots=True)
class SnapshotDiff:
    """The effective change for one plan entry against its current snapshot."""

    entry: PlanEntry
    verdict: str
    changes: list[Change] = field(default_factory=list)  # in key order, name last
    body: dict[str, Any] = field(default_factory=dict)  # the minimal PATCH body ({}: none)
    before: dict[str, str] = field(default_factory=dict)  # user tags now
    after: dict[str, str] = field(default_factory=dict)  # user tags after the write
    name_before: str | None = None
    name_after: str | None = None

    @property
    def key(self) -> tuple[int, int, str]:
        return self.entry.key

    @property
    def problems(self) -> list[Change]:
        """Writes the API would ignore (read-only keys)."""
        return [c for c in self.changes if c.change == READ_ONLY]


def diff_entry(entry: PlanEntry, snapshot: Mapping[str, Any] | None) -> SnapshotDiff:
    """Compare what `entry` asks for with `snapshot`, the current state.

    Parameters
    ----------
    entry : PlanEntry
        One snapshot's planned operations.
    snapshot : Mapping or None
        The snapshot JSON as the API returns it (``tags`` a list of
        ``{key, value, read_only}``, ``name``, ``task_id``); None when it was not found.

    Returns
    -------
    SnapshotDiff
        The verdict, the changes (tags in key order, then the name, then read-only
        problems) and the minimal PATCH body (`PlanEntry.body` with the current state).

    Examples
    --------
    >>> e = PlanEntry(1, 1, "id", tags={"env": "prod"})
    >>> d = diff_entry(e, {"name": "db-1", "task_id": None,
    ...                    "tags": [{"key": "env", "value": "dev", "read_only": False}]})
    >>> d.verdict, d.body
    ('change', {'tags': {'env': 'prod'}})
    """
    if snapshot is None:
        return SnapshotDiff(entry, NOT_FOUND)
    every = tags_dict(snapshot)
    read_only = read_only_keys(snapshot)
    before = {k: v for k, v in every.items() if k not in read_only} if read_only else every
    name = snapshot.get("name")
    body = entry.body(before, read_only=read_only, current_name=name)
    after = apply_tags_patch(before, body.get("tags", EMPTY))  # = entry.target_tags(before)
    name_after = body.get("name", name)
    changes = tag_changes(before, after)
    if name_after != name:
        changes.append(Change(NAME, None, MODIFY, name, name_after))
    if read_only:
        changes += read_only_problems(entry, before, every, read_only)
    if not body:
        verdict = NOOP
    else:
        verdict = LOCKED if snapshot.get("task_id") else CHANGE
    return SnapshotDiff(entry, verdict, changes, body, before, after, name, name_after)


def tag_changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[Change]:
    """The tag lines of a diff from `before` to `after` (user tags), in key order.

    Examples
    --------
    >>> [c.change for c in tag_changes({"a": "1", "b": "2"}, {"b": "3", "c": "4"})]
    ['remove', 'change', 'add']
    """
    changes = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        kind = ADD if old is None else REMOVE if new is None else MODIFY
        changes.append(Change(TAG, key, kind, old, new))
    return changes


def read_only_problems(
    entry: PlanEntry,
    user: Mapping[str, str],
    every: Mapping[str, str],
    read_only: frozenset[str],
) -> list[Change]:
    """A READ_ONLY line for each read-only key the entry would write to a new value.

    `user` holds the current user tags, `every` all tags (read-only ones included)."""
    wanted: dict[str, str | None] = {}
    for old, new in entry.renames.items():
        if old in read_only:
            wanted[old] = None  # renaming it away would remove it
        elif new in read_only and old in user:
            wanted[new] = user[old]
    wanted.update((k, v) for k, v in entry.tags.items() if k in read_only)
    return [
        Change(TAG, key, READ_ONLY, every.get(key), value)
        for key, value in sorted(wanted.items())
        if every.get(key) != value
    ]


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
    ):
        self.passthrough = list(passthrough)
        self.include_noop = include_noop
        self.keep_rows = keep_rows
        self.summary = PlanSummary()
        self._shapes = None  # a diffblock.Shapes, once add_block is used
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
        diff = diff_entry(entry, snapshot)
        self.summary.add(diff)
        for line in _row_changes(diff, self.include_noop) if self.keep_rows else ():
            self._rows.append(self._values(diff, line), position)
        return diff

    def add_block(self, block: EntryBlock, snapshots: Sequence[Mapping[str, Any] | None]) -> None:
        """Diff many entries (`batchtag.diff._block.EntryBlock`) against their snapshots (None:
        not found), count them and keep their rows: the rows `add` would keep, made
        column by column."""
        from batchtag.diff._block import Shapes, diff_block  # (it builds on diff_entry)

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
