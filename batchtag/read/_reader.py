"""The state reader: what a scope holds, or what a set of snapshots looks like now.

Reads share the writes' pieces: the `RateLimiter` (a 429 slows every request down), the
retry classes and policies of `batchtag.gcore._retry` (5xx, timeouts and dropped connections are
retried with backoff, a `Breaker` stops retry storms) and the run's `Client`. A 401/403
raises `AbortRun` (exit 3); a scope that does not exist raises `UsageError` (exit 2).

Listing: the first page (limit 1000) gives `count`; the remaining pages are fetched
concurrently, in a window of `2 x concurrency` pages, and handed out in listing order.
Offset paging over a scope that changes can skip or repeat snapshots: pages are deduplicated
by id, and a pass that looks inconsistent (count changed between pages, duplicates, fewer
snapshots than `count`) is followed by another pass that yields only snapshots not seen yet,
up to `max_passes`; what could not be reconciled is logged as a warning with numbers.

Examples
--------
>>> async with Client(settings) as client:                      # doctest: +SKIP
...     reader = Reader(client, concurrency=16, limiter=RateLimiter(50))
...     async for page in reader.read_scope(1, 1):
...         ...                                                   # a list of snapshot dicts

Which snapshots to read how (pages or GETs) is decided in one place:
`batchtag.read._strategy.read_wanted`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np

from batchtag.defaults import default
from batchtag.errors import AbortRun, ApiError, UsageError, option
from batchtag.gcore import (
    GONE,
    LIST_PAGE,
    RATE_LIMIT,
    RETRY_CLASSES,
    TRANSIENT,
    Attempts,
    Breaker,
    Client,
    RateLimiter,
    RetrySettings,
    classify,
    fatal_reason,
    row_keys,
    take_rows,
)
from batchtag.model import PlanIndex, Scope
from batchtag.read._idset import Seen, id_set
from batchtag.read._slots import Slots

log = logging.getLogger("batchtag.read._reader")


class ScopeError(Exception):
    """A scope that could not be read (403, 404, 5xx or a dropped connection after its
    retries), when a reader reads several (`Reader` with ``isolate_scopes``)."""

    def __init__(self, project_id: int, region_id: int, error: ApiError):
        self.project_id, self.region_id, self.error = project_id, region_id, error
        super().__init__(f"scope {project_id}/{region_id}: {error}")

    def as_dict(self) -> dict[str, Any]:
        """``{"project_id", "region_id", "error"}``, for summaries."""
        return {
            "project_id": self.project_id,
            "region_id": self.region_id,
            "error": str(self.error),
        }

    def run_error(self) -> BaseException:
        """What a read of this scope alone raises: a 404 is a scope that does not exist
        (UsageError, exit 2), a 403 a key without access (AbortRun, exit 3), else the error."""
        kind = classify(self.error)
        if kind == GONE:
            where = (
                f"{option('project_id', self.project_id)}, {option('region_id', self.region_id)}"
            )
            return UsageError(f"{where}: no such project/region ({self.error})")
        fatal = fatal_reason(kind, self.error)
        return AbortRun(fatal) if fatal is not None else self.error


MAX_PASSES = 3
Key = tuple[int, int, str]  # (project_id, region_id, snapshot_id)
Progress = Callable[[int, int], None]  # (snapshots read so far, total expected)


class Lookup(Protocol):
    """Plan positions by snapshot key (`PlanIndex`, `batchtag.model.PrefixLookup`)."""

    def positions(self, scope: Scope, keys: np.ndarray) -> np.ndarray: ...


class Listed(NamedTuple):
    """A list page's rows with their keys (`batchtag.model.id_bytes`) and, when a plan is
    at hand, their plan positions (-1: not in the plan): each row keyed and looked up once,
    for the listing's dedup and for the caller alike."""

    rows: Any  # a list of snapshot dicts, or a pyarrow.Table (`batchtag.gcore.TableClient`)
    keys: np.ndarray
    positions: np.ndarray | None
    count: int  # the page's ``count``: snapshots in the scope


def listed(page: dict, scope: Scope, lookup: Lookup | None = None) -> Listed:
    """A list page (``{"count", "results"}``) keyed, and looked up in `lookup` if given."""
    rows = page.get("results") or []
    keys = row_keys(rows)
    positions = None if lookup is None else lookup.positions(scope, keys)
    return Listed(rows, keys, positions, int(page.get("count", 0)))


