"""The plan diff: what a plan entry would change on a snapshot, checked against the sandbox
store's own PATCH semantics (merge patch, read-only tags preserved), and how it prints."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchtag import diff, record
from batchtag.diff import (
    DIFF_COLUMNS,
    EXIT_CHANGES,
    diff_entry,
    diff_frame,
    diff_plan,
    plan_exit_code,
    print_plan,
    render_plan,
)
from batchtag.model import CONFLICT, Plan, PlanEntry, as_snapshot
from batchtag.record import EXIT_FAILED, EXIT_OK
from batchtag.sandbox.store import Snapshot, SnapshotStore

# verdicts and change kinds
kinds = SimpleNamespace(
    NOOP=diff.NOOP,
    LOCKED=diff.LOCKED,
    NOT_FOUND=diff.NOT_FOUND,
    CONFLICT=CONFLICT,
    READ_ONLY=record.READ_ONLY,
    CONFLICT_NOTE=record.CONFLICT_NOTE,
    MODIFY=record.MODIFY,
    REMOVE=record.REMOVE,
    NAME=record.NAME,
)


def plain(frame: pd.DataFrame) -> list[list]:
    """A frame's cells as lists, a missing cell None (text columns hold NaN for it)."""
    return frame.astype(object).where(frame.notna(), None).values.tolist()


SID = "aaaaaaaa-0000-4000-8000-000000000001"
USER_KEYS = ["env", "team", "cc", "tmp"]
RO_KEYS = ["created-by", "policy"]
VALUES = ["x", "y", "z"]
NAMES = ["db-one", "db-two"]
TASK = "bbbbbbbb-0000-4000-8000-000000000009"


def snapshot(
    tags: dict[str, str],
    ro: dict[str, str] | None = None,
    name: str = "db-one",
    task_id: str | None = None,
) -> Snapshot:
    ro = ro or {}
    return Snapshot(
        id=SID,
        name=name,
        description=None,
        status="available",
        size=1,
        volume_id=SID,
        project_id=1,
        region="Luxembourg-2",
        region_id=1,
        created_at="2024-01-01T00:00:00.000000+00:00",
        updated_at="2024-01-01T00:00:00.000000+00:00",
        creator_task_id=SID,
        task_id=task_id,
        tags={**tags, **ro},
        read_only=set(ro),
    )


def patched(snap: Snapshot, body: dict) -> Snapshot:
    """The snapshot after the sandbox applies `body` to it (its lock lifted)."""
    store = SnapshotStore(snapshots=0)
    snap.task_id = None
    store.scopes[(1, 1)].add(snap)
    store.patch(1, 1, snap.id, body, now=0.0)
    return snap


def user_tags(snap: Snapshot) -> dict[str, str]:
    return {k: v for k, v in snap.tags.items() if k not in snap.read_only}


def ro_tags(snap: Snapshot) -> dict[str, str]:
    return {k: v for k, v in snap.tags.items() if k in snap.read_only}


any_key = st.sampled_from(USER_KEYS + RO_KEYS)
entries = st.builds(
    PlanEntry,
    project_id=st.just(1),
    region_id=st.just(1),
    snapshot_id=st.just(SID),
    tags=st.dictionaries(any_key, st.none() | st.sampled_from(VALUES), max_size=4),
    clear=st.booleans(),
    renames=st.dictionaries(any_key, any_key, max_size=2).map(
        lambda r: {old: new for old, new in r.items() if old != new}
    ),
    name=st.none() | st.sampled_from(NAMES),
)
snapshots = st.builds(
    snapshot,
    tags=st.dictionaries(st.sampled_from(USER_KEYS), st.sampled_from(VALUES), max_size=4),
    ro=st.dictionaries(st.sampled_from(RO_KEYS), st.sampled_from(VALUES), max_size=2),
    name=st.sampled_from(NAMES),
    task_id=st.none() | st.just(TASK),
)


def refused_renames(entry: PlanEntry, before: dict[str, str], ro: dict[str, str]) -> list[str]:
    """The renames of `entry` that land on a key holding a different value (played in
    order on the user tags, as the API would)."""
    if entry.clear:
        return []
    tags, refused = dict(before), []
    for old, new in entry.renames.items():
        if old in tags and new not in ro:
            value = tags.pop(old)
            if tags.get(new) not in (None, value):
                refused.append(new)
            tags[new] = value
    return refused


