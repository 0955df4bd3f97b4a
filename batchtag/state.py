"""The apply side of reading state: which snapshots to read before sending, and the state kept.

Before an apply run sends anything, the current state of (some of) its snapshots is read
with the shared state reader (`batchtag.reader.Reader`: list pages or one GET per
snapshot, whichever sends fewer requests), under the run's limiter, retries, breaker and
auth. The engine then sends, per snapshot, only the keys that change
(`batchtag.diff.diff_entry(...).body`): a snapshot with no change is `noop` with no request,
one missing from the state is `not_found` with no request.

Which scopes are read (`check_current`):

- ``True``: every snapshot of the plan.
- ``False`` (``--no-check-current``): none, except entries that need the current tags
  (rename, clear + set: `PlanEntry.needs_current`).
- ``None`` (auto, the default): a scope is read when its list pages are fewer requests than
  the writes the plan has for it (``ceil(count / 1000) < writes``); the first list page
  (limit 1000) gives ``count`` and is kept as the first page of the read, so deciding costs
  no extra request when the scope is read. A dry run in auto mode reads nothing (it stays
  offline, as before); ``--dry-run --check-current`` shows the minimal bodies.

Memory: per snapshot read, one flat tuple ``(name, task_id, n_user, k1, v1, k2, v2, ...)``
(user tags first, then read-only ones; keys and values interned, so repeated tags are held
once) in a dict keyed by the plan entry's own `snapshot_id` string, about 150-250 bytes a
snapshot with a few tags; the engine takes each one out when it starts the snapshot, so the
state shrinks as the run goes.

A snapshot changed by someone else between the read and the write: the merge patch still
names only the keys this run changes, so their other edits survive; a key both changed is
left as this run sets it (the last write wins), and a snapshot that only looked unchanged
is `noop`.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batchtag.client import LIST_PAGE
from batchtag.plan import PlanEntry

if TYPE_CHECKING:  # the reader imports the engine, which imports this module
    from batchtag.reader import Reader

NOT_READ = object()  # `State.take`: the snapshot's state was not read
NOT_FOUND_TEXT = "not found when the state was read"
Scope = tuple[int, int]
Compact = tuple  # (name, task_id, n_user, k1, v1, ...): see `compact`


def compact(snapshot: dict[str, Any]) -> Compact:
    """What the run keeps of a snapshot: name, task_id, user then read-only tags.

    Examples
    --------
    >>> compact({"name": "db", "task_id": None, "tags": [
    ...     {"key": "env", "value": "prod", "read_only": False},
    ...     {"key": "os", "value": "linux", "read_only": True}]})
    ('db', None, 1, 'env', 'prod', 'os', 'linux')
    """
    user: list[str] = []
    ro: list[str] = []
    for tag in snapshot.get("tags") or ():
        (ro if tag.get("read_only") else user).extend(
            (sys.intern(tag["key"]), sys.intern(tag["value"]))
        )
    return (snapshot.get("name"), snapshot.get("task_id"), len(user) // 2, *user, *ro)


def expand(state: Compact) -> dict[str, Any]:
    """The snapshot JSON (name, task_id, tags) back from `compact`, for `diff_entry`.

    Examples
    --------
    >>> expand(("db", None, 1, "env", "prod", "os", "linux"))["tags"][1]
    {'key': 'os', 'value': 'linux', 'read_only': True}
    """
    name, task_id, n_user = state[:3]
    flat = state[3:]
    tags = [
        {"key": flat[i], "value": flat[i + 1], "read_only": i >= 2 * n_user}
        for i in range(0, len(flat), 2)
    ]
    return {"name": name, "task_id": task_id, "tags": tags}


@dataclass
class State:
    """The state read before sending: per scope, snapshot_id → compact state or None."""

    scopes: dict[Scope, dict[str, Compact | None]] = field(default_factory=dict)
    requests: int = 0  # requests the read sent (pages, GETs, count)
    read: int = 0  # snapshots whose state was read (found or not)

    def take(self, entry: PlanEntry) -> dict[str, Any] | None | object:
        """The snapshot JSON for `entry` (None: not found), or `NOT_READ`; forgets it."""
        known = self.scopes.get((entry.project_id, entry.region_id))
        if known is None:
            return NOT_READ
        state = known.pop(entry.snapshot_id, NOT_READ)
        return state if state is None or state is NOT_READ else expand(state)

    def peek(self, entry: PlanEntry) -> dict[str, Any] | None | object:
        """As `take`, but keeps the state."""
        known = self.scopes.get((entry.project_id, entry.region_id))
        state = NOT_READ if known is None else known.get(entry.snapshot_id, NOT_READ)
        return state if state is None or state is NOT_READ else expand(state)

    def __len__(self) -> int:
        return sum(len(s) for s in self.scopes.values())


def writes_needed(state: State | None, entries: Iterable[PlanEntry]) -> int:
    """How many snapshots a run of `entries` would write, given what was read: one not read
    is written blind (counts), one not found or with nothing to change does not.

    Parameters
    ----------
    state : State or None
        What was read (None: nothing).
    entries : iterable of PlanEntry

    Returns
    -------
    int
        Snapshots that get a PATCH (what ``max_changes`` limits).
    """
    from batchtag.diff import diff_entry  # pandas: only when a guard asks

    count = 0
    for entry in entries:
        snapshot = NOT_READ if state is None else state.peek(entry)
        if snapshot is NOT_READ:
            count += 1
        elif snapshot is not None and diff_entry(entry, snapshot).body:
            count += 1
    return count


async def read_state(reader: Reader, entries: list[PlanEntry], check_current: bool | None) -> State:
    """Read what the run needs to know before it sends (see the module docstring).

    Parameters
    ----------
    reader : Reader
        Shares the run's client, limiter, breaker and retry counters.
    entries : list of PlanEntry
        The snapshots the run will handle (pending ones on a resume).
    check_current : bool or None
        True: read all; False: only entries that need current tags; None: auto per scope.

    Returns
    -------
    State
        What was read; scopes not read are absent.
    """
    state = State()
    by_scope: dict[Scope, list[PlanEntry]] = {}
    for entry in entries:
        by_scope.setdefault((entry.project_id, entry.region_id), []).append(entry)
    for scope, chosen in by_scope.items():
        first = None
        if check_current is None and len(chosen) > 1:
            first = await reader.page(*scope, 0)
            if math.ceil(int(first.get("count", 0)) / LIST_PAGE) >= len(chosen):
                chosen = [e for e in chosen if e.needs_current]  # blind writes are cheaper
                first = _first_or_none(first, chosen)
        elif not check_current:
            chosen = [e for e in chosen if e.needs_current]
        if chosen:
            state.scopes[scope] = await _read_scope(reader, scope, chosen, first)
            state.read += len(chosen)
    state.requests = reader.stats.requests
    return state


def _first_or_none(first: dict, chosen: list[PlanEntry]) -> dict | None:
    """Keep an already-fetched first page only if it can serve the remaining entries."""
    return first if len(chosen) > 1 else None


async def _read_scope(
    reader: Reader, scope: Scope, entries: list[PlanEntry], first: dict | None
) -> dict[str, Compact | None]:
    """The compact state of `entries` (one scope): pages or GETs, whichever are fewer."""
    wanted = {_folded(e.snapshot_id): e.snapshot_id for e in entries}
    found: dict[str, Compact | None] = {}
    if len(wanted) > 1:
        first = first if first is not None else await reader.page(*scope, 0)
        _pick(first.get("results") or (), wanted, found)
        pages = math.ceil(int(first.get("count", 0)) / LIST_PAGE)
        if pages <= 1 + len(wanted):
            async for page in reader.read_scope(*scope, first=first):
                _pick(page, wanted, found)
            if reader.consistent:
                wanted.clear()  # a consistent listing: what it lacks does not exist
    if wanted:  # one GET each: fewer requests than the pages, or the listing changed
        sids = list(wanted.values())
        snapshots = await asyncio.gather(*(reader.get((*scope, sid)) for sid in sids))
        found.update((s, compact(j)) for s, j in zip(sids, snapshots, strict=True) if j)
    for entry in entries:  # the rest does not exist: None (not found, no request)
        found.setdefault(entry.snapshot_id, None)
    return found


def _folded(snapshot_id: str) -> str:
    """A case-insensitive identity that is the id itself when it is already lower case
    (a UUID as the API writes it), so the lookup table holds no second string."""
    return snapshot_id if snapshot_id.islower() else snapshot_id.lower()


def _pick(page: Iterable[dict], wanted: dict, found: dict) -> None:
    for snapshot in page:
        sid = wanted.pop(_folded(snapshot["id"]), None)
        if sid is not None:
            found[sid] = compact(snapshot)
