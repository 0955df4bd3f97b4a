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

    def __init__(self, projects: Iterable[int], regions: Iterable[int], ids: Iterable[str]):
        projects, regions, ids = list(projects), list(regions), list(ids)
        hashes = key_hashes(projects, regions, ids)
        order = np.argsort(hashes, kind="stable")
        self._hashes = hashes[order]
        self._projects = _objects(projects)[order]
        self._regions = _objects(regions)[order]
        self._ids = pa.array(ids, pa.string()).take(pa.array(order))

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


def _objects(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


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
        hashes = np.frombuffer(self._hashes, dtype=np.int64) if self._hashes else np.zeros(0)
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
