"""A list page is built column-wise for untouched snapshots: it must answer exactly what the
snapshot objects themselves say (`Snapshot.to_json`), whatever was patched, created or
deleted before."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from batchtag.sandbox.store import SnapshotStore

SIZE = 300


@settings(max_examples=40, deadline=None)
@given(
    patched=st.sets(st.integers(0, SIZE - 1), max_size=20),
    create=st.integers(0, 5),
    delete=st.integers(0, 5),
    offset=st.integers(0, SIZE),
    limit=st.integers(1, 120),
    lock_rate=st.sampled_from([0.0, 0.3]),
)
def test_a_page_is_what_each_snapshot_says(patched, create, delete, offset, limit, lock_rate):
    store = SnapshotStore(seed=7, snapshots=SIZE, lock_rate=lock_rate)
    ids = store.ids()
    for i in sorted(patched):
        snapshot = store.find(1, 1, ids[i])
        if snapshot.task_id is None:
            store.patch(1, 1, ids[i], {"tags": {"env": f"v{i}"}}, now=0.0)
    store.mutate(1, 1, create=create, delete=delete)
    count, page = store.list(1, 1, limit=limit, offset=offset)
    expected = [s.to_json() for s in store.snapshots(1, 1)[offset : offset + limit]]
    assert count == len(store.snapshots(1, 1))
    assert page == expected
    assert [list(row) for row in page] == [list(row) for row in expected]  # key order too