@settings(max_examples=400, deadline=None)
@given(entry=entries, snap=snapshots)
def test_the_minimal_body_does_exactly_what_the_diff_predicts(entry, snap):
    before, ro, name, task_id = user_tags(snap), ro_tags(snap), snap.name, snap.task_id
    diff = diff_entry(entry, as_snapshot(snap.to_json()))
    after = patched(snap, diff.body)
    assert user_tags(after) == diff.after
    assert ro_tags(after) == ro  # read-only tags are never touched
    assert after.name == diff.name_after
    # A rename onto a key that holds another value is a conflict: notes, no change; the
    # body is what `force` would send.
    refused = refused_renames(entry, before, ro)
    assert (diff.verdict == kinds.CONFLICT) == bool(refused)
    if refused:
        assert [c.key for c in diff.changes] == refused and diff.conflict
        assert {c.change for c in diff.changes} == {kinds.CONFLICT_NOTE}
        return
    # The diff's lines, replayed on the old state, give the new one.
    replayed = dict(before)
    for line in diff.changes:
        if line.change != kinds.READ_ONLY and line.field != kinds.NAME:
            if line.new is None:
                del replayed[line.key]
            else:
                replayed[line.key] = line.new
    assert replayed == diff.after
    assert any(c.field == kinds.NAME for c in diff.changes) == (diff.name_after != name)
    # noop <=> empty body <=> no effective change; locked only when a write is needed.
    effective = [c for c in diff.changes if c.change != kinds.READ_ONLY]
    assert (diff.verdict == kinds.NOOP) == (diff.body == {}) == (not effective)
    assert (diff.verdict == kinds.LOCKED) == bool(diff.body and task_id)


@settings(max_examples=200, deadline=None)
@given(entry=entries, snap=snapshots)
def test_a_blind_write_ends_where_the_minimal_one_does(entry, snap):
    if entry.needs_current:
        return
    blind = patched(snapshot(user_tags(snap), ro_tags(snap), snap.name), entry.body())
    diff = diff_entry(entry, as_snapshot(snap.to_json()))
    assert (user_tags(blind), blind.name) == (diff.after, diff.name_after)


def test_read_only_keys_are_problems_not_changes():
    snap = snapshot({"env": "x"}, ro={"created-by": "gcore", "policy": "daily"})
    entry = PlanEntry(1, 1, SID, tags={"created-by": "me"}, renames={"env": "policy"})
    diff = diff_entry(entry, as_snapshot(snap.to_json()))
    assert diff.verdict == kinds.NOOP and diff.body == {}  # the rename onto `policy` keeps `env`
    assert [(c.key, c.change, c.old, c.new) for c in diff.changes] == [
        ("created-by", kinds.READ_ONLY, "gcore", "me"),
        ("policy", kinds.READ_ONLY, "daily", "x"),
    ]
    # Setting a read-only key to the value it has is harmless: no problem.
    same = PlanEntry(1, 1, SID, tags={"created-by": "gcore"})
    assert diff_entry(same, as_snapshot(snap.to_json())).changes == []


def test_verdicts_not_found_locked_and_a_same_name_is_a_noop():
    assert diff_entry(PlanEntry(1, 1, SID, tags={"a": "b"}), None).verdict == kinds.NOT_FOUND
    locked = as_snapshot(snapshot({"env": "x"}, task_id=TASK).to_json())
    assert diff_entry(PlanEntry(1, 1, SID, tags={"env": "y"}), locked).verdict == kinds.LOCKED
    assert diff_entry(PlanEntry(1, 1, SID, tags={"env": "x"}), locked).verdict == kinds.NOOP
    renamed = diff_entry(PlanEntry(1, 1, SID, name="db-one"), as_snapshot(snapshot({}).to_json()))
    assert (renamed.verdict, renamed.body) == (kinds.NOOP, {})


def mixed_frame():
    sids = [f"aaaaaaaa-0000-4000-8000-00000000000{i}" for i in range(5)]
    current = {"env": "Prod", "tmp": "yes"}

    def snap(sid, **kw):
        data = snapshot(current, ro={"created-by": "gcore"}, **kw).to_json()
        return {**data, "id": sid}

    pairs = [
        (PlanEntry(1, 1, sids[0], tags={"env": "prod", "tmp": None, "cc": "7"}, name="db-01",
                   rows=[1, 2], extra={"ticket": "T-1", "key": "k"}), snap(sids[0])),
        (PlanEntry(1, 1, sids[1], tags={"env": "Prod"}, rows=[3]), snap(sids[1])),
        (PlanEntry(1, 1, sids[2], tags={"cc": "7"}, rows=[4]), None),
        (PlanEntry(1, 1, sids[3], tags={"cc": "8"}, rows=[5]), snap(sids[3], task_id=TASK)),
        (PlanEntry(1, 1, sids[4], tags={"created-by": "me"}, rows=[6]), snap(sids[4])),
    ]  # fmt: skip
    return sids, diff_frame(pairs, passthrough=["ticket", "key"])


