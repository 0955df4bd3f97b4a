"""Sets of the snapshot ids a listing returned, with no Python object per id.

The reader keeps every id a scope's listing handed out, to drop the duplicates offset
paging can return and to tell a consistent pass from one that changed (see
`batchtag.read._reader`). `IdSet` holds the keys themselves (`batchtag.model._index.id_bytes`, 16
bytes an id); `PlanIdSet` answers the same for a read that has a plan's index at hand: an id
the plan has in that scope is a byte in a mask over the plan's positions (the state read
of an apply or a plan lists mostly such ids, and has looked their positions up already:
`batchtag.read._reader.Listed`), and only the others are held as keys.

`IdSet` holds each key as two 8-byte integers (first half, second half): integers sort
and binary-search several times faster than 16-byte strings (a 1M listing costs ~0.7 s
of CPU, ~4.1 s as `V16` blocks), merging two sorted blocks is a linear timsort, and the
memory is the same 16 bytes a key.

Examples
--------
>>> from batchtag.model import PlanEntry
>>> from batchtag.model import PlanIndex, keys_of
>>> index = PlanIndex.of([PlanEntry(1, 1, "a"), PlanEntry(1, 1, "b")])
>>> seen = PlanIdSet(index, (1, 1))
>>> seen.add(keys_of(["a", "x", "a"])).tolist(), seen.add(keys_of(["b", "x", "B"])).tolist()
([True, True, False], [True, False, True])
>>> len(seen)
4
"""

from __future__ import annotations

import numpy as np

from batchtag.model import PlanIndex, Scope, uuid_bytes

Halves = tuple[np.ndarray, np.ndarray]  # (first halves, second halves), by first half