@dataclass
class ReadStats:
    """What reading cost and found; `warnings` repeats what was logged."""

    requests: int = 0
    pages: int = 0
    passes: int = 0
    duplicates: int = 0
    retries: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    # Snapshots a listing may have missed when its last pass still changed (an estimate,
    # summed over scopes; 0: every listing ended consistent).
    missing: int = 0


@dataclass
class _Pass:
    counts: list[int] = field(default_factory=list)
    listed: int = 0
    duplicates: int = 0
    ids: Seen | None = None  # every id this pass listed (kept on re-reads only)

    @property
    def consistent(self) -> bool:
        return len(set(self.counts)) == 1 and not self.duplicates and self.listed == self.counts[-1]


def _missing_estimate(last: _Pass) -> int:
    """How many snapshots an inconsistent last pass may have missed: what the API counted
    beyond what the pass listed, or how far the count moved meanwhile (each deletion ahead
    of the reading position shifts a snapshot past it), or the duplicates it met (each an
    insertion, maybe with a deletion the count hides); at least one."""
    shortfall = last.counts[-1] - last.listed
    moved = max(last.counts) - min(last.counts)
    return max(shortfall, moved, last.duplicates, 1)


class Reader:
    """Reads scopes and snapshots under one limiter, retry policy and breaker.

    Parameters
    ----------
    client : Client
        An open client (auth, timeouts, session).
    concurrency : int
        Requests in flight at most.
    limiter : RateLimiter, optional
        Shared with the writes of the same run; a new one at the default rate otherwise.
    retry : RetrySettings, optional
        Attempt budgets per response class.
    breaker : Breaker, optional
        Retry budget; "abort" raises AbortRun.
    sleep : callable
        Awaited for backoff delays (tests pass a fake).
    progress : callable, optional
        Called as ``progress(read, total)`` after every page.
    on_retry : callable, optional
        Called with the retry class of every retry.
    max_passes : int
        Listing passes at most when a scope changes while it is read.
    isolate_scopes : bool
        Reading several scopes where one failing must not stop the others: a list page
        that fails for good (403, 404, retries spent) raises `ScopeError` naming its scope
        (a 401 still aborts everything).
    items : str
        What the listed scopes hold ("snapshots", "volumes"), for warnings.
    """

    def __init__(
        self,
        client: Client,
        *,
        concurrency: int = default("concurrency"),
        limiter: RateLimiter | None = None,
        retry: RetrySettings | None = None,
        breaker: Breaker | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        progress: Progress | None = None,
        on_retry: Callable[[str], None] | None = None,
        max_passes: int = MAX_PASSES,
        isolate_scopes: bool = False,
        items: str = "snapshots",
    ):
        self.client = client
        self.isolate_scopes = isolate_scopes
        self.concurrency = concurrency
        self.limiter = limiter or RateLimiter(default("rate"))
        self.policies = (retry or RetrySettings()).policies()
        self.breaker = breaker or Breaker()
        self.sleep = sleep
        self.progress = progress
        self.on_retry = on_retry
        self.max_passes = max_passes
        self.items = items
        self.stats = ReadStats()
        self._slots = Slots(concurrency)
        self._read = 0
        self._base = 0  # snapshots read before the current scope
        self.consistent = True  # did the last read_scope end with a consistent pass?

    def limit(self, concurrency: int) -> None:
        """Requests in flight at most from now on (0: none start, a pause; a listing's
        read-ahead window stays as `concurrency` built it)."""
        self._slots.resize(concurrency)

    # -- one request ----------------------------------------------------------------------

    async def request(self, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """Send one read with the engine's rules; final failures raise ApiError."""
        attempts = Attempts()
        while True:
            async with self._slots:
                await self.limiter.acquire()
                self.stats.requests += 1
                try:
                    result = await fetch()
                except ApiError as error:
                    delay = await self._failed(error, attempts)
                else:
                    self.limiter.on_success()
                    self.breaker.record(False)
                    return result
            if delay:
                await self.sleep(delay)  # off the slot: others keep reading

    async def _failed(self, error: ApiError, attempts: Attempts) -> float:
        kind = classify(error)
        fatal = fatal_reason(kind, error)
        if fatal is not None and not (self.isolate_scopes and error.status == 403):
            raise AbortRun(fatal)  # (a 403 of one scope: no access there, not a wrong key)
        if kind not in RETRY_CLASSES:
            raise error
        verdict = self.breaker.record(kind == TRANSIENT)
        if verdict == "abort":
            raise AbortRun("circuit breaker: most recent reads kept failing (5xx/timeouts)")
        if kind == RATE_LIMIT:
            self.limiter.on_throttle(error.retry_after)
        delay = attempts.next_delay(kind, error, self.policies)
        if delay is None:
            raise error
        self.stats.retries[kind] += 1
        if self.on_retry is not None:
            self.on_retry(kind)
        if verdict == "pause":
            delay = max(delay, self.breaker.cooldown)
        return 0.0 if kind == RATE_LIMIT else delay

    async def page(self, project_id: int, region_id: int, offset: int, limit: int = LIST_PAGE):
        """One list page: ``{"count": total, "results": [...]}``."""

        def fetch() -> Awaitable[dict]:
            return self.client.list_page(project_id, region_id, limit=limit, offset=offset)

        try:
            page = await self.request(fetch)
        except ApiError as error:
            if self.isolate_scopes:
                raise ScopeError(project_id, region_id, error) from None
            if classify(error) == GONE:
                where = f"{option('project_id', project_id)}, {option('region_id', region_id)}"
                raise UsageError(f"{where}: no such project/region ({error})") from None
            raise
        self.stats.pages += 1
        return page

    async def count(self, project_id: int, region_id: int) -> int:
        """How many snapshots a scope holds (one ``limit=1`` request)."""
        return int((await self.page(project_id, region_id, 0, limit=1)).get("count", 0))

    async def get(self, key: Key) -> dict | None:
        """One snapshot by GET, or None when it does not exist (404)."""
        try:
            snapshot = await self.request(lambda: self.client.get_snapshot(*key))
        except ApiError as error:
            if classify(error) == GONE:
                return None
            raise
        return snapshot

    # -- a whole scope --------------------------------------------------------------------

    async def read_scope(
        self,
        project_id: int,
        region_id: int,
        *,
        first: dict | None = None,
        start: int = 0,
    ) -> AsyncIterator[Any]:
        """Every snapshot of a scope, page by page in listing order, each one once.

        Parameters
        ----------
        project_id, region_id : int
            The scope.
        first : dict, optional
            The page at offset 0 when the caller already has it.
        start : int
            After the first page, the listing is read from this offset (rounded down to a
            page) to its end, then from the second page up to it: the pages the caller
            wants first (a resume's pending snapshots, past those done) come first. The
            consistency checks do not depend on the order.

        Yields
        ------
        list of dict (or pyarrow.Table, from a `batchtag.gcore.TableClient`)
            Snapshot objects as the API returns them, never one id twice.
        """
        scope = (project_id, region_id)
        page_0 = None if first is None else listed(first, scope)
        async for page in self.read_listed(project_id, region_id, first=page_0, start=start):
            yield page.rows

    async def read_listed(
        self,
        project_id: int,
        region_id: int,
        *,
        first: Listed | None = None,
        lookup: Lookup | None = None,
        index: PlanIndex | None = None,
        start: int = 0,
    ) -> AsyncIterator[Listed]:
        """`read_scope`, each page with the keys and plan positions of its rows.

        Parameters
        ----------
        project_id, region_id : int
            The scope.
        first : Listed, optional
            The page at offset 0 (`listed`), when the caller already has it.
        lookup : Lookup, optional
            Where each page's keys are looked up (once: the listing remembers the ids by
            these positions when there is an `index`, and they are yielded).
        index : PlanIndex, optional
            The plan the positions are of: the ids it has in the scope are then remembered
            by their plan position (a byte each, `batchtag.read._idset.PlanIdSet`), not by
            their 16-byte key.
        start : int
            After the first page, the listing is read from this offset (rounded down to a
            page) to its end, then from the second page up to it: the pages the caller
            wants first (a resume's pending snapshots, past those done) come first. The
            consistency checks do not depend on the order.

        Yields
        ------
        Listed
            The rows not handed out before, their keys and positions.
        """
        scope = (project_id, region_id)
        seen = id_set(index, scope)  # no Python object per id
        passes: list[_Pass] = []
        self._base = self._read
        while len(passes) < self.max_passes:
            current = _Pass(ids=id_set(index, scope) if passes else None)
            passes.append(current)
            self.stats.passes += 1
            async for page in self._pass(scope, seen, current, first, lookup, start):
                yield page
            first = None
            if current.consistent:
                break
        self.consistent = passes[-1].consistent
        self.stats.duplicates += sum(p.duplicates for p in passes)
        self._report(project_id, region_id, passes, seen)

    async def _pass(
        self,
        scope: Scope,
        seen: Seen,
        current: _Pass,
        first: Listed | None,
        lookup,
        start: int = 0,
    ) -> AsyncIterator[Listed]:
        if first is None:
            first = listed(await self.page(*scope, 0), scope, lookup)
        yield self._take(first, seen, current)
        target = first.count
        window = max(2, 2 * self.concurrency)  # pages scheduled ahead of the one awaited
        start = max(LIST_PAGE, start - start % LIST_PAGE)
        tail, head = start, LIST_PAGE  # the next offsets of [start, target), [LIST_PAGE, start)

        def next_offset() -> int | None:
            nonlocal tail, head
            if tail < target:  # (re-checked: a count that grows extends the listing)
                tail += LIST_PAGE
                return tail - LIST_PAGE
            if head < min(start, target):
                head += LIST_PAGE
                return head - LIST_PAGE
            return None

        scheduled: deque[asyncio.Task] = deque()
        try:
            while True:
                while len(scheduled) < window and (offset := next_offset()) is not None:
                    scheduled.append(asyncio.create_task(self.page(*scope, offset)))
                if not scheduled:
                    break
                page = listed(await scheduled.popleft(), scope, lookup)
                target = max(target, page.count)
                yield self._take(page, seen, current)
        finally:
            for task in scheduled:
                task.cancel()
            if scheduled:
                await asyncio.gather(*scheduled, return_exceptions=True)

    def _take(self, page: Listed, seen: Seen, current: _Pass) -> Listed:
        """The rows of `page` not handed out before; bookkeeping for consistency.

        The first pass's ids are `seen` itself; a later pass keeps its own set as well."""
        rows, keys, positions, count = page
        current.counts.append(count)
        listed_ids = seen if current.ids is None else current.ids
        new = listed_ids.add(keys, positions)
        fresh_count = int(new.sum())
        current.duplicates += len(keys) - fresh_count
        current.listed += fresh_count
        if listed_ids is not seen:  # a later pass: hand out only what no pass handed out yet
            fresh_at = np.flatnonzero(new)
            new[fresh_at] = seen.add(
                keys[fresh_at], None if positions is None else positions[fresh_at]
            )
            fresh_count = int(new.sum())
        self._read += fresh_count
        if self.progress is not None:
            self.progress(self._read, max(self._read, self._base + count))
        if fresh_count == len(keys):
            return page
        return Listed(
            take_rows(rows, new), keys[new], None if positions is None else positions[new], count
        )

    def _report(self, project_id: int, region_id: int, passes: list[_Pass], seen: Seen) -> None:
        first, last = passes[0], passes[-1]
        if first.consistent:
            return
        counts = sorted(set(c for p in passes for c in p.counts))
        text = (
            f"the {self.items} of project {project_id} / region {region_id} changed while "
            "they were read: "
            f"count {first.counts[0]} -> {last.counts[-1]} (seen {', '.join(map(str, counts))}), "
            f"{first.duplicates} duplicate(s) dropped, read in {len(passes)} passes; "
            f"{len(seen)} {self.items} returned"
        )
        if last.ids is not None:
            # every id a later pass listed is in `seen` too
            text += f", {len(seen) - len(last.ids)} of them not listed by the last pass"
            text += " (deleted meanwhile?)"
        if not last.consistent:
            missing = _missing_estimate(last)
            self.stats.missing += missing
            text += (
                f"; the last pass still changed: the inventory may be incomplete (~{missing} "
                "snapshot(s) may be missing)"
            )
        self.warn(text)

    def warn(self, text: str) -> None:
        self.stats.warnings.append(text)
        log.warning("%s", text)
