"""The plan diffs a page of snapshots at once (`DiffCollector.add_block`): its rows and
summary are those of diffing entry by entry (`DiffCollector.add`, i.e. `diff_entry`),
whatever the entries' shapes, the snapshots' tags and the order the pages arrive in."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from manifest_helpers import NO_ENV

from batchtag.diff import DiffCollector, entry_block, render_plan
from batchtag.errors import ManifestError
from batchtag.manifest import PlanEntries, read_plan
from batchtag.model import PlanEntry, as_snapshot

KEYS = ["env", "team", "policy"]  # "policy" is read-only on some snapshots
VALUES = st.sampled_from(["x", "y"])
IDS = [str(uuid.UUID(int=i + 1, version=4)) for i in range(8)]

TAG = st.fixed_dictionaries(
    {"key": st.sampled_from(KEYS), "value": VALUES},
    optional={"read_only": st.booleans()},
)
SNAPSHOT = st.none() | st.fixed_dictionaries(
    {
        "name": st.sampled_from(["db-1", "db-2", None]),
        "task_id": st.sampled_from([None, "", "task-1"]),
        "tags": st.none() | st.lists(TAG, max_size=5),  # repeated keys too
    }
)
ENTRY = st.builds(
    PlanEntry,
    project_id=st.just(1),
    region_id=st.sampled_from([1, 2]),
    snapshot_id=st.sampled_from(IDS),
    tags=st.dictionaries(st.sampled_from(KEYS), st.none() | VALUES, max_size=3),
    clear=st.booleans(),
    renames=st.dictionaries(st.sampled_from(KEYS), st.sampled_from(KEYS), max_size=1),
    name=st.sampled_from([None, "db-1", "db-3"]),
    rows=st.lists(st.integers(1, 9), min_size=1, max_size=2),
    extra=st.fixed_dictionaries({}, optional={"ticket": st.sampled_from(["T-1", 7])}),
)


def one_by_one(entries, snapshots, arrival, include_noop=False):
    collector = DiffCollector(["ticket"], include_noop=include_noop)
    for position in arrival:
        collector.add(entries[position], as_snapshot(snapshots[position]), position)
    return collector.finish()


def by_blocks(entries, snapshots, arrival, cuts, include_noop=False, keep_rows=True):
    collector = DiffCollector(["ticket"], include_noop=include_noop, keep_rows=keep_rows)
    for block in np.split(np.asarray(arrival, dtype=np.int64), sorted(cuts)):
        if len(block):
            made = entry_block(entries, block)
            collector.add_block(made, [as_snapshot(snapshots[p]) for p in block.tolist()])
    return collector.finish()


def same_diff(ours, theirs) -> None:
    assert ours.summary == theirs.summary
    assert list(ours.records()) == list(theirs.records())
    assert render_plan(ours, limit=50) == render_plan(theirs, limit=50)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pairs=st.lists(st.tuples(ENTRY, SNAPSHOT), min_size=1, max_size=12),
    order=st.randoms(use_true_random=False),
    cuts=st.lists(st.integers(0, 12), max_size=3),
    include_noop=st.booleans(),
)
def test_blocks_give_the_rows_of_diffing_entry_by_entry(pairs, order, cuts, include_noop):
    entries = [entry for entry, _ in pairs]
    snapshots = [snapshot for _, snapshot in pairs]
    arrival = list(range(len(entries)))
    order.shuffle(arrival)  # pages deliver in listing order, not plan order
    ours = by_blocks(entries, snapshots, arrival, cuts, include_noop)
    same_diff(ours, one_by_one(entries, snapshots, arrival, include_noop))
    counted = by_blocks(entries, snapshots, arrival, cuts, include_noop, keep_rows=False)
    assert counted.summary == ours.summary and len(counted) == 0


MANIFEST_ROW = st.tuples(
    st.sampled_from(IDS),
    st.sampled_from(["1", "2"]),  # region
    st.sampled_from(["set", "set", "set", "delete", "name", "clear", "rename"]),
    st.sampled_from(KEYS),
    st.sampled_from(["x", "y", "team"]),
    st.sampled_from(["", "T-1", "T-2"]),  # passthrough
)


def manifest(rows: list[tuple]) -> pd.DataFrame:
    data = [
        (sid, "1", region, op, "" if op in ("name", "clear") else key)
        + ("" if op in ("delete", "clear") else value, ticket)
        for sid, region, op, key, value, ticket in rows
    ]
    columns = ["snapshot_id", "project_id", "region_id", "op", "key", "value", "ticket"]
    return pd.DataFrame(data, columns=columns)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(MANIFEST_ROW, min_size=1, max_size=20),
    current=st.lists(SNAPSHOT, min_size=len(IDS) * 2, max_size=len(IDS) * 2),
    order=st.randoms(use_true_random=False),
    cuts=st.lists(st.integers(0, 16), max_size=3),
)
def test_a_manifests_columns_give_the_rows_of_its_entries(rows, current, order, cuts):
    try:
        plan = read_plan(manifest(rows), env=NO_ENV)
    except ManifestError:  # conflicting rows (e.g. a set and a delete of one key)
        assume(False)
    assert isinstance(plan.entries, PlanEntries)
    listed = list(plan.entries)
    snapshots = [current[IDS.index(e.snapshot_id) * 2 + e.region_id - 1] for e in listed]
    arrival = list(range(len(listed)))
    order.shuffle(arrival)
    ours = by_blocks(plan.entries, snapshots, arrival, cuts)
    same_diff(ours, one_by_one(listed, snapshots, arrival))


def test_blocks_of_a_list_do_not_mix_up_their_entries_tag_states():
    """A list's block numbers its states from 0 again: block 2's first entry must not be
    compared with the tags block 1's first entry asked for."""
    current = {"name": "db-1", "task_id": None, "tags": [{"key": "env", "value": "x"}]}
    entries = [PlanEntry(1, 1, IDS[0], tags={}), PlanEntry(1, 1, IDS[1], tags={"env": None})]
    ours = by_blocks(entries, [current, current], [0, 1], cuts=[1])
    assert [(r["snapshot_id"], r["change"]) for r in ours.records()] == [(IDS[1], "remove")]
    same_diff(ours, one_by_one(entries, [current, current], [0, 1]))


def test_a_block_of_entries_whose_ids_are_text_has_their_ids_rows_and_extras():
    from batchtag.model import EMPTY, SharedDict

    entries = PlanEntries(
        projects=np.array([1, 1, 2]),
        regions=np.array([1, 1, 1]),
        snapshots=pa.array(["snap-a", "snap-b", "snap-c"]),  # not UUIDs: held as text
        state_codes=np.array([0, 0, 0]),
        states=[(SharedDict(env="x"), False, EMPTY)],
        names=None,
        row_ids=np.array([5, 6, 7, 8]),
        row_bounds=np.array([0, 1, 3, 4]),
        extra_codes=np.array([0, 1, 0]),
        extras=[EMPTY, SharedDict(ticket="T-1")],
    )
    block = entry_block(entries, np.array([2, 1]))
    assert block.ids == ["snap-c", "snap-b"] and block.projects == [2, 1]
    assert block.rows == [[8], [6, 7]]
    assert [block.entry(j) for j in range(2)] == [entries[2], entries[1]]
