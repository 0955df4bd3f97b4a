"""`PrefixLookup` (an integer search on the keys' first 8 bytes) finds exactly the plan
positions `PlanIndex.positions` finds: keys sharing a prefix, ids in several scopes, keys
the plan lacks."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from batchtag.model import KEY, PlanIndex, PrefixLookup

# few distinct halves: many keys share their first 8 bytes, some are equal
HALF = st.sampled_from([b"\x00" * 8, b"\x01" * 8, b"\xff" * 8, bytes(range(8))])
KEYS = st.builds(bytes.__add__, HALF, HALF)
SCOPES = ((1, 1), (1, 2), (2, 1))


def as_keys(raw: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(raw), dtype=KEY) if raw else np.zeros(0, dtype=KEY)


@settings(max_examples=200, deadline=None)
@given(
    plan=st.lists(st.tuples(st.integers(0, 2), KEYS), max_size=20),
    page=st.lists(KEYS, max_size=20),
    scope=st.sampled_from(SCOPES + ((9, 9),)),
)
def test_prefix_lookup_finds_what_the_index_finds(plan, page, scope):
    codes = np.array([code for code, _ in plan], dtype=np.uint8)
    index = PlanIndex.build(codes, SCOPES, as_keys([key for _, key in plan]))
    keys = as_keys(page)
    found = PrefixLookup(index).positions(scope, keys)
    assert found.dtype == np.int64
    assert found.tolist() == index.positions(scope, keys).tolist()
