"""The apply side of reading state: which snapshots to read before sending, and the state kept.

Before an apply run sends to a snapshot, its current state is read (the run sends to those
already read meanwhile: `read_state`'s ``ready``, batchtag.read._feed) with the one read
strategy (`batchtag.read._strategy.read_wanted`: list pages or one GET per snapshot,
whichever sends fewer requests), under the run's limiter, retries, breaker and auth. The
engine then sends, per snapshot, only the keys that change
(`batchtag.diff.diff_entry(...).body`): a snapshot with no change is `noop` with no request,
one missing from the state is `not_found` with no request, and the report keeps the
before-state, so the run can be undone.

Which snapshots are read (`check_current`, see `batchtag.commands`' read mode):

- ``True`` (the default of a run that writes): every snapshot of the plan.
- ``False`` (``--no-check-current``): none, except entries that need the current tags
  (rename, clear + set, a change file's checks: `PlanEntry.needs_current`); the others are
  written blind, and cannot be undone.

Memory: nothing per snapshot as a Python object. Each snapshot read is encoded (its
`batchtag.model.Snapshot.compact` form, then `marshal`) into an unlinked temporary file
(`batchtag.memory.Spill`, in ``$TMPDIR``; the page cache holds it, not the process), and the
run keeps the record's offset per plan position (4 bytes), found through the plan's
`batchtag.model.PlanIndex`. The engine takes each one (decoded back into a `Snapshot`)
when it starts the snapshot, which is only once its state is in the file. A disk too
full to hold the file aborts the run (what was not sent is `skipped`, exit 3), naming the
folder.

A snapshot changed by someone else between the read and the write: the merge patch still
names only the keys this run changes, so their other edits survive; a key both changed is
left as this run sets it (the last write wins), and a snapshot that only looked unchanged
is `noop`.
"""

from __future__ import annotations

import marshal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from batchtag.memory import Spill
from batchtag.model import (
    PlanEntry,
    PlanIndex,
    Snapshot,
    as_snapshot,
    entries_at,
    needs_current_mask,
)
from batchtag.read._reader import Reader
from batchtag.read._strategy import read_wanted

NOT_READ = object()  # `State.take`: the snapshot's state was not read
NOT_FOUND_TEXT = "not found when the state was read"
Scope = tuple[int, int]
Ready = Callable[[np.ndarray], None]  # `read_state`'s `ready`: positions that can be sent
OFFSETS = np.dtype(np.uint32)  # `State`'s per position (wider once the spill outgrows it)


class State:
    """The state read before sending, per plan position (see the module docstring).

    Parameters
    ----------
    index : PlanIndex or None
        The positions of the plan's entries; None while the plan is still being made
        (`reserve` makes room for its positions, `bind` gives the index once it is whole).
    folder : str, optional
        Where the spill file goes (default: the temporary folder, ``$TMPDIR``).
    """

    def __init__(self, index: PlanIndex | None, folder: str | None = None):
        self.index = index
        self._size = 0 if index is None else len(index)
        self.requests = 0  # requests the read sent (pages, GETs, count)
        self.read = 0  # snapshots whose state was read (found or not)
        # per position: the record's offset in the spill, or one of the dtype's two
        # largest values: `_unread` (not read, or taken), `_missing` (read: not found)
        self._offsets: np.ndarray | None = None
        self._unread = self._missing = 0
        self._held = 0
        self._spill = Spill("the state read before sending", folder)

    def _arrays(self) -> np.ndarray:
        if self._offsets is None:
            self._unread, self._missing = _sentinels(OFFSETS)
            self._offsets = np.full(self._size, self._unread, dtype=OFFSETS)
        return self._offsets

    def _widen(self) -> np.ndarray:
        """Offsets in 8 bytes each, for a spill past what the narrow ones reach (32 GiB)."""
        narrow, wide = self._arrays(), np.dtype(np.uint64)
        offsets = narrow.astype(wide)
        unread, missing = _sentinels(wide)
        offsets[narrow == self._unread] = unread
        offsets[narrow == self._missing] = missing
        self._offsets, self._unread, self._missing = offsets, unread, missing
        return offsets

    def put(self, position: int, snapshot: Snapshot | Mapping[str, Any] | None) -> None:
        """Keep what was read of the snapshot at `position` (None: it does not exist; the
        API's JSON object is decoded, `batchtag.model.as_snapshot`)."""
        offsets = self._arrays()
        self._held += int(offsets[position] == self._unread)
        snapshot = as_snapshot(snapshot)
        if snapshot is None:
            offsets[position] = self._missing
            return
        offset = self._spill.append(marshal.dumps(snapshot.compact()))
        if offset >= self._missing:
            offsets = self._widen()
        offsets[position] = offset

    def put_missing(self, positions: np.ndarray) -> None:
        """The snapshots at `positions` do not exist."""
        offsets = self._arrays()
        self._held += int((offsets[positions] == self._unread).sum())
        offsets[positions] = self._missing

    def reserve(self, size: int) -> None:
        """Room for positions below `size` (a state made without its plan's index)."""
        offsets = self._arrays()
        if size > len(offsets):
            grown = np.full(max(size, 2 * len(offsets)), self._unread, dtype=offsets.dtype)
            grown[: len(offsets)] = offsets
            self._offsets, self._size = grown, len(grown)

    def bind(self, index: PlanIndex) -> None:
        """The index of the plan whose positions were put (a state made without one, filled
        while its plan was made a part at a time)."""
        self.index, self._size = index, len(index)
        if self._offsets is not None:
            self._offsets = self._offsets[: len(index)].copy()

    def finish(self) -> None:
        """Everything read so far is written to the spill file (as the read ends, and before
        the engine may take what was read: a full disk stops the read, not a send)."""
        self._spill.flush()

    def close(self) -> None:
        """Drop what is left (the spill file is deleted)."""
        self._spill.close()
        self._offsets = None
        self._held = 0

    def _lookup(self, entry: PlanEntry, forget: bool) -> Snapshot | None | object:
        if self._offsets is None:
            return NOT_READ
        position = self.index.position(entry)
        if position is None:
            return NOT_READ
        return self._at(position, forget)

    def at(self, position: int) -> Snapshot | None | object:
        """The `Snapshot` read at a plan position (None: not found), or `NOT_READ`; kept."""
        if self._offsets is None:
            return NOT_READ
        return self._at(position, forget=False)

    def _at(self, position: int, forget: bool) -> Snapshot | None | object:
        assert self._offsets is not None
        offset = int(self._offsets[position])
        if offset == self._unread:
            return NOT_READ
        if forget:
            self._offsets[position] = self._unread
            self._held -= 1
        if offset == self._missing:
            return None
        return Snapshot.decode(marshal.loads(self._spill.read(offset)))

    def take(self, entry: PlanEntry) -> Snapshot | None | object:
        """The `Snapshot` of `entry` (None: not found), or `NOT_READ`; forgets it."""
        return self._lookup(entry, forget=True)

    def peek(self, entry: PlanEntry) -> Snapshot | None | object:
        """As `take`, but keeps the state."""
        return self._lookup(entry, forget=False)

    def __len__(self) -> int:
        """Snapshots read and not taken yet."""
        return self._held