def cells(frame) -> list[list]:
    """The frame's cells as lists, a missing one (NaN in the string dtype) as None."""
    return frame.astype(object).where(frame.notna(), None).values.tolist()


def test_diff_frame_has_one_row_per_change_and_the_summary():
    sids, frame = mixed_frame()
    assert list(frame.columns) == [*DIFF_COLUMNS, "ticket", "manifest_key"]
    first = frame[frame["snapshot_id"] == sids[0]]
    assert cells(first[["field", "key", "change", "old", "new"]]) == [
        ["tag", "cc", "add", None, "7"],
        ["tag", "env", kinds.MODIFY, "Prod", "prod"],
        ["tag", "tmp", kinds.REMOVE, "yes", None],
        ["name", None, kinds.MODIFY, "db-one", "db-01"],
    ]
    assert set(first["ticket"]) == {"T-1"} and set(first["manifest_key"]) == {"k"}
    assert first["rows"].iloc[0] == [1, 2]
    assert sids[1] not in set(frame["snapshot_id"])  # noop: counted, no row
    missing = frame[frame["snapshot_id"] == sids[2]]
    assert cells(missing[["verdict", "change"]]) == [[kinds.NOT_FOUND, None]]
    assert frame.loc[frame["snapshot_id"] == sids[3], "verdict"].tolist() == [kinds.LOCKED]
    summary = frame.attrs["summary"]
    assert summary["verdicts"] == {
        "change": 1,
        "noop": 2,
        "not_found": 1,
        "locked": 1,
        "conflict": 0,
    }
    assert summary["keys"]["cc"] == {"add": 2, "remove": 0, "change": 0}
    assert (summary["writes"], summary["names"], summary["read_only"]) == (2, 1, 1)


def test_printed_plan_and_exit_codes():
    sids, frame = mixed_frame()
    text = render_plan(frame)
    assert text.splitlines()[0] == (
        "Plan: 1 to change, 1 locked, 2 no-op, 1 not found (5 snapshots, 2 writes)"
    )
    assert f"~ 1/1/{sids[0]}  rows 1, 2\n    + cc=7\n    ~ env: Prod → prod\n" in text
    assert "    - tmp (was yes)\n    ~ name: db-one → db-01\n" in text
    assert f"! 1/1/{sids[2]}: not found" in text
    assert "! created-by: read-only, not written (wanted me)" in text
    assert "\x1b[" not in text and "\x1b[" in render_plan(frame, color=True)
    short = render_plan(frame, limit=2)
    assert short.endswith("... and 2 more snapshots") and sids[3] not in short
    out = io.StringIO()
    print_plan(frame, file=out)  # not a terminal: no colour codes
    assert out.getvalue() == text + "\n"
    summary = frame.attrs["summary"]
    assert plan_exit_code(summary) == EXIT_FAILED  # not found / read-only beat changes
    clean = {**summary, "read_only": 0, "verdicts": {**summary["verdicts"], "not_found": 0}}
    assert plan_exit_code(clean) == EXIT_CHANGES
    assert plan_exit_code(clean, detailed=False) == EXIT_OK
    nothing = {**clean, "verdicts": {"change": 0, "noop": 3, "not_found": 0, "locked": 0}}
    assert plan_exit_code(nothing) == EXIT_OK


@pytest.mark.parametrize("include_noop", [False, True])
def test_noop_rows_only_when_asked(include_noop):
    snap = snapshot({"env": "x"}).to_json()
    frame = diff_frame([(PlanEntry(1, 1, SID, tags={"env": "x"}), snap)], include_noop=include_noop)
    assert frame["verdict"].tolist() == ([kinds.NOOP] if include_noop else [])


def test_diff_plan_looks_snapshots_up_by_key_and_keys_print_most_touched_first():
    plan = Plan([PlanEntry(1, 1, SID, tags={"b": "1"}), PlanEntry(1, 2, SID, tags={"a": "1"})])
    both = {(1, 1, SID): snapshot({"a": "0"}).to_json(), (1, 2, SID): snapshot({}).to_json()}
    frame = diff_plan(plan, both)
    assert frame[["region_id", "key", "change"]].values.tolist() == [
        [1, "b", "add"],
        [2, "a", "add"],
    ]
    missing = diff_plan(plan, {(1, 1, SID): both[(1, 1, SID)]})
    assert missing.attrs["summary"]["verdicts"]["not_found"] == 1
    summary = {
        **frame.attrs["summary"],
        "keys": {"a": {"add": 1, "remove": 0, "change": 0}, "z": {"add": 2, "remove": 1}},
    }
    assert render_plan(frame, summary, limit=0).splitlines()[1:] == ["  z  +2 -1", "  a  +1"]
