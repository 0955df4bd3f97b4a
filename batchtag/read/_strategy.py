"""The one read strategy: list pages or one GET per snapshot, whichever sends fewer requests.

Every command that reads the state of some snapshots before it acts (apply, plan, undo, and
enforce through apply) reads a scope with `read_wanted`:

- one snapshot wanted: one GET (never more requests than a page);
- more: the scope's first list page (limit 1000) is read. It gives ``count`` and holds up
  to 1,000 snapshots; then the rest of the listing (``ceil(count / 1000) - 1`` pages) is
  read when that is no more requests than a GET for each snapshot still wanted
  (`lists_rest`), else those are read by GET. 4 snapshots of a 20,000-snapshot scope:
  the first page, then a GET for each of the 4 it did not hold; 1,000 of that scope: its
  20 pages.

A listing that stayed consistent (`Reader.consistent`) proves that what it lacks does not
exist; after one that changed while it was read, the snapshots it lacks are read by GET.

Each page is keyed and looked up in the plan once (`batchtag.read._reader.Listed`): the
listing drops its duplicates by those positions, and the same positions say which rows
are wanted. Each wanted row (or GET answer) is decoded once, into a
`batchtag.model.Snapshot`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from batchtag.gcore import LIST_PAGE
from batchtag.model import PlanIndex, Snapshot, keys_of
from batchtag.read._reader import Listed, Lookup, Reader, listed

GET_BATCH = 1000  # GETs gathered at once (the reader's slots bound those in flight)
Scope = tuple[int, int]
Key = tuple[int, int, str]  # (project_id, region_id, snapshot_id)
# `read_wanted`'s `found`: positions and their snapshots (None: it does not exist)
Found = Callable[[np.ndarray, Sequence[Snapshot | None]], None]


def pages(count: int) -> int:
    """How many list pages a scope of `count` snapshots takes.

    Examples
    --------
    >>> pages(0), pages(1000), pages(20_000), pages(20_001)
    (0, 1, 20, 21)
    """
    return math.ceil(count / LIST_PAGE)


def lists_rest(count: int, still_wanted: int) -> bool:
    """After the first page: whether the other pages of a scope of `count` snapshots are
    no more requests than one GET for each of the `still_wanted` snapshots.

    Examples
    --------
    >>> lists_rest(20_000, 4), lists_rest(20_000, 19), lists_rest(900, 2)
    (False, True, True)
    """
    return pages(count) - 1 <= still_wanted


async def read_wanted(
    reader: Reader,
    scope: Scope,
    wanted: np.ndarray,
    lookup: Lookup,
    ids_at: Callable[[np.ndarray], list[str]],
    found: Found,
    *,
    index: PlanIndex | None = None,
    on_listed: Callable[[], None] | None = None,
    skip: float = 0.0,
) -> None:
    """Read the snapshots of `scope` that `wanted` marks, the cheaper way (see the module
    docstring); each is handed to `found` as soon as its state is known.

    Parameters
    ----------
    reader : Reader
        The run's reader (limiter, retries, breaker, auth).
    scope : (project_id, region_id)
    wanted : numpy.ndarray of bool
        A mask over positions; cleared as snapshots are found.
    lookup : Lookup
        Finds the positions of a page's snapshots.
    ids_at : callable
        The snapshot ids at some positions (for GETs).
    found : callable
        Called with positions (int64) and their `Snapshot` (None: does not exist), a page's
        worth or a GET's answer at a time.
    index : PlanIndex, optional
        The plan `lookup` finds positions in: the listing then remembers plan ids by
        position (`Reader.read_listed`).
    on_listed : callable, optional
        Called once the scope answered its first page (it exists), or at once when it is
        read by GET only.
    skip : float
        The share of the listing likely to hold nothing wanted at its start (a resume's
        done snapshots): a listing goes on past it after its first page
        (`Reader.read_listed`'s ``start``), and reads it last.
    """
    remaining = int(wanted.sum())
    if remaining > 1:
        first = listed(await reader.page(*scope, 0), scope, lookup)
        _pick(first, wanted, found)
        if on_listed is not None:
            on_listed()
        if lists_rest(first.count, int(wanted.sum())):
            start = int(first.count * skip)
            listing = reader.read_listed(
                *scope, first=first, lookup=lookup, index=index, start=start
            )
            async for page in listing:
                _pick(page, wanted, found)
            if reader.consistent:  # a consistent listing: what it lacks does not exist
                missing = np.flatnonzero(wanted)
                wanted[missing] = False
                for start in range(0, len(missing), GET_BATCH):
                    chunk = missing[start : start + GET_BATCH]
                    found(chunk, [None] * len(chunk))
                return
    elif on_listed is not None:
        on_listed()
    await _get_each(reader, scope, wanted, ids_at, found)


async def _get_each(reader, scope, wanted, ids_at, found) -> None:
    """One GET per wanted position, `GET_BATCH` at a time; each is found as its answer
    arrives."""
    positions = np.flatnonzero(wanted)
    wanted[positions] = False

    async def get(position: int, snapshot_id: str) -> None:
        snapshot = await reader.get((*scope, snapshot_id))
        found(
            np.array([position], dtype=np.int64),
            [Snapshot.from_wire(snapshot) if snapshot else None],
        )

    for start in range(0, len(positions), GET_BATCH):
        chunk = positions[start : start + GET_BATCH]
        pairs = zip(chunk.tolist(), ids_at(chunk), strict=True)
        await asyncio.gather(*(get(position, sid) for position, sid in pairs))


def _pick(page: Listed, wanted: np.ndarray, found: Found) -> None:
    """Hand the rows of `page` that are wanted to `found` as `Snapshot`s (and want them no
    more), in the page's order."""
    positions = page.positions
    if positions is None or not len(positions):
        return
    hit = positions >= 0
    hit[hit] = wanted[positions[hit]]
    at = np.flatnonzero(hit)  # indexes into the page
    if len(at):
        chosen = positions[at]
        wanted[chosen] = False
        rows = page.rows
        found(chosen, [Snapshot.from_wire(rows[i]) for i in at.tolist()])


async def read_keys(
    reader: Reader, keys: Sequence[Key], keep: Callable[[Snapshot], Any] | None = None
) -> dict[Key, Any]:
    """The current state of some snapshots, each scope read by `read_wanted`.

    Parameters
    ----------
    reader : Reader
        The reader.
    keys : sequence of (project_id, region_id, snapshot_id)
        The snapshots (ids in any case).
    keep : callable, optional
        Applied to each `Snapshot` found (only what it returns is held).

    Returns
    -------
    dict
        Each key -> its `Snapshot` (or ``keep(snapshot)``); None for one that does not exist.
    """
    keep = keep or (lambda snapshot: snapshot)
    codes: dict[Scope, int] = {}
    scope_codes = np.array([codes.setdefault(k[:2], len(codes)) for k in keys], dtype=np.int64)
    index = PlanIndex.build(scope_codes, tuple(codes), keys_of(k[2] for k in keys))
    out: dict[Key, Any] = {}

    def found(positions: np.ndarray, snapshots: Sequence[Snapshot | None]) -> None:
        for position, snapshot in zip(positions.tolist(), snapshots, strict=True):
            out[keys[position]] = None if snapshot is None else keep(snapshot)

    def ids_at(positions: np.ndarray) -> list[str]:
        return [keys[p][2] for p in positions.tolist()]

    for scope in index.scopes:
        await read_wanted(reader, scope, index.in_scope(scope), index, ids_at, found)
    return out
