"""Undo: the inverse manifest takes every changed snapshot back (user tags and name, read-only
tags untouched), refuses a run that did not read, and leaves drifted snapshots alone."""

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
from batchtag import errors
from batchtag.diff import diff_entry
from batchtag.errors import UsageError
from batchtag.manifest import read_plan
from batchtag.model import CONFLICT, FAILED, NOT_FOUND, OK, Result
from batchtag.record import UNDO_COLUMNS, UndoWriter, inverse_row, undo_manifest

SID = "aaaaaaaa-0000-4000-8000-000000000001"
SID2 = "aaaaaaaa-0000-4000-8000-000000000002"


@settings(max_examples=300, deadline=None)
@given(entry=entries, snap=snapshots)
def test_the_inverse_of_a_write_restores_user_tags_and_name(entry, snap):
    before, ro, name = user_tags(snap), ro_tags(snap), snap.name
    diff = diff_entry(entry, snap.to_json())
    after = patched(snap, diff.body)
    row = inverse_row((1, 1, SID), before, user_tags(after), name, after.name, set(ro))
    if row is None:
        assert (user_tags(after), after.name) == (before, name)
        return
    body = {"tags": row["tags"], **({"name": row["name"]} if row["name"] else {})}
    restored = patched(after, body)
    assert (user_tags(restored), ro_tags(restored), restored.name) == (before, ro, name)


def report_frame(rows: list[dict]) -> pd.DataFrame:
    base = {"project_id": 1, "region_id": 1, "status": OK, "name_before": None}
    return pd.DataFrame([{**base, "name_after": None, **row} for row in rows])


def snap_json(sid: str, tags: dict, ro: dict | None = None, name: str = "db-one") -> dict:
    listed = [{"key": k, "value": v, "read_only": False} for k, v in tags.items()]
    listed += [{"key": k, "value": v, "read_only": True} for k, v in (ro or {}).items()]
    return {"id": sid, "name": name, "task_id": None, "tags": listed}


def test_undo_manifest_inverts_ok_rows_only():
    report = report_frame(
        [
            # JSON text cells (as a CSV read without parsing would give) work too.
            {"snapshot_id": SID, "tags_before": '{"env": "dev", "gone": "1"}',
             "tags_after": '{"env": "prod", "new": "2"}', "name_before": "db-one",
             "name_after": "db-01"},
            {"snapshot_id": SID2, "status": FAILED, "tags_before": {"a": "1"},
             "tags_after": None},
        ]
    )  # fmt: skip
    undo = undo_manifest(report)
    assert list(undo.manifest.columns) == UNDO_COLUMNS
    assert undo.manifest.to_dict("records") == [
        {
            "project_id": 1,
            "region_id": 1,
            "snapshot_id": SID,
            "tags": {"env": "dev", "gone": "1", "new": None},
            "name": "db-one",
        }
    ]
    assert undo.skipped.empty


def test_undo_refuses_a_run_that_did_not_read(tmp_path):
    blind = report_frame([{"snapshot_id": SID, "tags_before": None, "tags_after": {"a": "b"}}])
    with pytest.raises(UsageError, match=f"no before-state for snapshot {SID}.*check_current=True"):
        undo_manifest(blind, report_name="run1.csv")
    token = errors.CALLER.set("cli")
    try:
        with pytest.raises(UsageError, match="^run1.csv: .*undo needs a run with --check-current$"):
            undo_manifest(blind.drop(columns=["tags_before"]), report_name="run1.csv")
    finally:
        errors.CALLER.reset(token)


