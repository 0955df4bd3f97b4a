"""A manifest's plan held as columns (PlanEntries) behaves as the list of entries it stands
for: every access path gives the same entries, in plan order, whatever the chunking."""

from __future__ import annotations

import uuid
from collections import Counter

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from manifest_helpers import NO_ENV

import batchtag.manifest._entries as entries_module
from batchtag.errors import ManifestError
from batchtag.manifest import PlanEntries, read_plan

IDS = [str(uuid.UUID(int=i + 1, version=4)) for i in range(6)]
ROW = st.tuples(
    st.sampled_from(IDS),
    st.sampled_from(["1", "2"]),  # region
    st.sampled_from(["set", "delete", "name", "clear", "rename"]),
    st.sampled_from(["env", "team"]),
    st.sampled_from(["prod", "dev", "owner"]),
    st.sampled_from(["", "T-1", "T-2"]),  # passthrough
)


def frame_of(rows: list[tuple]) -> pd.DataFrame:
    data = [
        (
            sid,
            "7",
            region,
            op,
            "" if op in ("name", "clear") else key,
            "" if op in ("delete", "clear") else value,
            ticket,
        )
        for sid, region, op, key, value, ticket in rows
    ]
    columns = ["snapshot_id", "project_id", "region_id", "op", "key", "value", "ticket"]
    return pd.DataFrame(data, columns=columns)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, min_size=1, max_size=25), chunk=st.integers(1, 4))
def test_every_access_path_gives_the_same_entries(rows, chunk):
    try:
        plan = read_plan(frame_of(rows), env=NO_ENV)
    except ManifestError:  # conflicting rows (e.g. a set and a delete of one key)
        assume(False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(entries_module, "CHUNK", chunk)  # chunk edges inside the plan
        check_access_paths(plan)


def check_access_paths(plan) -> None:
    entries = plan.entries
    assert isinstance(entries, PlanEntries)
    listed = list(entries)
    assert len(listed) == len(plan) == len({e.key for e in listed})
    assert [entries[i] for i in range(len(entries))] == listed
    assert entries[-1] == listed[-1] and entries[1:3] == listed[1:3]
    assert entries[::2] == listed[::2]
    assert plan.scopes == dict(Counter((e.project_id, e.region_id) for e in listed))
    rows_seen = sorted(r for e in listed for r in e.rows)
    assert rows_seen == list(range(plan.rows))  # every frame row lands in one entry
    for entry in listed:
        assert entry.extra.get("ticket", "") in ("", "T-1", "T-2")


def test_an_entry_is_made_afresh_so_changing_it_changes_nothing():
    plan = read_plan(frame_of([(IDS[0], "1", "set", "env", "prod", "T-1")]), env=NO_ENV)
    plan.entries[0].name = "changed"
    assert plan.entries[0].name is None
    with pytest.raises(IndexError):
        plan.entries[1]
