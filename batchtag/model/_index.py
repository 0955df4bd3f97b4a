"""Plan positions <-> snapshot keys, without a Python object per snapshot.

A run keeps what it knows per snapshot (the done-set of a resume, the state read before
sending, which ids a listing returned) in numpy arrays indexed by the entry's position in
the plan. This module finds positions: a snapshot id becomes a 16-byte key (a UUID's own
bytes, so its case does not matter; any other id a 128-bit digest of its exact text), and a
`PlanIndex` holds the plan's keys sorted (16 bytes) with their positions (4 bytes) and each
position's scope code (1 byte for a few scopes): ~21 bytes a snapshot, found by
`np.searchsorted` a page at a time.

Examples
--------
>>> from batchtag.model import PlanEntry
>>> sid = "0b7f3f38-7d53-4a3e-9e0b-8f4d2c1e5a66"
>>> index = PlanIndex.of([PlanEntry(1, 2, "other"), PlanEntry(1, 2, sid)])
>>> index.positions((1, 2), keys_of([sid.upper(), "nope", "other", "OTHER"])).tolist()
[1, -1, 0, -1]
>>> index.position(PlanEntry(1, 2, sid)), index.position(PlanEntry(9, 9, sid))
(1, None)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from batchtag.model._plan import PlanEntry

if TYPE_CHECKING:
    import pyarrow as pa

KEY = np.dtype("V16")
CHUNK = 4096  # entries (or report keys) made at once while iterating
GATHER = 1 << 16  # keys put in sorted order at once while an index is built
BULK = 1 << 14  # keys looked up at once from which the index searches by prefix first
Scope = tuple[int, int]
UUID_LENGTH = 36
DASHES = (8, 13, 18, 23)  # where a UUID's text has its dashes
HEX_AT = np.array([i for i in range(UUID_LENGTH) if i not in DASHES])
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE = np.full(256, 255, dtype=np.uint8)  # hex digit (either case) -> its value
for _value, _digit in enumerate(b"0123456789abcdef"):
    _NIBBLE[_digit] = _NIBBLE[ord(chr(_digit).upper())] = _value


def uuid_bytes(snapshot_id: str) -> bytes | None:
    """A UUID's 16 bytes (its text in either case), None when `snapshot_id` is no UUID."""
    if len(snapshot_id) != UUID_LENGTH:
        return None
    if not snapshot_id[8] == snapshot_id[13] == snapshot_id[18] == snapshot_id[23] == "-":
        return None  # (the positions in DASHES)
    try:
        key = bytes.fromhex(snapshot_id.replace("-", ""))
    except ValueError:
        return None
    return key if len(key) == 16 else None  # (fromhex skips blanks)


def id_bytes(snapshot_id: str) -> bytes:
    """The 16-byte key of a snapshot id: a UUID's bytes (its text is canonical in either
    case), else a digest of the exact id (two such ids get one key only if they are equal:
    `snap-a` and `snap-A` are two snapshots).

    Examples
    --------
    >>> id_bytes("0B7F3F38-7D53-4A3E-9E0B-8F4D2C1E5A66").hex()
    '0b7f3f387d534a3e9e0b8f4d2c1e5a66'
    >>> id_bytes("snap-1") == id_bytes("snap-1") != id_bytes("SNAP-1")
    True
    """
    key = uuid_bytes(snapshot_id)
    if key is None:
        key = hashlib.blake2b(snapshot_id.encode(), digest_size=16).digest()
    return key


def keys_of(ids: Iterable[str]) -> np.ndarray:
    """The keys (`id_bytes`) of some ids, as a V16 array (UUIDs in one `bytes.fromhex`)."""
    ids = list(ids)
    text = "".join(ids)
    if len(text) == UUID_LENGTH * len(ids) and all(
        text[at::UUID_LENGTH] == "-" * len(ids) for at in DASHES
    ):
        try:
            raw = bytes.fromhex(text.replace("-", ""))
        except ValueError:
            raw = b""
        if len(raw) == 16 * len(ids):  # (fromhex skips blanks: then id by id)
            return np.frombuffer(raw, dtype=KEY)
    return np.frombuffer(b"".join(map(id_bytes, ids)), dtype=KEY)