def test_drift_is_a_conflict_left_alone_unless_forced():
    report = report_frame(
        [
            {"snapshot_id": SID, "tags_before": {"env": "dev"}, "tags_after": {"env": "prod"}},
            {"snapshot_id": SID2, "tags_before": {}, "tags_after": {"batch": "one"}},
        ]
    )
    ghost = (1, 1, "aaaaaaaa-0000-4000-8000-00000000000f")
    report = pd.concat([report, report_frame([{"snapshot_id": ghost[2], "tags_before": {},
                                               "tags_after": {"x": "y"}}])])  # fmt: skip
    current = {
        (1, 1, SID): snap_json(SID, {"env": "staging"}, ro={"created-by": "gcore"}),
        (1, 1, SID2): snap_json(SID2, {"batch": "one"}, ro={"created-by": "gcore"}),
    }
    undo = undo_manifest(report, current)
    assert undo.manifest["snapshot_id"].tolist() == [SID2]
    assert undo.manifest["tags"].tolist() == [{"batch": None}]
    skipped = undo.skipped.set_index("snapshot_id")
    assert skipped.loc[SID, "status"] == CONFLICT
    assert "env: 'prod' → 'staging'" in skipped.loc[SID, "error"]
    assert "force" in skipped.loc[SID, "error"]
    assert skipped.loc[ghost[2], "status"] == NOT_FOUND
    forced = undo_manifest(report, current, force=True)
    assert forced.manifest["snapshot_id"].tolist() == [SID, SID2]
    assert forced.skipped["status"].tolist() == [NOT_FOUND]


def result(sid: str, status: str = OK, **fields) -> Result:
    return Result(project_id=1, region_id=1, snapshot_id=sid, status=status, **fields)


def test_undo_writer_writes_an_applicable_manifest_as_it_goes(tmp_path):
    path = tmp_path / "undo.jsonl"
    with UndoWriter(path) as writer:
        assert writer.write(
            result(SID, tags_before={"env": "dev"}, tags_after={"env": "prod", "n": "1"},
                   name_before="db-one", name_after="db-01", ro_tags={"created-by": "gcore"})
        )  # fmt: skip
        assert path.read_text().count("\n") == 1  # handed to the OS before close
        assert not writer.write(result(SID2, FAILED, tags_before={"a": "b"}))
        assert not writer.write(result(SID2, tags_before=None, tags_after={"a": "b"}))
        assert not writer.write(result(SID2, tags_before={"a": "b"}, tags_after={"a": "b"}))
    with UndoWriter(path, append=True) as writer:
        writer.write(result(SID2, tags_before={}, tags_after={"batch": "one"}))
    plan = read_plan(path, env={})
    assert [(e.snapshot_id, e.tags, e.name) for e in plan] == [
        (SID, {"env": "dev", "n": None}, "db-one"),
        (SID2, {"batch": None}, None),
    ]
    UndoWriter(path).close()  # a new run starts the file afresh
    assert path.read_text() == ""
    with pytest.raises(UsageError, match="undo_file='u.csv'.*jsonl"):
        UndoWriter("u.csv")


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
        check_current=True,
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
    predicted = {e.snapshot_id: diff_entry(e, before[e.key]).after for e in plan}
    with tempfile.TemporaryDirectory() as folder:
        report = apply(sandbox, manifest, Path(folder), "run")
        assert {sid: user for sid, (user, _, _) in state(sandbox, ids).items()} == predicted
        undo = undo_manifest(report, current(sandbox))
        assert undo.skipped.empty
        if len(undo.manifest):
            apply(sandbox, undo.manifest, Path(folder), "undo")
    assert state(sandbox, ids) == original


@pytest.mark.timeout(60)
def test_undo_skips_a_snapshot_someone_changed_since(sandbox, tmp_path):
    ids = sandbox.store.ids()[:3]
    original = state(sandbox, ids)
    manifest = pd.DataFrame({"snapshot_id": ids, "tags": ['{"batch": "one"}'] * 3})
    report = apply(sandbox, manifest, tmp_path, "run")
    sandbox.store.find(1, 1, ids[0]).tags["batch"] = "theirs"  # a later change by someone else
    undo = undo_manifest(report, current(sandbox))
    assert undo.skipped[["snapshot_id", "status"]].values.tolist() == [[ids[0], CONFLICT]]
    apply(sandbox, undo.manifest, tmp_path, "undo")
    after = state(sandbox, ids)
    assert after[ids[0]][0]["batch"] == "theirs"
    assert {sid: after[sid] for sid in ids[1:]} == {sid: original[sid] for sid in ids[1:]}
