"""Undo, key by key: the change rows back take every changed snapshot back (user tags and
name, read-only tags untouched); only the keys the run changed are compared with what the
run left; rows written blind are listed, the rest reverted; the undo file is a change file
written as the run goes."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from helpers import API_KEY, live_examples
from hypothesis import given, settings
from hypothesis import strategies as st
from test_diff import entries, patched, ro_tags, snapshots, user_tags

import batchtag
from batchtag.diff import diff_entry
from batchtag.errors import UsageError
from batchtag.manifest import read_plan
from batchtag.model import CONFLICT, FAILED, NOT_FOUND, OK, SKIPPED, Result, as_snapshot
from batchtag.record import (
    BLIND_META,
    CHANGE_COLUMNS,
    ChangeWriter,
    inverse_changes,
    undo_changes,
)

SID = "aaaaaaaa-0000-4000-8000-000000000001"
SID2 = "aaaaaaaa-0000-4000-8000-000000000002"


def as_patch(rows: list[dict]) -> dict:
    """Change rows as the PATCH body that applies them (tags merge patch, name)."""
    body: dict = {}
    for row in rows:
        if row["field"] == "name":
            body["name"] = row["new"]
        else:
            body.setdefault("tags", {})[row["key"]] = row["new"]
    return body


@settings(max_examples=300, deadline=None)
@given(entry=entries, snap=snapshots)
def test_the_rows_back_of_a_write_restore_user_tags_and_name(entry, snap):
    before, ro, name = user_tags(snap), ro_tags(snap), snap.name
    diff = diff_entry(entry, as_snapshot(snap.to_json()))
    after = patched(snap, diff.body)
    rows = inverse_changes((1, 1, SID), before, user_tags(after), name, after.name, set(ro))
    if not rows:
        assert (user_tags(after), after.name) == (before, name)
        return
    for row in rows:  # each row's old is what the write left
        now = after.name if row["field"] == "name" else user_tags(after).get(row["key"])
        assert row["old"] == now and row["key"] not in ro
    restored = patched(after, as_patch(rows))
    assert (user_tags(restored), ro_tags(restored), restored.name) == (before, ro, name)


def report_frame(rows: list[dict]) -> pd.DataFrame:
    base = {"project_id": 1, "region_id": 1, "status": OK, "name_before": None}
    return pd.DataFrame([{**base, "name_after": None, **row} for row in rows])


def snap_json(sid: str, tags: dict, ro: dict | None = None, name: str = "db-one") -> dict:
    listed = [{"key": k, "value": v, "read_only": False} for k, v in tags.items()]
    listed += [{"key": k, "value": v, "read_only": True} for k, v in (ro or {}).items()]
    return {"id": sid, "name": name, "task_id": None, "tags": listed}


def cells(frame: pd.DataFrame, columns: list[str]) -> list[list]:
    part = frame[columns]
    return part.astype(object).where(part.notna(), None).values.tolist()


def test_undo_changes_gives_key_rows_for_ok_rows_only():
    report = report_frame(
        [
            # JSON text cells (as a CSV read without parsing would give) work too.
            {"snapshot_id": SID, "tags_before": '{"env": "dev", "gone": "1"}',
             "tags_after": '{"env": "prod", "new": "2"}', "name_before": "db-one",
             "name_after": "db-01", "rows": "[3]"},
            {"snapshot_id": SID2, "status": FAILED, "tags_before": {"a": "1"},
             "tags_after": None},
        ]
    )  # fmt: skip
    undo = undo_changes(report)
    assert list(undo.changes.columns) == CHANGE_COLUMNS
    assert cells(undo.changes, ["field", "key", "change", "old", "new"]) == [
        ["tag", "env", "change", "prod", "dev"],
        ["tag", "gone", "add", None, "1"],
        ["tag", "new", "remove", "2", None],
        ["name", None, "change", "db-01", "db-one"],
    ]
    assert undo.changes["rows"].tolist() == [[3]] * 4
    assert undo.skipped.empty


def test_rows_without_before_state_are_listed_and_the_rest_is_reverted():
    report = report_frame(
        [
            {"snapshot_id": SID, "tags_before": None, "tags_after": {"a": "b"}},
            {"snapshot_id": SID2, "tags_before": {}, "tags_after": {"a": "b"}},
        ]
    )
    undo = undo_changes(report, meta={"before_state": BLIND_META})
    assert undo.changes["snapshot_id"].tolist() == [SID2]
    assert cells(undo.skipped, ["snapshot_id", "status"]) == [[SID, SKIPPED]]
    assert undo.skipped["error"].iloc[0] == (
        "cannot be undone: the run wrote blind (check_current=False), so its before-state "
        "is unknown"
    )
    with pytest.raises(UsageError, match="not a batchtag report"):
        undo_changes(pd.DataFrame({"snapshot_id": [SID]}), report_name="x.csv")


def test_only_the_keys_the_run_changed_can_conflict():
    report = report_frame(
        [
            {"snapshot_id": SID, "tags_before": {"env": "dev"}, "tags_after": {"env": "prod"}},
            {"snapshot_id": SID2, "tags_before": {}, "tags_after": {"batch": "one"}},
        ]
    )
    ghost = "aaaaaaaa-0000-4000-8000-00000000000f"
    report = pd.concat([report, report_frame([{"snapshot_id": ghost, "tags_before": {},
                                               "tags_after": {"x": "y"}}])])  # fmt: skip
    current = {
        # env changed again since the run: a conflict; cost-center added since: kept
        (1, 1, SID): snap_json(SID, {"env": "staging", "cost-center": "cc-1"}),
        (1, 1, SID2): snap_json(SID2, {"batch": "one", "cost-center": "cc-1"}, ro={"by": "x"}),
    }
    undo = undo_changes(report, current)
    assert cells(undo.changes, ["snapshot_id", "key", "old", "new"]) == [
        [SID2, "batch", "one", None]
    ]
    skipped = undo.skipped.set_index("snapshot_id")
    assert skipped.loc[SID, "status"] == CONFLICT
    assert "env: 'prod' → 'staging'" in skipped.loc[SID, "error"]
    assert "force=True" in skipped.loc[SID, "error"]
    assert skipped.loc[ghost, "status"] == NOT_FOUND
    forced = undo_changes(report, current, force=True)  # from what env holds now
    assert cells(forced.changes, ["snapshot_id", "key", "old", "new"]) == [
        [SID, "env", "staging", "dev"],
        [SID2, "batch", "one", None],
    ]
    assert forced.skipped["status"].tolist() == [NOT_FOUND]
    # A key already back where it was needs nothing.
    back = {**current, (1, 1, SID): snap_json(SID, {"env": "dev"})}
    assert SID not in set(undo_changes(report, back).changes["snapshot_id"])


def result(sid: str, status: str = OK, **fields) -> Result:
    return Result(project_id=1, region_id=1, snapshot_id=sid, status=status, **fields)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_the_undo_file_is_an_applicable_change_file_written_as_it_goes(tmp_path, suffix):
    path = tmp_path / f"undo{suffix}"
    with ChangeWriter(path) as writer:
        assert writer.write(
            result(SID, tags_before={"env": "dev"}, tags_after={"env": "prod", "n": "1"},
                   name_before="db-one", name_after="db-01", ro_tags={"created-by": "gcore"})
        )  # fmt: skip
        if suffix != ".parquet":  # handed to the OS before close (Parquet: its journal)
            assert "prod" in path.read_text()
        assert not writer.write(result(SID2, FAILED, tags_before={"a": "b"}))
        assert not writer.write(result(SID2, tags_before=None, tags_after={"a": "b"}))
        assert not writer.write(result(SID2, tags_before={"a": "b"}, tags_after={"a": "b"}))
    with ChangeWriter(path) as writer:  # a resumed run appends
        writer.write(result(SID2, tags_before={}, tags_after={"batch": "one"}))
    plan = read_plan(path, env={})
    assert [(e.snapshot_id, e.tags, e.expect, e.name, e.expect_name) for e in plan] == [
        (SID, {"env": "dev", "n": None}, {"env": "prod", "n": "1"}, "db-one", "db-01"),
        (SID2, {"batch": None}, {"batch": "one"}, None, None),
    ]
    assert len(batchtag.read_changes(path)) == 4
    with pytest.raises(UsageError, match="undo_file='u.txt'.*jsonl"):
        ChangeWriter("u.txt")


# ---------------------------------------------------------------- against the sandbox

SANDBOX_KEYS = ["env", "team", "owner", "batch", "created-by"]  # created-by is read-only there
patches = st.one_of(
    st.just(None),  # clear every user tag
    st.dictionaries(
        st.sampled_from(SANDBOX_KEYS), st.none() | st.sampled_from(["a", "b"]), max_size=3
    ),
)


def state(sandbox, ids: list[str]) -> dict[str, tuple]:
    snaps = {s.id: s for s in sandbox.store.snapshots()}
    return {sid: (user_tags(snaps[sid]), ro_tags(snaps[sid]), snaps[sid].name) for sid in ids}


def current(sandbox) -> dict:
    return {(1, 1, s.id): s.to_json() for s in sandbox.store.snapshots()}


def apply(sandbox, manifest, folder: Path, name: str) -> pd.DataFrame:
    return batchtag.apply(
        manifest,
        report=folder / f"{name}.csv",
        base_url=sandbox.base_url,
        api_key=API_KEY,
        project_id=1,
        region_id=1,
        rate=1000,
    )


def ro_first_ids(sandbox, count: int) -> list[str]:
    """Snapshots with read-only tags first, so every example has some."""
    snaps = sorted(sandbox.store.snapshots(), key=lambda s: not s.read_only)
    return [s.id for s in snaps[:count]]


@pytest.mark.timeout(120)
@live_examples(8)
@given(ops=st.lists(patches, min_size=1, max_size=8))
def test_apply_does_what_plan_predicts_and_undo_restores_it(sandbox, ops):
    sandbox.reset()
    ids = ro_first_ids(sandbox, len(ops))
    manifest = pd.DataFrame({"snapshot_id": ids, "tags": [json.dumps(p) for p in ops]})
    original = state(sandbox, ids)
    plan = read_plan(manifest, project_id=1, region_id=1, env={})
    before = current(sandbox)
    predicted = {e.snapshot_id: diff_entry(e, as_snapshot(before[e.key])).after for e in plan}
    with tempfile.TemporaryDirectory() as folder:
        report = apply(sandbox, manifest, Path(folder), "run")
        assert {sid: user for sid, (user, _, _) in state(sandbox, ids).items()} == predicted
        undo = undo_changes(report, current(sandbox))
        assert undo.skipped.empty
        if len(undo.changes):
            apply(sandbox, undo.changes, Path(folder), "undo")
    assert state(sandbox, ids) == original
