"""Plan positions of a page's snapshot keys, found by their first 8 bytes.

`PlanIndex.positions` binary-searches 16-byte void keys: numpy compares those with a
generic byte compare, ~5x slower than integers, and at 1M keys that search was the
largest single cost of reading a page in `plan`. `PrefixLookup` searches a uint64 copy of
each sorted key's first 8 bytes instead (8 bytes a plan entry), checks the whole key, and
hands whatever it could not settle (two keys with one prefix, an id in several scopes) to
`PlanIndex.positions`, so its answers are that method's; a key whose prefix no plan key
has is not in the plan.
"""

from __future__ import annotations

import numpy as np

from batchtag.model._index import PlanIndex, Scope


def prefixes(keys: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each 16-byte key as a native uint64, ordered as the keys are."""
    return keys.view(">u8")[::2].astype(np.uint64)


class PrefixLookup:
    """`PlanIndex.positions` with an integer search first (see the module doc).

    Examples
    --------
    >>> from batchtag.model._index import keys_of
    >>> index = PlanIndex.build(np.zeros(2, dtype=np.uint8), ((1, 1),), keys_of(["a", "b"]))
    >>> PrefixLookup(index).positions((1, 1), keys_of(["b", "c", "a"])).tolist()
    [1, -1, 0]
    """

    def __init__(self, index: PlanIndex):
        self.index = index
        self.sorted_prefixes = prefixes(index.sorted_keys)

    def positions(self, scope: Scope, keys: np.ndarray) -> np.ndarray:
        """The plan position of each key in `scope` (int64), -1 where the plan has none."""
        index = self.index
        code = index.code(scope)
        if code is None or not len(keys) or not len(self.sorted_prefixes):
            return index.positions(scope, keys)
        wanted = prefixes(keys)
        at = np.searchsorted(self.sorted_prefixes, wanted)
        np.minimum(at, len(self.sorted_prefixes) - 1, out=at)
        found = index.order[at].astype(np.int64)
        settled = (index.sorted_keys[at] == keys) & (index.scope_codes[found] == code)
        out = np.where(settled, found, -1)
        settled |= self.sorted_prefixes[at] != wanted  # no plan key has its prefix: -1
        rest = np.flatnonzero(~settled)
        if len(rest):
            out[rest] = index.positions(scope, keys[rest])
        return out
