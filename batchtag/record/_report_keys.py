"""Snapshot keys without a Python object per snapshot: the done-set of a resume and the
latest status per snapshot that a report writer keeps.

A (project, region, snapshot id) tuple in a set or dict costs hundreds of bytes. Here a key
is 20 bytes: its scope's number (4 bytes, big-endian) and its id's 16 bytes (a lowercase
UUID's own bytes, which give its text back; any other id a 128-bit digest of its exact
text, kept as text beside, once per distinct id).
"""

from __future__ import annotations

import hashlib
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Set

import numpy as np

from batchtag.model import CHUNK, KEY, id_bytes, uuid_bytes, uuid_text

Key = tuple[int, int, str]
WIDE = np.dtype("V20")  # scope number + id key
_MASK = (1 << 64) - 1
# Odd 64-bit multipliers (from splitmix64 and xxhash) mixing a key's parts into one word.
_MIX = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93)


def key_hash(key: Key) -> int:
    """A 64-bit hash (signed) of a snapshot key, the same in every process and equal to
    `key_hashes` of it: a report's rows and a run's results are hashed alike. The id counts
    by its plan-index key (`batchtag.model.id_bytes`: a UUID in any case is one snapshot);
    each part is multiplied by its odd constant (mod 2**64), the products xor-ed.

    Examples
    --------
    >>> sid = "0b7f3f38-7d53-4a3e-9e0b-8f4d2c1e5a66"
    >>> key_hash((1, 2, sid)) == key_hash((1, 2, sid.upper())) != key_hash((1, 3, sid))
    True
    """
    project, region, snapshot_id = key
    ident = int.from_bytes(id_bytes(snapshot_id), "little")
    mixed = (ident & _MASK) * _MIX[0] ^ (ident >> 64) * _MIX[1]
    mixed = (mixed ^ project * _MIX[2] ^ region * _MIX[3]) & _MASK
    return mixed - ((mixed >> 63) << 64)


def key_hashes(projects: np.ndarray, regions: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """`key_hash` of many keys at once: int64 scopes and the ids' V16 keys (`arrow_keys`)."""
    words = np.ascontiguousarray(keys).view("<u8").reshape(-1, 2)
    mix = [np.uint64(m) for m in _MIX]
    with np.errstate(over="ignore"):
        mixed = words[:, 0] * mix[0]
        mixed ^= words[:, 1] * mix[1]
        mixed ^= projects.astype(np.uint64) * mix[2]
        mixed ^= regions.astype(np.uint64) * mix[3]
    return mixed.view(np.int64)


class KeyCodec:
    """(project, region, snapshot id) <-> 20 bytes, exact (see the module docstring).

    Examples
    --------
    >>> codec = KeyCodec()
    >>> wide = codec.encode((1, 2, "S-1"))
    >>> len(wide), codec.decode([wide, codec.encode((1, 2, "s-1"))])
    (20, [(1, 2, 'S-1'), (1, 2, 's-1')])
    """

    def __init__(self) -> None:
        self.scopes: dict[tuple[int, int], bytes] = {}
        self._scope_of: list[tuple[int, int]] = []
        self._texts: dict[bytes, str] = {}  # ids that are not lowercase UUIDs

    def encode(self, key: Key, add: bool = True) -> bytes | None:
        """The 20 bytes of `key` (None when `add` is false and its scope is new)."""
        project, region, snapshot_id = key
        scope = self.scopes.get((project, region))
        if scope is None:
            if not add:
                return None
            scope = len(self._scope_of).to_bytes(4, "big")
            self.scopes[(project, region)] = scope
            self._scope_of.append((project, region))
        ident = uuid_bytes(snapshot_id) if snapshot_id == snapshot_id.lower() else None
        if ident is None:  # the digest of the exact text; the text kept to give it back
            ident = hashlib.blake2b(snapshot_id.encode(), digest_size=16, person=b"exact").digest()
            if add:
                self._texts.setdefault(ident, snapshot_id)
        return scope + ident

    def decode(self, wide: Iterable[bytes] | np.ndarray) -> list[Key]:
        """The keys of 20-byte values."""
        data = wide.tobytes() if isinstance(wide, np.ndarray) else b"".join(wide)
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 20)
        scopes = raw[:, :4].copy().view(">u4").ravel().tolist()
        idents = np.ascontiguousarray(raw[:, 4:]).view(KEY).ravel()
        texts = uuid_text(idents)
        if self._texts:
            texts = [self._texts.get(k.tobytes(), t) for k, t in zip(idents, texts, strict=True)]
        return [(*self._scope_of[s], t) for s, t in zip(scopes, texts, strict=True)]


