"""The snapshot model: the API's JSON decoded once, and the compact form a run spills and
reads back gives the same snapshot, whatever its tags."""

from __future__ import annotations

import marshal

from hypothesis import given, settings
from hypothesis import strategies as st

from batchtag.model import Snapshot, as_snapshot

TEXT = st.text(max_size=6)
TAGS = st.lists(
    st.fixed_dictionaries({"key": TEXT, "value": TEXT, "read_only": st.booleans()}),
    max_size=8,
    unique_by=lambda tag: tag["key"],
)
WIRE = st.fixed_dictionaries(
    {"name": st.none() | TEXT, "task_id": st.none() | TEXT, "tags": TAGS},
    optional={"id": TEXT, "size": st.integers()},
)


@settings(max_examples=300, deadline=None)
@given(wire=WIRE)
def test_from_wire_then_compact_then_decode_round_trips(wire):
    snapshot = Snapshot.from_wire(wire)
    spilled = marshal.loads(marshal.dumps(snapshot.compact()))  # as the state's spill does
    back = Snapshot.decode(spilled)
    assert back == snapshot and isinstance(back, Snapshot)
    tags = wire["tags"]
    user = [t for t in tags if not t["read_only"]]
    ro = [t for t in tags if t["read_only"]]
    assert (back.name, back.task_id) == (wire["name"], wire["task_id"])
    assert back.user_tags == {t["key"]: t["value"] for t in user}
    assert list(back.user_tags) == [t["key"] for t in user]  # the API's order kept
    assert back.read_only_tags == {t["key"]: t["value"] for t in ro}
    assert list(back.read_only_tags) == [t["key"] for t in ro]
    assert back.read_only == {t["key"] for t in ro}
    assert back.all_tags == {t["key"]: t["value"] for t in tags}
    assert back.to_wire() == {"name": wire["name"], "task_id": wire["task_id"], "tags": user + ro}
    assert Snapshot.from_wire(back.to_wire()) == back


def test_a_snapshot_without_tags_and_as_snapshot():
    bare = Snapshot.from_wire({"name": "db", "task_id": "t-1", "tags": []})
    assert (bare.user_tags, bare.read_only, bare.task_id) == ({}, frozenset(), "t-1")
    assert Snapshot.from_wire({"name": "db"}).tags == ()  # no tags field at all
    assert as_snapshot(bare) is bare and as_snapshot(None) is None
    assert as_snapshot({"name": "db", "task_id": "t-1", "tags": []}) == bare
