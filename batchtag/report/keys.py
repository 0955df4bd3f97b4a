"""Snapshot keys without a Python object per snapshot: the done-set of a resume and the
latest status per snapshot that a report writer keeps.

A million (project, region, snapshot id) tuples in a set or dict cost ~250 MB; here a key
costs its 64-bit hash (plus, for a `KeySet`, its three columns in Arrow/numpy buffers).
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Set

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Key = tuple[int, int, str]
CHUNK = 4096  # keys made at once while iterating


def key_hashes(projects: Iterable[int], regions: Iterable[int], ids: Iterable[str]) -> np.ndarray:
    """hash((project, region, snapshot_id)) of every key, as int64."""
    hashes = (hash(key) for key in zip(projects, regions, ids, strict=True))
    return np.fromiter(hashes, dtype=np.int64)


class KeySet(Set):
    """A read-only set of distinct keys (each given once), exact: a key's hash finds the
    candidates, its columns confirm.

    Examples
    --------
    >>> done = KeySet([1, 1], [2, 2], ["a", "b"])
    >>> (1, 2, "a") in done, (1, 2, "c") in done, len(done)
    (True, False, 2)
    >>> done == {(1, 2, "a"), (1, 2, "b")}
    True
    """

    def __init__(
        self,
        projects: Iterable[int],
        regions: Iterable[int],
        ids: Iterable[str],
        hashes: np.ndarray | None = None,
    ):
        projects = np.fromiter(projects, dtype=np.int64)
        regions = np.fromiter(regions, dtype=np.int64)
        if not isinstance(ids, pa.Array | pa.ChunkedArray):
            ids = pa.array(list(ids), pa.string())
        if hashes is None:
            hashes = np.concatenate(
                [np.zeros(0, np.int64)]
                + [
                    key_hashes(
                        projects[i : i + CHUNK].tolist(),
                        regions[i : i + CHUNK].tolist(),
                        ids[i : i + CHUNK].to_pylist(),
                    )
                    for i in range(0, len(projects), CHUNK)
                ]
            )
        if not (hashes[1:] >= hashes[:-1]).all():  # given sorted, nothing is copied
            order = np.argsort(hashes, kind="stable")
            hashes, projects, regions = hashes[order], projects[order], regions[order]
            ids = ids.take(pa.array(order))
        self._hashes, self._projects, self._regions = hashes, projects, regions
        self._ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids

    def __contains__(self, key: object) -> bool:
        try:
            h = hash(key)
        except TypeError:
            return False
        i = int(np.searchsorted(self._hashes, h))
        while i < len(self._hashes) and self._hashes[i] == h:
            if key == (self._projects[i], self._regions[i], self._ids[i].as_py()):
                return True
            i += 1
        return False

    def __iter__(self) -> Iterator[Key]:
        for start in range(0, len(self), CHUNK):
            stop = start + CHUNK
            yield from zip(
                self._projects[start:stop].tolist(),
                self._regions[start:stop].tolist(),
                self._ids[start:stop].to_pylist(),
                strict=True,
            )

    def __len__(self) -> int:
        return len(self._hashes)

    def __repr__(self) -> str:
        return f"KeySet({len(self)} keys)"


class StatusLog:
    """The latest status per key, from keys and statuses recorded in order.

    Keeps 9 bytes per record (the key's hash and a status code). Two different keys with
    the same 64-bit hash would count as one: about one chance in 10^7 at a million keys.

    Examples
    --------
    >>> log = StatusLog()
    >>> for key, status in [((1, 1, "a"), "failed"), ((1, 1, "b"), "ok"), ((1, 1, "a"), "ok")]:
    ...     log.add(key, status)
    >>> log.counts(), log.has_repeats()
    (Counter({'ok': 2}), True)
    """

    def __init__(self) -> None:
        self._hashes = array("q")
        self._codes = array("b")
        self._statuses: dict[str | None, int] = {}

    def add(self, key: Key, status: str | None) -> None:
        code = self._statuses.setdefault(status, len(self._statuses))
        self._hashes.append(hash(key))
        self._codes.append(code)

    def _latest(self) -> np.ndarray:
        """The position of the last record of every distinct key."""
        hashes = _int64(self._hashes)
        _, last_reversed = np.unique(hashes[::-1], return_index=True)
        return len(hashes) - 1 - last_reversed

    def counts(self) -> Counter[str]:
        """Keys by their latest status."""
        codes = np.frombuffer(self._codes, dtype=np.int8) if self._codes else np.zeros(0, int)
        by_code = np.bincount(codes[self._latest()], minlength=len(self._statuses))
        names = list(self._statuses)
        return Counter({names[c]: int(n) for c, n in enumerate(by_code.tolist()) if n})

    def has_repeats(self) -> bool:
        """True when some key was recorded more than once."""
        return len(self._latest()) < len(self._hashes)


class KeyColumns:
    """Keys and statuses of report rows in file order, kept in flat buffers (about 70 bytes
    a row) rather than as Python objects.

    Examples
    --------
    >>> log = KeyColumns()
    >>> for key, status in [((1, 1, "a"), "failed"), ((1, 1, "b"), "ok"), ((1, 1, "a"), "ok")]:
    ...     log.add(key, status)
    >>> first, last = log.positions()
    >>> first.tolist(), last.tolist(), list(log.items(last))
    ([0, 1], [2, 1], [((1, 1, 'a'), 'ok'), ((1, 1, 'b'), 'ok')])
    >>> sorted(log.keyset(last[log.status_in(last, {"ok"})]))
    [(1, 1, 'a'), (1, 1, 'b')]
    """

    def __init__(self) -> None:
        self._projects, self._regions = array("q"), array("q")
        self._chunks: list[pa.Array] = []
        self._pending: list[str] = []
        self._codes, self._hashes = array("b"), array("q")
        self._statuses: dict[str | None, int] = {}

    def add(self, key: Key, status: str | None) -> None:
        self._hashes.append(hash(key))
        project, region, snapshot = key
        self._projects.append(project)
        self._regions.append(region)
        self._pending.append(snapshot)
        if len(self._pending) >= CHUNK:
            self._flush()
        self._codes.append(self._statuses.setdefault(status, len(self._statuses)))

    def __len__(self) -> int:
        return len(self._codes)

    def _flush(self) -> None:
        self._chunks.append(pa.array(self._pending, pa.string()))
        self._pending = []

    def _columns(self) -> tuple[np.ndarray, np.ndarray, pa.Array]:
        if self._pending or not self._chunks:
            self._flush()
        if len(self._chunks) > 1:  # one array: a `take` then copies nothing else
            self._chunks = [pa.concat_arrays(self._chunks)]
        ids = self._chunks[0]
        return _int64(self._projects), _int64(self._regions), ids

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """The positions of the first and of the last row of every distinct key, in the
        order of the first rows (exact: rows that share a hash are compared)."""
        hashes = _int64(self._hashes)
        if not len(hashes):
            return hashes, hashes
        order = np.argsort(hashes, kind="stable")  # by hash, then by position
        sorted_hashes = hashes[order]
        repeat = sorted_hashes[1:] == sorted_hashes[:-1]
        if not self._same_keys(order[:-1][repeat], order[1:][repeat]):
            return self.grouped_positions()  # two keys share a hash: compare keys instead
        starts = np.flatnonzero(np.concatenate([[True], ~repeat]))
        ends = np.concatenate([starts[1:], [len(order)]]) - 1
        first, last = order[starts], order[ends]
        by_first = np.argsort(first, kind="stable")
        return first[by_first], last[by_first]

    def _same_keys(self, a: np.ndarray, b: np.ndarray) -> bool:
        """Are the keys at positions `a` the keys at positions `b`, pair by pair?"""
        if not len(a):
            return True
        projects, regions, ids = self._columns()
        same_ids = pc.all(pc.equal(ids.take(a), ids.take(b))).as_py()
        return bool(
            same_ids and (projects[a] == projects[b]).all() and (regions[a] == regions[b]).all()
        )

    def grouped_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """`positions` by grouping on the key columns (slower, more memory; no hashes)."""
        projects, regions, ids = self._columns()
        table = pa.table({"p": projects, "r": regions, "i": ids, "n": np.arange(len(self))})
        grouped = table.group_by(["p", "r", "i"], use_threads=False).aggregate(
            [("n", "min"), ("n", "max")]
        )
        first = grouped["n_min"].to_numpy().astype(np.int64)
        last = grouped["n_max"].to_numpy().astype(np.int64)
        order = np.argsort(first, kind="stable")
        return first[order], last[order]

    def status_in(self, positions: np.ndarray, statuses: Iterable[str]) -> np.ndarray:
        """A mask: does the row at each position have one of `statuses`?"""
        wanted = [code for status, code in self._statuses.items() if status in set(statuses)]
        codes = np.frombuffer(self._codes, dtype=np.int8) if self._codes else np.zeros(0, np.int8)
        return np.isin(codes[positions], wanted)

    def items(self, positions: np.ndarray) -> Iterator[tuple[Key, str | None]]:
        """(key, status) of the rows at `positions`."""
        projects, regions, ids = self._columns()
        names = list(self._statuses)
        for start in range(0, len(positions), CHUNK):
            at = positions[start : start + CHUNK]
            keys = zip(
                projects[at].tolist(), regions[at].tolist(), ids.take(at).to_pylist(), strict=True
            )
            codes = [self._codes[i] for i in at.tolist()]
            yield from zip(keys, (names[c] for c in codes), strict=True)

    def keyset(self, positions: np.ndarray) -> KeySet:
        """The keys of the rows at `positions` (distinct keys)."""
        projects, regions, ids = self._columns()
        hashes = _int64(self._hashes)
        at = positions[np.argsort(hashes[positions], kind="stable")]
        return KeySet(projects[at], regions[at], ids.take(at), hashes[at])


def _int64(values: array) -> np.ndarray:
    """An array("q") as a numpy view (an empty one too)."""
    return np.frombuffer(values, dtype=np.int64) if values else np.zeros(0, np.int64)