class KeySet(Set):
    """A read-only set of distinct keys, 20 bytes each in a sorted array (exact).

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
        *,
        codec: KeyCodec | None = None,
        wide: np.ndarray | None = None,
    ):
        self._codec = codec or KeyCodec()
        if wide is None:
            keys = zip(projects, regions, ids, strict=True)
            wide = np.frombuffer(b"".join(self._codec.encode(k) for k in keys), dtype=WIDE)
        self._wide = np.unique(wide)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 3 or not isinstance(key[2], str):
            return False
        try:
            wide = self._codec.encode(key, add=False)  # type: ignore[arg-type]
        except TypeError:
            return False
        if wide is None or not len(self._wide):
            return False
        probe = np.frombuffer(wide, dtype=WIDE)
        at = min(int(np.searchsorted(self._wide, probe)[0]), len(self._wide) - 1)
        return bool(self._wide[at] == probe[0])

    def __iter__(self) -> Iterator[Key]:
        for start in range(0, len(self), CHUNK):
            yield from self._codec.decode(self._wide[start : start + CHUNK])

    def __len__(self) -> int:
        return len(self._wide)

    def __repr__(self) -> str:
        return f"KeySet({len(self)} keys)"


class StatusLog:
    """The latest status per key, from keys and statuses recorded in order.

    Keeps 9 bytes per record (the key's hash, `key_hash`, and a status code) in blocks of
    `BLOCK` records allocated whole, each sorted by hash once full: growing by reallocation would
    leave a trail of freed copies on the heap, and one sort of every record at the end would
    need temporaries as large as the log. Two different keys with the same
    64-bit hash would count as one: about one chance in 10^7 at a million keys.

    Examples
    --------
    >>> log = StatusLog()
    >>> for key, status in [((1, 1, "a"), "failed"), ((1, 1, "b"), "ok"), ((1, 1, "a"), "ok")]:
    ...     log.add(key, status)
    >>> log.counts(), log.has_repeats()
    (Counter({'ok': 2}), True)
    """

    BLOCK = 1 << 16  # records a block holds
    BUCKET = 1 << 16  # records looked at together by `_scan`, about

    def __init__(self) -> None:
        self._hashes: list[array] = []  # full blocks sorted by hash (stable), then the last
        self._codes: list[bytearray] = []  # status codes, in the same order
        self._fill = self.BLOCK  # records in the last block
        self._statuses: dict[str | None, int] = {}

    def add(self, key: Key, status: str | None) -> None:
        code = self._statuses.setdefault(status, len(self._statuses))
        if self._fill == self.BLOCK:
            self._new_block()
        self._hashes[-1][self._fill] = key_hash(key)
        self._codes[-1][self._fill] = code
        self._fill += 1

    def extend(self, hashes: np.ndarray, codes: np.ndarray, statuses: list[str | None]) -> None:
        """Many records, in order: their keys' hashes (`key_hashes`) and status codes, each
        an index into `statuses`."""
        mine = np.array(
            [self._statuses.setdefault(s, len(self._statuses)) for s in statuses], dtype=np.uint8
        )
        at = 0
        while at < len(hashes):
            if self._fill == self.BLOCK:
                self._new_block()
            take = min(self.BLOCK - self._fill, len(hashes) - at)
            stop = self._fill + take
            np.frombuffer(self._hashes[-1], dtype=np.int64)[self._fill : stop] = hashes[at:][:take]
            block_codes = np.frombuffer(self._codes[-1], dtype=np.uint8)
            block_codes[self._fill : stop] = mine[codes[at:][:take]]
            self._fill, at = stop, at + take

    def _new_block(self) -> None:
        if self._hashes:
            self._sort_last()
        self._hashes.append(array("q", bytes(8 * self.BLOCK)))
        self._codes.append(bytearray(self.BLOCK))
        self._fill = 0

    def __len__(self) -> int:
        return (len(self._hashes) - 1) * self.BLOCK + self._fill if self._hashes else 0

    def _sort_last(self) -> None:
        hashes, codes = self._block(-1)
        order = np.argsort(hashes, kind="stable")  # records of one key stay in their order
        hashes[:] = hashes[order]
        codes[:] = codes[order]

    def _block(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Block `i`'s hashes and codes as numpy views (of its records only)."""
        size = self._fill if i in (-1, len(self._hashes) - 1) else self.BLOCK
        hashes = np.frombuffer(self._hashes[i], dtype=np.int64)[:size]
        return hashes, np.frombuffer(self._codes[i], dtype=np.uint8)[:size]

    def _scan(self) -> tuple[np.ndarray, int]:
        """Per status code, the keys whose latest record has it; and how many records are
        not a key's latest. The hash range is cut into ~BUCKET-record slices, each found
        in every (sorted) block: no temporary is as long as the log."""
        by_code = np.zeros(len(self._statuses), dtype=np.int64)
        if not len(self):
            return by_code, 0
        last_hashes, last_codes = self._block(-1)
        order = np.argsort(last_hashes, kind="stable")
        blocks = [self._block(i) for i in range(len(self._hashes) - 1)]
        blocks.append((last_hashes[order], last_codes[order]))
        cuts = max(1, -(-len(self) // self.BUCKET))
        edges = [None, *(int(e) for e in np.linspace(-(2**63), 2**63 - 1, cuts + 1)[1:-1])]
        distinct = 0
        for low, high in zip(edges, [*edges[1:], None], strict=True):
            hashes, codes = _slices(blocks, low, high)  # block order, then record order
            if len(hashes):
                order = np.argsort(hashes, kind="stable")
                hashes, codes = hashes[order], codes[order]
                latest = np.append(hashes[1:] != hashes[:-1], True)  # a run's last record
                by_code += np.bincount(codes[latest], minlength=len(by_code))
                distinct += int(latest.sum())
        return by_code, len(self) - distinct

    def counts(self) -> Counter[str]:
        """Keys by their latest status."""
        by_code, _ = self._scan()
        names = list(self._statuses)
        return Counter({names[c]: int(n) for c, n in enumerate(by_code.tolist()) if n})

    def has_repeats(self) -> bool:
        """True when some key was recorded more than once."""
        return self._scan()[1] > 0


def _slices(blocks: list[tuple[np.ndarray, np.ndarray]], low, high):
    """The records of sorted blocks with a hash in [low, high) (None: unbounded), in block
    order: hashes and codes."""
    parts = []
    for hashes, codes in blocks:
        start = 0 if low is None else int(np.searchsorted(hashes, low))
        stop = len(hashes) if high is None else int(np.searchsorted(hashes, high))
        parts.append((hashes[start:stop], codes[start:stop]))
    return np.concatenate([h for h, _ in parts]), np.concatenate([c for _, c in parts])


class KeyColumns:
    """Keys and statuses of report rows in file order, 21 bytes a row (`KeyCodec`) rather
    than Python objects.

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
        self._codec = KeyCodec()
        self._wide = bytearray()
        self._codes = array("b")
        self._statuses: dict[str | None, int] = {}

    def add(self, key: Key, status: str | None) -> None:
        self._wide += self._codec.encode(key)  # type: ignore[operator]
        self._codes.append(self._statuses.setdefault(status, len(self._statuses)))

    def __len__(self) -> int:
        return len(self._codes)

    def _keys(self) -> np.ndarray:
        return np.frombuffer(self._wide, dtype=WIDE) if self._wide else np.zeros(0, WIDE)

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """The positions of the first and of the last row of every distinct key, in the
        order of the first rows."""
        keys = self._keys()
        if not len(keys):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        order = np.argsort(keys, kind="stable")  # by key, then by position
        sorted_keys = keys[order]
        repeat = sorted_keys[1:] == sorted_keys[:-1]
        del sorted_keys
        starts = np.flatnonzero(np.concatenate([[True], ~repeat]))
        ends = np.concatenate([starts[1:], [len(order)]]) - 1
        first, last = order[starts], order[ends]
        by_first = np.argsort(first, kind="stable")
        return first[by_first], last[by_first]

    def status_in(self, positions: np.ndarray, statuses: Iterable[str]) -> np.ndarray:
        """A mask: does the row at each position have one of `statuses`?"""
        wanted = [code for status, code in self._statuses.items() if status in set(statuses)]
        codes = np.frombuffer(self._codes, dtype=np.int8) if self._codes else np.zeros(0, np.int8)
        return np.isin(codes[positions], wanted)

    def items(self, positions: np.ndarray) -> Iterator[tuple[Key, str | None]]:
        """(key, status) of the rows at `positions`."""
        keys = self._keys()
        names = list(self._statuses)
        for start in range(0, len(positions), CHUNK):
            at = positions[start : start + CHUNK]
            codes = [self._codes[i] for i in at.tolist()]
            yield from zip(self._codec.decode(keys[at]), (names[c] for c in codes), strict=True)

    def keyset(self, positions: np.ndarray) -> KeySet:
        """The keys of the rows at `positions` (distinct keys)."""
        return KeySet((), (), (), codec=self._codec, wide=self._keys()[positions])
