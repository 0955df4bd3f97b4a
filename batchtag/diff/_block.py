"""The plan diff of many snapshots at once: a page of the listing against its plan entries.

`diff_entry` makes a `SnapshotDiff` (dicts of the tags before and after, a PATCH body,
`Change` objects) for every snapshot: most of a large plan's time would go there. Here
the entries of a page come as columns (`EntryBlock`, taken from a `PlanEntries` without
making a `PlanEntry`), and the common entry shape (tags set or deleted, maybe a name; no
clear, no renames) is compared with the snapshot's tags directly: a snapshot with nothing
to change costs a verdict count, a changed one a tuple per diff line. Other shapes (clear,
renames) and snapshots that are not found go through `diff_entry` itself, so the rows are
the same as `DiffCollector.add` would make (a property test compares both paths).

The result of `diff_block` is a `BlockRows`: per diff line its entry (index into the block)
and its cells, and per entry its verdict; `DiffCollector.add_block` stores them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from batchtag.diff._entry import CHANGE, LOCKED, NOOP, diff_entry
from batchtag.diff._store import DIFF_COLUMNS
from batchtag.model import PlanEntry, Snapshot, TagState
from batchtag.record import MODIFY, NAME, READ_ONLY, TAG, change_kind

# a diff line: (entry index j, field, key, change, old, new)
Line = tuple[int, str | None, str | None, str | None, Any, Any]
BLANK = (None, None, None, None, None)  # the cells of a snapshot's line without a change


Cells = tuple[list[int], list[int], list[str], list[list[Any]]]  # projects, regions, ids, rows


@dataclass
class EntryBlock:
    """Some plan entries as columns (index j: the j-th of them).

    `states` holds the distinct `TagState` of the plan and `state_codes` each entry's one;
    `extras` likewise the passthrough dicts and `extra_codes`. The cells only the diff's
    rows need (`projects`, `regions`, `ids`, `rows`) are made when first asked for, by
    `cells`: a plan that keeps no row never makes them."""

    positions: np.ndarray  # plan positions (int64)
    state_codes: list[int]
    states: Sequence[TagState]
    names: list[str | None]
    extra_codes: list[int]
    extras: Sequence[Mapping[str, Any]]
    cells: Callable[[], Cells]
    expect_names: list[str | None] | None = None  # per entry, when some entry has one

    def __len__(self) -> int:
        return len(self.positions)

    @functools.cached_property
    def _cells(self) -> Cells:
        return self.cells()

    @property
    def projects(self) -> list[int]:
        return self._cells[0]

    @property
    def regions(self) -> list[int]:
        return self._cells[1]

    @property
    def ids(self) -> list[str]:
        return self._cells[2]

    @property
    def rows(self) -> list[list[Any]]:
        return self._cells[3]

    def entry(self, j: int) -> PlanEntry:
        """The j-th entry as a `PlanEntry`."""
        s = self.states[self.state_codes[j]]
        extra = self.extras[self.extra_codes[j]]
        expect_name = None if self.expect_names is None else self.expect_names[j]
        return PlanEntry(
            self.projects[j], self.regions[j], self.ids[j], s.tags, s.clear, s.renames,
            self.names[j], self.rows[j], extra, s.overwrites, s.expect, expect_name,
        )  # fmt: skip


def entry_block(entries: Sequence[PlanEntry], positions: np.ndarray) -> EntryBlock:
    """The entries at `positions` as an `EntryBlock` (from the columns of a `PlanEntries`,
    or from the `PlanEntry` objects of a list).

    Parameters
    ----------
    entries : sequence of PlanEntry
        A plan's entries (`Plan.entries`).
    positions : numpy.ndarray
        Plan positions, in any order.

    Returns
    -------
    EntryBlock

    Examples
    --------
    >>> block = entry_block([PlanEntry(1, 2, "s", tags={"a": "b"})], np.array([0]))
    >>> block.ids, block.states[block.state_codes[0]][0]
    (['s'], {'a': 'b'})
    """
    positions = np.asarray(positions, dtype=np.int64)
    if hasattr(entries, "ids_at"):
        return _columns_block(entries, positions)
    made = [entries[i] for i in positions.tolist()]
    count = list(range(len(made)))

    def cells() -> Cells:
        return (
            [e.project_id for e in made],
            [e.region_id for e in made],
            [e.snapshot_id for e in made],
            [e.rows for e in made],
        )

    states = [TagState(e.tags, e.clear, e.renames, e.overwrites, e.expect) for e in made]
    names = [e.name for e in made]
    expect_names = [e.expect_name for e in made]
    if all(n is None for n in expect_names):
        expect_names = None
    extras = [e.extra for e in made]
    return EntryBlock(positions, count, states, names, count, extras, cells, expect_names)


def _columns_block(entries: Any, positions: np.ndarray) -> EntryBlock:
    """`entry_block` of a `PlanEntries`: its columns gathered at `positions`."""

    def cells() -> Cells:
        projects = entries.projects[positions].tolist()
        regions = entries.regions[positions].tolist()
        return projects, regions, entries.ids_at(positions), entries.rows_at(positions)

    def per_entry(column: list | None) -> list | None:
        return None if column is None else [column[p] for p in positions.tolist()]

    return EntryBlock(
        positions,
        entries.state_codes[positions].tolist(),
        entries.states,
        per_entry(entries.names) or [None] * len(positions),
        entries.extra_codes[positions].tolist(),
        entries.extras,
        cells,
        per_entry(entries.expect_names),
    )


@dataclass
class BlockRows:
    """The diff of a block: `verdicts` per entry; per line its entry and cells."""

    verdicts: list[str]
    lines: list[Line]

    def columns(self, block: EntryBlock, passthrough: Sequence[str]):
        """The rows as a list of cells per column (`DIFF_COLUMNS`, then `passthrough`),
        and each row's plan position."""
        if not self.lines:
            return [[] for _ in range(len(DIFF_COLUMNS) + len(passthrough))], block.positions[:0]
        owners, fields, keys, changes, olds, news = map(list, zip(*self.lines, strict=True))
        if owners == list(range(len(block))):  # a line per entry: the block's own columns

            def gather(column: list) -> list:
                return column

            positions = block.positions
        else:

            def gather(column: list) -> list:
                return [column[j] for j in owners]

            positions = block.positions[owners]
        columns = [gather(block.projects), gather(block.regions), gather(block.ids)]
        columns += [gather(self.verdicts), fields, keys, changes, olds, news]
        columns.append(gather(block.rows))
        codes = gather(block.extra_codes)
        for name in passthrough:
            values = [extra.get(name) for extra in block.extras]
            columns.append([values[code] for code in codes])
        return columns, positions