def _sentinels(dtype: np.dtype) -> tuple[int, int]:
    """The offsets that mean "not read" and "not found": the dtype's two largest values."""
    top = int(np.iinfo(dtype).max)
    return top, top - 1


async def read_state(
    reader: Reader,
    entries: Sequence[PlanEntry],
    check_current: bool,
    *,
    pending: np.ndarray | None = None,
    state: State | None = None,
    ready: Ready | None = None,
) -> State:
    """Read what the run needs to know before it sends (see the module docstring).

    Parameters
    ----------
    reader : Reader
        Shares the run's client, limiter, breaker and retry counters.
    entries : sequence of PlanEntry
        The plan's entries.
    check_current : bool
        True: read all; False: only the entries that need their current tags.
    pending : numpy.ndarray of bool, optional
        A mask over positions: the entries the run will handle (all when None). Those it
        does not (a resume's done snapshots) are most likely the listing's first ones (the
        run it resumes sent in listing order), so a listing goes on past the share of its
        pages they likely fill, and reads those last.
    state : State, optional
        Where to keep what is read (by default a new one).
    ready : callable, optional
        Called with positions (int array) as their entries can be sent (batchtag.read._feed).

    Returns
    -------
    State
        What was read; snapshots not read answer `NOT_READ`.
    """
    state = state if state is not None else State(PlanIndex.of(entries))
    ready = ready or (lambda positions: None)
    needs = None if check_current else needs_current_mask(entries)
    for scope in state.index.scopes:
        handled = state.index.in_scope(scope)
        done = 0.0  # the share of the scope's entries a resumed run sent already
        if pending is not None:
            planned = int(handled.sum())
            handled &= pending
            done = 1 - int(handled.sum()) / planned if planned else 0.0
        chosen = handled.copy() if needs is None else handled & needs
        blind = np.flatnonzero(handled & ~chosen)
        count = int(chosen.sum())
        if not count:
            ready(blind)
            continue

        def found(positions: np.ndarray, snapshots: Sequence[Snapshot | None]) -> None:
            for position, snapshot in zip(positions.tolist(), snapshots, strict=True):
                state.put(position, snapshot)
            state.finish()  # on disk before the engine may take it
            ready(positions)

        await read_wanted(
            reader,
            scope,
            chosen,
            state.index,
            lambda positions: [e.snapshot_id for e in entries_at(entries, positions)],
            found,
            index=state.index,
            on_listed=lambda blind=blind: ready(blind),
            skip=done,
        )
        state.read += count
    state.finish()
    state.requests = reader.stats.requests
    return state