class IdSet:
    """A set of snapshot keys (`id_bytes`), 16 bytes each in sorted numpy blocks
    (~log2(n / MERGE) blocks; no Python object per key, no copy of the whole set as a long
    listing ends).

    Examples
    --------
    >>> from batchtag.model._index import keys_of
    >>> seen = IdSet()
    >>> seen.add(keys_of(["a", "b", "a"])).tolist(), seen.add(keys_of(["b", "c"])).tolist()
    ([True, True, False], [False, True])
    >>> len(seen), seen.contains(keys_of(["c", "d"])).tolist()
    (3, [True, False])
    """

    MERGE = 1 << 13  # keys in the latest runs before they become a block

    def __init__(self) -> None:
        self._blocks: list[Halves] = []  # sizes fall from first to last
        self._runs: list[Halves] = []  # the latest additions
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """A mask: which of `keys` are in the set."""
        return self._contains(*halves(keys))

    def add(self, keys: np.ndarray, positions: np.ndarray | None = None) -> np.ndarray:
        """Add `keys`; returns a mask of those that were new (a key repeated within `keys`
        is new at its first occurrence only). `positions` is not needed (see
        `PlanIdSet.add`)."""
        new = np.zeros(len(keys), dtype=bool)
        if not len(keys):
            return new
        first, second = halves(keys)
        order = np.lexsort((second, first))  # stable: a repeat sorts after its first
        first, second = first[order], second[order]
        fresh = np.ones(len(order), dtype=bool)
        fresh[1:] = (first[1:] != first[:-1]) | (second[1:] != second[:-1])
        fresh[fresh] = ~self._contains(first[fresh], second[fresh])
        new[order[fresh]] = True
        if fresh.any():
            self._runs.append((first[fresh], second[fresh]))
            self._count += int(fresh.sum())
            if sum(len(run[0]) for run in self._runs) >= self.MERGE:
                self._merge()
        return new

    def _contains(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        found = np.zeros(len(first), dtype=bool)
        if not len(first):
            return found
        for part_first, part_second in (*self._blocks, *self._runs):
            at = np.minimum(np.searchsorted(part_first, first), len(part_first) - 1)
            near = part_first[at] == first
            found |= near & (part_second[at] == second)
            # keys that share their first half lie side by side: look at each of them
            for i in np.flatnonzero(near & ~found).tolist():
                stop = np.searchsorted(part_first, first[i], "right")
                found[i] = bool((part_second[at[i] : stop] == second[i]).any())
        return found

    def _merge(self) -> None:
        block = union(self._runs)
        self._runs = []
        while self._blocks and len(self._blocks[-1][0]) <= len(block[0]):
            block = union([self._blocks.pop(), block])
        self._blocks.append(block)


class PlanIdSet:
    """An `IdSet` for one scope of a plan: the ids the plan has in `scope` are marked in a
    mask over its positions (a byte an entry, whatever the listing's length), the others
    go to an `IdSet`. Answers exactly as an `IdSet` would.

    Parameters
    ----------
    index : PlanIndex
        The plan's positions by (scope, key).
    scope : (project_id, region_id)
        The scope being listed.
    """

    def __init__(self, index: PlanIndex, scope: Scope) -> None:
        self.index = index
        self.scope = scope
        self._marked: np.ndarray | None = None  # per plan position, made on first use
        self._count = 0  # positions marked
        self._others = IdSet()  # keys the plan lacks in this scope

    def __len__(self) -> int:
        return self._count + len(self._others)

    def add(self, keys: np.ndarray, positions: np.ndarray | None = None) -> np.ndarray:
        """Add `keys`; returns a mask of those that were new (see `IdSet.add`).

        `positions`: the keys' plan positions in `scope` when the caller looked them up
        already (`batchtag.read._reader.Listed`); else they are looked up here."""
        if positions is None:
            positions = self.index.positions(self.scope, keys)
        planned = positions >= 0
        new = np.zeros(len(keys), dtype=bool)
        at = np.flatnonzero(planned)
        if len(at):
            if self._marked is None:
                self._marked = np.zeros(len(self.index), dtype=bool)
            found = positions[at]
            fresh = first_occurrences(found) & ~self._marked[found]
            self._marked[found[fresh]] = True
            self._count += int(fresh.sum())
            new[at] = fresh
        if len(at) < len(keys):
            rest = np.flatnonzero(~planned)
            new[rest] = self._others.add(keys[rest])
        return new


def first_occurrences(values: np.ndarray) -> np.ndarray:
    """A mask: True at the first occurrence of each value.

    Examples
    --------
    >>> first_occurrences(np.array([3, 1, 3, 2, 1])).tolist()
    [True, True, False, True, False]
    """
    mask = np.zeros(len(values), dtype=bool)
    if len(values):
        mask[np.unique(values, return_index=True)[1]] = True
    return mask


Seen = IdSet | PlanIdSet  # the ids a listing handed out


def id_set(index: PlanIndex | None, scope: Scope) -> Seen:
    """A set for the ids listed in `scope`: backed by the plan's positions when there is
    an index, else by the keys alone."""
    return IdSet() if index is None else PlanIdSet(index, scope)


def id_key(snapshot_id: str) -> int | str:
    """A compact identity for dedupe sets of ids as Python objects: an int for a UUID (its
    text in either case), the exact text for any other id (`snap-a` is not `snap-A`, and
    `ab-c` is not `abc`)."""
    key = uuid_bytes(snapshot_id)
    return snapshot_id if key is None else int.from_bytes(key, "big")


def halves(keys: np.ndarray) -> Halves:
    """16-byte keys as their two 8-byte halves (views, no copy of contiguous keys)."""
    pairs = np.ascontiguousarray(keys).view(np.uint64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def union(parts: list[Halves]) -> Halves:
    """Parts sorted by first half (no key in two of them) as one."""
    first = np.concatenate([part[0] for part in parts])
    second = np.concatenate([part[1] for part in parts])
    order = np.argsort(first, kind="stable")  # runs already sorted: a linear merge
    return first[order], second[order]