class Shapes:
    """Per tag state, its keys in order (`(key, value)` pairs) when the fast comparison
    applies (no clear, no renames, no checks), else None; worked out once per state of a
    plan (the states of a `PlanEntries` are one list for all its blocks; a list's are per
    block)."""

    def __init__(self) -> None:
        self._states: Sequence | None = None  # held: what the codes below refer to
        self._known: dict[int, tuple[tuple[tuple[str, Any], ...], frozenset[str]] | None] = {}

    def of(self, states: Sequence, code: int):
        if states is not self._states:
            self._states, self._known = states, {}
        if code not in self._known:
            state = states[code]
            fast = not state.clear and not state.renames and state.expect is None
            tags = state.tags
            self._known[code] = (tuple(sorted(tags.items())), frozenset(tags)) if fast else None
        return self._known[code]


def diff_block(
    block: EntryBlock,
    snapshots: Sequence[Snapshot | None],
    shapes: Shapes,
    *,
    include_noop: bool = False,
) -> BlockRows:
    """The diff lines and verdicts of `block`'s entries against `snapshots` (one each).

    Parameters
    ----------
    block : EntryBlock
        The entries.
    snapshots : sequence of Snapshot or None
        The j-th entry's current state (None: not found).
    shapes : Shapes
        The per-state fast comparison (kept by the caller across blocks).
    include_noop : bool
        Give a `noop` snapshot a blank line too.

    Returns
    -------
    BlockRows
        The same lines, in the same order, as `diff_entry` gives each entry.
    """
    verdicts: list[str] = []
    lines: list[Line] = []
    states, codes, names = block.states, block.state_codes, block.names
    shape_of = {code: shapes.of(states, code) for code in set(codes)}
    checked = block.expect_names
    for j, snapshot in enumerate(snapshots):
        shape = shape_of[codes[j]] if snapshot is not None else None
        if checked is not None and checked[j] is not None:
            shape = None  # a change file's name check: `diff_entry` does it
        if shape is None:
            verdict = _slow(block, j, snapshot, lines)
        else:
            verdict = _fast(j, snapshot, shape, names[j], lines)
        if verdict is None:  # a noop without lines
            verdict = NOOP
            if include_noop:
                lines.append((j, *BLANK))
        verdicts.append(verdict)
    return BlockRows(verdicts, lines)


def _slow(block: EntryBlock, j: int, snapshot, lines: list[Line]) -> str | None:
    """`diff_entry` of entry j, its changes added to `lines`; the verdict (None: a noop
    without lines)."""
    diff = diff_entry(block.entry(j), snapshot)
    for c in diff.changes:
        lines.append((j, c.field, c.key, c.change, c.old, c.new))
    if not diff.changes:
        if diff.verdict == NOOP:
            return None
        lines.append((j, *BLANK))  # not found
    return diff.verdict


def _fast(j: int, snapshot: Snapshot, shape, name: str | None, lines: list[Line]):
    """Entry j (tags set/deleted, maybe a name) against its snapshot: lines appended in
    `diff_entry`'s order (tags by key, the name, read-only problems); returns the verdict,
    or None for a noop without lines."""
    items, keys = shape
    current: dict[str, Any] = {}
    read_only: set[str] | None = None
    flat = snapshot.tags
    if flat:
        ro_from = 2 * snapshot.n_user
        for i in range(0, len(flat), 2):
            key = flat[i]
            if key in keys:
                current[key] = flat[i + 1]
                if i >= ro_from:
                    read_only = read_only or set()
                    read_only.add(key)
    start = len(lines)
    for key, new in items:
        old = current.get(key)
        if old != new and (read_only is None or key not in read_only):
            lines.append((j, TAG, key, change_kind(old, new), old, new))
    if name is not None and name != snapshot.name:
        lines.append((j, NAME, None, MODIFY, snapshot.name, name))
    changed = len(lines) > start
    if read_only is not None:
        for key, new in items:
            if key in read_only and current[key] != new:
                lines.append((j, TAG, key, READ_ONLY, current[key], new))
    if changed:
        return LOCKED if snapshot.task_id else CHANGE
    return NOOP if len(lines) > start else None
