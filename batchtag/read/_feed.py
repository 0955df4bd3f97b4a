"""The entries of a run handed to the engine as the state they need becomes known.

An apply run does not wait for the state read to end before it sends (unless ``max_changes``
needs the whole state first: it counts the snapshots that would really change; the feed is
then all ready when the engine starts, `batchtag.commands._apply_run`): the read (`batchtag.read._state.read_state`) announces plan positions as
they become ready, and the engine takes entries from an `EntryFeed` in that order:

- snapshots the run writes blind (not chosen for reading) as soon as their scope is
  decided (and, when the scope is listed, has answered its first page);
- snapshots found on a list page as the page is picked over;
- snapshots a consistent listing lacks once it ends, and those read by GET as each answer
  arrives.

When no entry is ready the feed answers `NOT_YET` (the engine pauses, see
`batchtag.send._engine.Engine.refill`, and is refilled at the next announcement); its
``on_hungry`` hears when the engine starts and stops waiting so, and its ``on_ahead`` when
the entries ready and not handed out yet reach ``ahead`` or fall below it (the reader's
concurrency follows both: the full read concurrency while the engine has nothing to send,
none while enough is ready ahead of it, a little in between). A state known
before the run is announced all at once (`EntryFeed.close` right away). When the
engine stops (abort, interrupt), iterating the feed gives every entry not handed out yet,
ready or not, so each is reported ``skipped``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import numpy as np

from batchtag.model import CHUNK, PlanEntry, entries_at, smallest_uint


class _NotYet:
    def __repr__(self) -> str:
        return "NOT_YET"


NOT_YET = _NotYet()  # `EntryFeed.__next__`: no entry is ready now, more will be


class Consumer(Protocol):
    """What the feed needs of the engine that takes its entries."""

    @property
    def stopping(self) -> bool: ...

    def refill(self) -> None: ...


class EntryFeed:
    """Plan entries in the order their positions are announced ready.

    Parameters
    ----------
    entries : sequence of PlanEntry
        The plan's entries.
    pending : numpy.ndarray of bool, optional
        A mask over positions: the entries the run handles (all when None).
    on_hungry : callable, optional
        Called with True when the feed first answers `NOT_YET` (its consumer waits for
        entries: nothing ready, more to come), with False at the next announcement.
    ahead : int
        How many entries ready and not handed out yet count as enough ahead of the
        consumer (0: never).
    on_ahead : callable, optional
        Called with True when the entries ready and not handed out reach `ahead`, with
        False when they fall below it again.

    Examples
    --------
    >>> feed = EntryFeed(["a", "b", "c", "d"])
    >>> next(feed)
    NOT_YET
    >>> feed.announce(np.array([2]))
    >>> feed.announce(np.array([1, 0]))
    >>> next(feed), next(feed), next(feed), next(feed)
    ('c', 'a', 'b', NOT_YET)
    >>> feed.close()  # the read is over: what was never announced is ready as it is
    >>> list(feed)
    ['d']
    """

    def __init__(
        self,
        entries: Sequence[PlanEntry],
        pending: np.ndarray | None = None,
        on_hungry: Callable[[bool], None] | None = None,
        *,
        ahead: int = 0,
        on_ahead: Callable[[bool], None] | None = None,
    ):
        self.entries = entries
        total = len(entries)
        self._unannounced = np.ones(total, dtype=bool) if pending is None else pending.copy()
        self._dtype = smallest_uint(total)  # of the positions held (a listing runs ahead)
        self._ready: deque[np.ndarray] = deque()
        self._current: Iterator[PlanEntry] = iter(())
        self._closed = False  # no more announcements: every position is ready
        self._consumer: Consumer | None = None
        self._any = asyncio.Event()  # something was announced, or the feed closed
        self._on_hungry = on_hungry
        self._hungry = True  # nothing was ready when last asked (nothing is, at first)
        self._backlog = 0  # entries ready, not handed out yet
        self._ahead_at = ahead if ahead > 0 else -1  # (-1: never reached: no check per entry)
        self._ahead = False  # the backlog is at `ahead` or more
        self._on_ahead = on_ahead

    @property
    def hungry(self) -> bool:
        """Whether the feed last answered `NOT_YET` and nothing was announced since (true
        before anything is announced)."""
        return self._hungry

    @property
    def ahead(self) -> bool:
        """Whether the entries ready and not handed out yet are `ahead` or more."""
        return self._ahead

    def attach(self, consumer: Consumer) -> None:
        """Refill `consumer` at every announcement; hand it all that is left once it stops."""
        self._consumer = consumer

    def announce(self, positions: np.ndarray) -> None:
        """The entries at `positions` are ready (each position is announced once); they are
        handed out after those announced before, in plan order among themselves."""
        if self._closed or not len(positions):
            return
        self._unannounced[positions] = False
        self._fed()
        self._ready.append(
            np.sort(positions).astype(self._dtype, copy=False)
        )  # `PlanEntries.at` wants them ascending
        self._grew(len(positions))
        self._ready_now()

    def close(self) -> None:
        """No more announcements: every entry not announced yet is ready as it is."""
        if not self._closed:
            self._release_rest()
            self._fed()
            self._ready_now()

    async def wait_ready(self) -> None:
        """Until an entry is ready or the feed is closed."""
        await self._any.wait()

    def _release_rest(self) -> None:
        rest = np.flatnonzero(self._unannounced)
        self._unannounced[rest] = False
        if len(rest):
            self._ready.append(rest.astype(self._dtype))
        self._closed = True
        self._grew(len(rest))

    def _grew(self, count: int) -> None:
        self._backlog += count
        if not self._ahead and self._backlog >= self._ahead_at >= 0:
            self._set_ahead(True)

    def _set_ahead(self, ahead: bool) -> None:
        self._ahead = ahead
        if self._on_ahead is not None:
            self._on_ahead(ahead)

    def _fed(self) -> None:
        if self._hungry:
            self._hungry = False
            if self._on_hungry is not None:
                self._on_hungry(False)

    def _ready_now(self) -> None:
        self._any.set()
        if self._consumer is not None:
            self._consumer.refill()

    def __iter__(self) -> EntryFeed:
        return self

    def __next__(self) -> PlanEntry | _NotYet:
        entry = next(self._current, None)
        if entry is None:
            entry = self._next_chunk()
            if entry is NOT_YET:
                return entry
        self._backlog -= 1
        if self._ahead and self._backlog < self._ahead_at:
            self._set_ahead(False)
        return entry

    def _next_chunk(self) -> PlanEntry | _NotYet:
        """The first entry of the next ready chunk; raises StopIteration once the feed is
        closed and handed out, `NOT_YET` when nothing is ready."""
        if not self._closed and self._consumer is not None and self._consumer.stopping:
            self._release_rest()  # for the engine's skipped rows
        while self._ready:
            positions = self._ready.popleft()
            if len(positions) > CHUNK:  # entries made a chunk at a time
                self._ready.appendleft(positions[CHUNK:])
                positions = positions[:CHUNK]
            self._current = iter(entries_at(self.entries, positions))
            entry = next(self._current, None)
            if entry is not None:
                return entry
        if self._closed:
            raise StopIteration
        if not self._hungry:
            self._hungry = True
            if self._on_hungry is not None:
                self._on_hungry(True)
        return NOT_YET
