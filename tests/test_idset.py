"""The listing's seen-set (`batchtag.read._idset.IdSet`) against a Python set, with keys that
often share one of their two halves (the case its integer search must look past)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from batchtag.model import KEY
from batchtag.read import IdSet

HALVES = [bytes([b]) * 8 for b in (0, 1, 2, 255)]
KEYS = st.tuples(st.sampled_from(HALVES), st.sampled_from(HALVES)).map(lambda h: h[0] + h[1])


def as_keys(raw: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(raw), dtype=KEY)


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(st.lists(KEYS, max_size=7), max_size=10), probe=st.lists(KEYS))
def test_an_id_set_is_a_set_when_keys_share_a_half(batches, probe):
    seen, model = IdSet(), set()
    seen.MERGE = 3  # blocks and runs after a few keys
    for batch in batches:
        want = []
        for key in batch:
            want.append(key not in model)
            model.add(key)
        assert seen.add(as_keys(batch)).tolist() == want
        assert len(seen) == len(model)
    assert seen.contains(as_keys(probe)).tolist() == [key in model for key in probe]