def arrow_keys(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The keys of an Arrow string column, decoded without a Python string per id where the
    ids are UUID text (a manifest's are); other ids go through `id_bytes` one by one."""
    import pyarrow as pa

    if isinstance(ids, pa.ChunkedArray):
        parts = [arrow_keys(chunk) for chunk in ids.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=KEY)
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        ids = ids.cast(pa.string())
    n = len(ids)
    out = np.zeros(n, dtype=KEY)
    if not n:
        return out
    width = np.int64 if pa.types.is_large_string(ids.type) else np.int32
    offsets = np.frombuffer(ids.buffers()[1], dtype=width)[ids.offset : ids.offset + n + 1]
    data = np.frombuffer(ids.buffers()[2] or b"", dtype=np.uint8)
    uniform = ids.null_count == 0 and _all_uuid_long(offsets)
    good = np.zeros(n, dtype=bool)
    if uniform:
        for start in range(0, n, CHUNK):  # a block at a time: small temporaries
            stop = min(n, start + CHUNK)
            text = data[offsets[start] : offsets[stop]].reshape(-1, UUID_LENGTH)
            nibbles = _NIBBLE[text[:, HEX_AT]]
            ok = (nibbles != 255).all(axis=1) & (text[:, list(DASHES)] == ord("-")).all(axis=1)
            packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
            out[start:stop] = np.ascontiguousarray(packed).view(KEY).ravel()
            good[start:stop] = ok
    for i in np.flatnonzero(~good).tolist():
        value = ids[i].as_py()
        out[i] = np.frombuffer(id_bytes("" if value is None else value), dtype=KEY)[0]
    return out


def _all_uuid_long(offsets: np.ndarray) -> bool:
    """Whether every value between these Arrow offsets is as long as a UUID, by blocks."""
    return all(
        bool((np.diff(offsets[start : start + CHUNK + 1]) == UUID_LENGTH).all())
        for start in range(0, max(len(offsets) - 1, 0), CHUNK)
    )


def uuid_digits(keys: np.ndarray) -> np.ndarray:
    """The lowercase UUID text of 16-byte keys, as an (n, 36) array of ASCII codes."""
    raw = np.frombuffer(np.ascontiguousarray(keys).tobytes(), dtype=np.uint8).reshape(-1, 16)
    digits = np.full((len(raw), UUID_LENGTH), ord("-"), dtype=np.uint8)
    digits[:, HEX_AT[0::2]] = _HEX[raw >> 4]
    digits[:, HEX_AT[1::2]] = _HEX[raw & 15]
    return digits


def uuid_text(keys: np.ndarray) -> list[str]:
    """The lowercase UUID text of 16-byte keys (the inverse of `id_bytes` for a UUID).

    Examples
    --------
    >>> uuid_text(np.frombuffer(bytes(range(16)), dtype="V16"))
    ['00010203-0405-0607-0809-0a0b0c0d0e0f']
    """
    text = uuid_digits(keys).tobytes().decode("ascii")
    return [text[i : i + UUID_LENGTH] for i in range(0, len(text), UUID_LENGTH)]


def canonical_keys(ids: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """The keys of an Arrow string column when every id is a lowercase UUID (so the text
    comes back from the key: `uuid_text`); None otherwise. Keyed chunk by chunk (no copy)."""
    import pyarrow as pa

    chunks = ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids]
    if ids.null_count or not len(ids):
        return None
    if len(chunks) == 1:
        return _canonical_chunk(chunks[0])
    out, at = np.empty(len(ids), dtype=KEY), 0
    for chunk in chunks:
        keys = _canonical_chunk(chunk)
        if keys is None:
            return None
        out[at : at + len(chunk)] = keys
        at += len(chunk)
    return out


def _canonical_chunk(ids: pa.Array) -> np.ndarray | None:
    """`canonical_keys` of one Arrow array (an empty one has no keys to check)."""
    import pyarrow as pa

    string, large = pa.types.is_string(ids.type), pa.types.is_large_string(ids.type)
    if not (string or large):
        return None
    keys = arrow_keys(ids)
    if not len(ids):
        return keys
    width = np.int64 if large else np.int32
    offsets = np.frombuffer(ids.buffers()[1], dtype=width)[ids.offset : ids.offset + len(ids) + 1]
    if not _all_uuid_long(offsets):
        return None
    data = np.frombuffer(ids.buffers()[2], dtype=np.uint8)
    for start in range(0, len(ids), CHUNK):
        stop = min(len(ids), start + CHUNK)
        text = data[offsets[start] : offsets[stop]].reshape(-1, UUID_LENGTH)
        if not (text == uuid_digits(keys[start:stop])).all():
            return None
    return keys


def smallest_uint(count: int) -> np.dtype:
    """The smallest unsigned dtype that holds 0..count-1."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if count <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def narrowed(column: np.ndarray, count: int | None = None) -> np.ndarray:
    """A column of integers 0..count-1 (default: up to its largest) in the smallest
    unsigned dtype; one value in every row is held once, as a read-only broadcast view.
    Anything else (negative numbers, other dtypes) comes back as it is.

    Examples
    --------
    >>> narrowed(np.array([7, 7, 7])).strides, narrowed(np.array([0, 300])).dtype.name
    ((0,), 'uint16')
    """
    if column.dtype.kind not in "iu" or not len(column):
        return column
    first = column[:1]
    if column.strides == (0,) or bool((column == first[0]).all()):
        if first[0] < 0:
            return column
        width = smallest_uint(max(count or 0, int(first[0]) + 1))
        return np.broadcast_to(first.astype(width), column.shape)
    if column.min() < 0:
        return column
    width = smallest_uint(count if count is not None else int(column.max()) + 1)
    return column.astype(width, copy=False)


@dataclass(frozen=True, eq=False)
class PlanIndex:
    """The positions of a plan's entries by (scope, snapshot key).

    Build it with `PlanIndex.of(entries)` (a `PlanEntries` builds it from its columns,
    once). Several entries with the same key in one scope (only a hand-built list can
    have them) find the first.
    """

    scope_codes: np.ndarray  # per position: its scope's number in `scopes`
    scopes: tuple[Scope, ...]
    sorted_keys: np.ndarray  # V16: the plan's keys, sorted
    order: np.ndarray  # the position of each of `sorted_keys`

    @classmethod
    def of(cls, entries: Sequence[PlanEntry]) -> PlanIndex:
        """The index of a plan's entries (cached by a `PlanEntries`)."""
        made = getattr(entries, "plan_index", None)
        if made is not None:
            return made()
        codes: dict[Scope, int] = {}
        scope_codes = np.fromiter(
            (codes.setdefault((e.project_id, e.region_id), len(codes)) for e in entries),
            dtype=np.int64,
            count=len(entries),
        )
        keys = keys_of(e.snapshot_id for e in entries)
        return cls.build(scope_codes, tuple(codes), keys)

    @classmethod
    def build(cls, scope_codes: np.ndarray, scopes: tuple[Scope, ...], keys: np.ndarray):
        """An index of per-position scope codes and keys (the keys gathered in sorted order a
        block at a time, by the narrowed order: no int64 temporary beside the sorted copy)."""
        order = key_order(keys).astype(smallest_uint(max(len(keys), 1)))
        sorted_keys = np.empty_like(keys)
        for start in range(0, len(keys), GATHER):
            sorted_keys[start : start + GATHER] = keys[order[start : start + GATHER]]
        return cls(narrowed(scope_codes, len(scopes)), scopes, sorted_keys, order)

    def key_at(self, rank: np.ndarray) -> np.ndarray:
        """The keys at some positions, given their `ranks` (see `ranks`)."""
        return self.sorted_keys[rank]

    def ranks(self) -> np.ndarray:
        """Per position, where its key is in `sorted_keys` (the inverse of `order`)."""
        rank = np.empty(len(self.order), dtype=self.order.dtype)
        rank[self.order] = np.arange(len(self.order), dtype=self.order.dtype)
        return rank

    def __len__(self) -> int:
        return len(self.scope_codes)

    def code(self, scope: Scope) -> int | None:
        """The number of a scope, None when the plan has no entry in it."""
        codes = self.__dict__.get("_codes")
        if codes is None:
            codes = {scope: code for code, scope in enumerate(self.scopes)}
            object.__setattr__(self, "_codes", codes)
        return codes.get(scope)

    def positions(self, scope: Scope, keys: np.ndarray) -> np.ndarray:
        """The plan position of each key in `scope` (int64), -1 where the plan has none."""
        out = np.full(len(keys), -1, dtype=np.int64)
        code = self.code(scope)
        if code is None or not len(keys) or not len(self.sorted_keys):
            return out
        at = np.minimum(self._search(keys), len(self.sorted_keys) - 1)
        found = self.order[at].astype(np.int64)
        hit = self.sorted_keys[at] == keys
        same = hit & (self.scope_codes[found] == code)
        out[same] = found[same]
        for i in np.flatnonzero(hit & ~same).tolist():  # the id also lives in another scope
            out[i] = self._in_scope(int(at[i]), keys[i], code)
        return out

    def _search(self, keys: np.ndarray) -> np.ndarray:
        """Where each key is, or would be, in `sorted_keys` (`np.searchsorted`; a key not
        there may get any place, `positions` finds no hit at it).

        Many keys at once (a resumed report's) are first placed by their first 8 bytes as
        a number, in sorted order, several times faster than comparing 16-byte keys; only
        keys whose prefix the index holds more than once are then placed by the whole key.
        The prefixes are made on the first such search and kept (8 bytes a snapshot)."""
        if len(keys) < BULK:
            return np.searchsorted(self.sorted_keys, keys)
        prefixes = self.__dict__.get("_prefixes")
        if prefixes is None:
            prefixes = _prefix(self.sorted_keys)
            object.__setattr__(self, "_prefixes", prefixes)
        probes = _prefix(keys)
        order = np.argsort(probes)  # sorted probes: each search starts where the last ended
        at = np.empty(len(keys), dtype=np.int64)
        at[order] = np.searchsorted(prefixes, probes[order])
        following = np.minimum(at + 1, len(prefixes) - 1)
        crowded = (at + 1 < len(prefixes)) & (prefixes[following] == probes)
        if crowded.any():
            at[crowded] = np.searchsorted(self.sorted_keys, keys[crowded])
        return at

    def _in_scope(self, start: int, key: np.void, code: int) -> int:
        """The position of `key` in scope `code`, looking past entries of other scopes."""
        i = start
        while i < len(self.sorted_keys) and self.sorted_keys[i] == key:
            position = int(self.order[i])
            if self.scope_codes[position] == code:
                return position
            i += 1
        return -1

    def position(self, entry: PlanEntry) -> int | None:
        """The plan position of `entry`'s snapshot, None when the plan has none (one
        lookup, a few microseconds: the engine asks once per snapshot)."""
        code = self.code((entry.project_id, entry.region_id))
        if code is None or not len(self.sorted_keys):
            return None
        raw = id_bytes(entry.snapshot_id)
        probe = np.frombuffer(raw, dtype=KEY)
        at = int(self.sorted_keys.searchsorted(probe)[0])
        if self.sorted_keys[at : at + 1].tobytes() != raw:  # (numpy scalars are slow)
            return None
        found = int(self.order[at])
        if self.scope_codes[found] != code:
            found = self._in_scope(at, probe[0], code)
        return None if found < 0 else found

    def in_scope(self, scope: Scope) -> np.ndarray:
        """A mask over positions: the entries of `scope`."""
        code = self.code(scope)
        if code is None:
            return np.zeros(len(self), dtype=bool)
        return self.scope_codes == code


def key_order(keys: np.ndarray) -> np.ndarray:
    """`np.argsort(keys, kind="stable")` of 16-byte keys, sorted by their first 8 bytes as
    numbers (several times faster); only the keys sharing a prefix are then ordered by the
    whole key."""
    prefixes = _prefix(keys)
    order = np.argsort(prefixes, kind="stable")
    shared = prefixes[order]
    shared = shared[1:] == shared[:-1]
    if shared.any():  # runs of one prefix: their rows in the order of their whole keys
        crowded = np.flatnonzero(np.append(shared, False) | np.insert(shared, 0, False))
        rows = order[crowded]
        order[crowded] = rows[np.argsort(keys[rows], kind="stable")]
    return order


def _prefix(keys: np.ndarray) -> np.ndarray:
    """The first 8 bytes of 16-byte keys as numbers that sort as the keys do (uint64)."""
    return np.ascontiguousarray(keys).view(">u8")[::2].astype(np.uint64)


def entries_at(entries: Sequence[PlanEntry], positions: np.ndarray) -> list[PlanEntry]:
    """The entries at `positions` (made from the columns of a `PlanEntries`)."""
    made = getattr(entries, "at", None)
    if made is not None:
        return made(positions)
    return [entries[i] for i in positions.tolist()]


def iter_masked(entries: Sequence[PlanEntry], mask: np.ndarray | None) -> Iterator[PlanEntry]:
    """The entries whose position is set in `mask` (all when None), in plan order, made a
    chunk at a time."""
    if mask is None:
        yield from entries
        return
    for start in range(0, len(mask), CHUNK):
        positions = np.flatnonzero(mask[start : start + CHUNK]) + start
        if len(positions):
            yield from entries_at(entries, positions)


def needs_current_mask(entries: Sequence[PlanEntry]) -> np.ndarray:
    """A mask over positions: the entries that need their snapshot's current tags."""
    made = getattr(entries, "needs_current_mask", None)
    if made is not None:
        return made()
    return np.fromiter((e.needs_current for e in entries), dtype=bool, count=len(entries))
