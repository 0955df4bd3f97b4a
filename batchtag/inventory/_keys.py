"""Which tag keys exist: counts per key (or per value of one key) over pages of snapshots,
and the warning for a name that no snapshot has (``did you mean 'env'?``).

A ``where`` or ``--columns`` naming ``tag:Env`` when the snapshots have ``env`` would
otherwise match nothing, silently: a tag column no snapshot has is all-missing.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from batchtag.inventory._select import RO_PREFIX, TagCodes
from batchtag.model import TAG_PREFIX

CLOSEST = 3  # keys suggested at most


def count_keys(tags: pa.Array | pa.ChunkedArray) -> Counter[tuple[str, bool]]:
    """How many snapshots (rows of a column of tag lists) have each (key, read_only).

    Examples
    --------
    >>> tags = pa.array([[{"key": "env", "value": "a", "read_only": False}], []],
    ...                 type=pa.list_(pa.struct([("key", pa.string()), ("value", pa.string()),
    ...                                          ("read_only", pa.bool_())])))
    >>> count_keys(tags)
    Counter({('env', False): 1})
    """
    codes = TagCodes(tags)
    names = list(codes.names)
    valid = codes.codes >= 0
    pairs = codes.codes[valid].astype(np.int64) * 2 + codes.read_only[valid].astype(np.int64)
    stride = 2 * len(names) + 2
    # one count per snapshot, however often it repeats a key
    unique = np.unique(codes.rows[valid].astype(np.int64) * stride + pairs) % stride
    found, counts = np.unique(unique, return_counts=True)
    return Counter(
        {
            (names[c >> 1], bool(c & 1)): int(n)
            for c, n in zip(found.tolist(), counts.tolist(), strict=True)
        }
    )


def count_values(tags: pa.Array | pa.ChunkedArray, key: str) -> Counter[tuple[str, bool]]:
    """How many snapshots have each value of tag `key` (as (value, read_only))."""
    codes = TagCodes(tags)
    code = codes.names.get(key)
    if code is None:
        return Counter()
    hit = np.flatnonzero(codes.codes == code)
    _, first = np.unique(codes.rows[hit], return_index=True)  # a snapshot counts once
    hit = hit[np.sort(first)]
    values = codes.values.take(pa.array(hit)).to_pylist()
    read_only = codes.read_only[hit].tolist()
    return Counter(zip(values, (bool(r) for r in read_only), strict=True))


def missing_tags(
    names: Iterable[str], user_keys: Iterable[str], ro_keys: Iterable[str]
) -> list[str]:
    """A warning for each ``tag:``/``ro:`` name that no snapshot has, with the closest
    keys that exist.

    Examples
    --------
    >>> missing_tags(["tag:Env", "size", "tag:env"], ["env", "team"], [])
    ["no snapshot has tag 'Env'; did you mean 'env'?"]
    >>> missing_tags(["ro:zzz"], ["env"], [])
    ["no snapshot has read-only tag 'zzz'"]
    """
    user, ro = set(user_keys), set(ro_keys)
    out = []
    for name in dict.fromkeys(names):
        for prefix, keys, what in ((TAG_PREFIX, user, "tag"), (RO_PREFIX, ro, "read-only tag")):
            if name.startswith(prefix) and name[len(prefix) :] not in keys:
                key = name[len(prefix) :]
                hint = closest(key, keys)
                out.append(
                    f"no snapshot has {what} {key!r}" + (f"; did you mean {hint}?" * bool(hint))
                )
    return out


def closest(key: str, keys: Iterable[str]) -> str:
    """The keys most like `key` (same letters in another case first), quoted and joined
    by "or"; empty when none is close."""
    keys = sorted(set(keys))
    same = [k for k in keys if k.lower() == key.lower()]
    near = difflib.get_close_matches(key.lower(), [k.lower() for k in keys], n=CLOSEST, cutoff=0.6)
    lowered = {k.lower(): k for k in keys}
    chosen = list(dict.fromkeys([*same, *(lowered[n] for n in near)]))[:CLOSEST]
    return " or ".join(repr(k) for k in chosen)
