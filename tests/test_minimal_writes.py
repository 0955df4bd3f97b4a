"""Apply reads the state first: minimal PATCH bodies, no-ops and missing snapshots cost no
write, the auto default, --no-check-current, the before-state and --undo-file."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from apply_runs import KEYS, endpoints, put_tags, run, sets, snapshot, user_state, with_user_tags
from helpers import SID, live_examples, scope_of
from hypothesis import assume, given
from hypothesis import strategies as st

import batchtag
from batchtag.diff import diff_plan
from batchtag.errors import AbortRun, ManifestError
from batchtag.manifest import read_plan

# ---------------------------------------------------------------- re-runs send nothing


def test_a_second_run_of_the_same_manifest_sends_no_patch(sandbox, tmp_path):
    ids = sandbox.store.ids()[:20]
    manifest = pd.DataFrame({"snapshot_id": ids, "tag:batch": "one", "name": "renamed-1"})
    first = run(sandbox, manifest, tmp_path, "first")
    assert set(first.status) == {"ok"}
    patches = endpoints(sandbox)["patch"]
    second = run(sandbox, manifest, tmp_path, "second")
    assert endpoints(sandbox)["patch"] == patches  # not one write
    assert set(second.status) == {"noop"} and second.attempts.eq(0).all()
    summary = second.attrs["summary"]
    assert summary["writes_saved"] == 20 and summary["sent"] == 0
    assert summary["state_read"] == {"snapshots": 20, "requests": 1}  # one list page


def test_patch_bodies_carry_only_what_changes(sandbox, tmp_path):
    sid = with_user_tags(sandbox, 1)[0]
    tags, name = user_state(sandbox, sid)
    key = sorted(tags)[0]
    manifest = pd.DataFrame(
        {
            "snapshot_id": [sid, *sandbox.store.ids()[-2:]],
            "tags": [{key: tags[key], "new": "x"}] * 3,
        }
    )
    manifest["name"] = name  # unchanged for the first snapshot
    report = run(sandbox, manifest, tmp_path, dry_run=True, check_current=True)
    row = report.set_index("snapshot_id").loc[sid]
    assert row.status == "planned"
    assert json.loads(row.request_body) == {"tags": {"new": "x"}}  # not the unchanged key, nor name


# ---------------------------------------------------------------- a mixed manifest


def test_mixed_manifest_statuses_and_final_state(make_sandbox, tmp_path):
    sandbox = make_sandbox(lock_rate=0.1, lock_ms=50)
    locked = next(s.id for s in sandbox.store.snapshots() if s.task_id)
    free = [s for s in with_user_tags(sandbox, 40) if not snapshot(sandbox, s)["task_id"]]
    change, noop, rename, replace, named = free[:5]
    noop_tags, _ = user_state(sandbox, noop)
    noop_key = sorted(noop_tags)[0]
    old_key = sorted(user_state(sandbox, rename)[0])[0]
    rows = [
        {"snapshot_id": change, "op": "set", "key": "k1", "value": "changed"},
        {"snapshot_id": noop, "op": "set", "key": noop_key, "value": noop_tags[noop_key]},
        {"snapshot_id": SID, "op": "set", "key": "k1", "value": "v"},
        {"snapshot_id": locked, "op": "set", "key": "k1", "value": "v"},
        {"snapshot_id": rename, "op": "rename", "key": old_key, "value": "renamed-key"},
        {"snapshot_id": replace, "op": "clear"},
        {"snapshot_id": replace, "op": "set", "key": "k2", "value": "only"},
        {"snapshot_id": named, "op": "name", "value": "new-name"},
    ]
    plan = read_plan(pd.DataFrame(rows), project_id=1, region_id=1, env={})
    before = {
        e.snapshot_id: user_state(sandbox, e.snapshot_id)[0] for e in plan if e.snapshot_id != SID
    }
    report = run(sandbox, pd.DataFrame(rows), tmp_path).set_index("snapshot_id")
    expected = {change: "ok", noop: "noop", SID: "not_found", locked: "ok", rename: "ok"}
    expected |= {replace: "ok", named: "ok"}
    assert report.status.to_dict() == expected
    assert report.loc[SID, "error"] == "not found when the state was read"
    assert report.loc[SID, "attempts"] == 0 and report.loc[noop, "attempts"] == 0
    for entry in plan:
        if entry.snapshot_id != SID:
            tags, name = user_state(sandbox, entry.snapshot_id)
            assert tags == entry.target_tags(before[entry.snapshot_id])
    assert user_state(sandbox, replace)[0] == {"k2": "only"}
    assert user_state(sandbox, named)[1] == "new-name"
    assert report.loc[rename, "tags_before"] == before[rename]  # the before-state


# ---------------------------------------------------------------- the property


ops_for_one = st.fixed_dictionaries(
    {
        "patch": st.dictionaries(st.sampled_from(KEYS), st.none() | st.sampled_from("ab")),
        "clear": st.booleans(),
        "rename": st.none() | st.tuples(st.sampled_from(KEYS), st.sampled_from(KEYS)),
        "name": st.none() | st.sampled_from(["name-a", "name-b"]),
    }
)
current_tags = st.dictionaries(st.sampled_from(KEYS), st.sampled_from("abc"), max_size=4)


def long_rows(sid: str, ops: dict) -> list[dict]:
    rows = [{"snapshot_id": sid, "op": "clear"}] if ops["clear"] else []
    for key, value in ops["patch"].items():
        op = "delete" if value is None else "set"
        rows.append({"snapshot_id": sid, "op": op, "key": key, "value": value})
    if ops["rename"]:
        rows.append(
            {"snapshot_id": sid, "op": "rename", "key": ops["rename"][0], "value": ops["rename"][1]}
        )
    if ops["name"]:
        rows.append({"snapshot_id": sid, "op": "name", "value": ops["name"]})
    return rows


def predicted(frame: pd.DataFrame, before: dict) -> dict:
    """The user tags and name of each snapshot after applying a `diff_plan` frame."""
    out = {sid: (dict(tags), name) for sid, (tags, name) in before.items()}
    for row in frame.itertuples():
        tags, name = out[row.snapshot_id]
        if row.field == "name":
            out[row.snapshot_id] = (tags, row.new)
        elif row.change in ("add", "change"):
            tags[row.key] = row.new
        elif row.change == "remove":
            tags.pop(row.key)
    return out


@live_examples(12, timeout=180)
@given(
    start=st.lists(current_tags, min_size=4, max_size=4),
    ops=st.lists(ops_for_one, min_size=1, max_size=4),
)
def test_apply_ends_where_diff_plan_predicted(sandbox, tmp_path_factory, start, ops):
    sandbox.reset()
    ids = sandbox.store.ids()[:4]
    rows = [r for sid, o in zip(ids, ops, strict=False) for r in long_rows(sid, o)]
    assume(rows)
    put_tags(sandbox, dict(zip(ids, start, strict=True)))
    try:
        plan = read_plan(pd.DataFrame(rows), project_id=1, region_id=1, env={})
    except ManifestError:
        assume(False)  # a conflicting manifest: validation refuses it, nothing to compare
    before = {sid: user_state(sandbox, sid) for sid in ids}
    diff = diff_plan(plan, {(1, 1, s): snapshot(sandbox, s) for s in ids})
    expect = predicted(diff, before)  # a conflict's rows are notes: it stays as it is
    report = run(sandbox, pd.DataFrame(rows), tmp_path_factory.mktemp("run"), check_current=True)
    assert set(report.status) <= {"ok", "noop", "conflict"}
    conflicts = set(diff.loc[diff["verdict"] == "conflict", "snapshot_id"])
    assert set(report.loc[report.status == "conflict", "snapshot_id"]) == conflicts
    assert {sid: user_state(sandbox, sid) for sid in ids} == expect


# ---------------------------------------------------------------- undo file


# ---------------------------------------------------------------- how the state is read


def test_every_default_run_reads_pages_or_gets_whichever_are_fewer(make_sandbox, tmp_path):
    sandbox = make_sandbox(snapshots=3500)  # 4 list pages
    ids = sandbox.store.ids()
    tiny = run(sandbox, sets(ids[-2:]), tmp_path, "tiny")
    # the first page (it gives the count), then a GET each: fewer than the other 3 pages
    assert endpoints(sandbox) == {"list": 1, "get": 2, "patch": 2}
    assert tiny.tags_before.notna().all()  # the before-state is in the report: undoable
    sandbox.reset()
    report = run(sandbox, sets(ids[::50]), tmp_path, "big")  # 70 snapshots > 4 pages
    assert endpoints(sandbox) == {"list": 4, "get": 0, "patch": 70}
    assert report.tags_before.notna().all()


def test_check_current_reads_a_tiny_manifest_by_get(make_sandbox, tmp_path):
    sandbox = make_sandbox(snapshots=3500)
    report = run(sandbox, sets(sandbox.store.ids()[-2:]), tmp_path, check_current=True)
    assert endpoints(sandbox) == {"list": 1, "get": 2, "patch": 2}  # first page, then GETs
    assert report.ro_tags.notna().all() and report.name_before.notna().all()


def test_no_check_current_writes_blind(sandbox, tmp_path):
    ids = sandbox.store.ids()[:50]
    run(sandbox, sets(ids), tmp_path, "first")
    sandbox.reset()
    report = run(sandbox, sets(ids), tmp_path, "again", check_current=False)
    assert endpoints(sandbox) == {"list": 0, "get": 0, "patch": 50}
    assert set(report.status) == {"ok"} and report.tags_before.isna().all()
    assert report.attrs["summary"]["state_read"] == {"snapshots": 0, "requests": 0}


def test_no_check_current_still_reads_what_a_rename_needs(sandbox, tmp_path):
    sid = with_user_tags(sandbox, 1)[0]
    key = sorted(user_state(sandbox, sid)[0])[0]
    rows = [{"snapshot_id": sid, "op": "rename", "key": key, "value": "moved"}]
    rows += [
        {"snapshot_id": s, "op": "set", "key": "k1", "value": "v"} for s in sandbox.store.ids()[-3:]
    ]
    report = run(sandbox, pd.DataFrame(rows), tmp_path, check_current=False)
    assert set(report.status) == {"ok"}
    assert endpoints(sandbox)["get"] + endpoints(sandbox)["list"] == 1  # just the renamed one
    assert "moved" in user_state(sandbox, sid)[0]


def test_rerun_with_one_percent_changed_costs_pages_plus_changes(make_sandbox, tmp_path):
    sandbox = make_sandbox(snapshots=10_000)
    snaps = sandbox.store.snapshots()
    names = [s.name for s in snaps]
    names[::100] = [f"changed-{i}" for i in range(len(names[::100]))]  # 1%: 100 renames
    manifest = pd.DataFrame({"snapshot_id": [s.id for s in snaps], "name": names})
    report = run(sandbox, manifest, tmp_path, concurrency=32, rate=10_000)
    assert report.status.value_counts().to_dict() == {"noop": 9_900, "ok": 100}
    assert sandbox.stats()["total_requests"] <= 110  # 10 list pages + 100 PATCHes
    assert report.attrs["summary"]["writes_saved"] == 9_900


# ---------------------------------------------------------------- export -> apply


def test_an_unedited_export_applies_as_all_noop(sandbox, tmp_path):
    frame = batchtag.export(**scope_of(sandbox))
    assert "tags" in frame.columns and any(c.startswith("tag:") for c in frame.columns)
    sandbox.reset()
    report = run(sandbox, frame, tmp_path)
    assert set(report.status) == {"noop"} and len(report) == len(frame)
    assert endpoints(sandbox)["patch"] == 0


def test_an_edited_export_changes_the_edited_cell_only(sandbox, tmp_path):
    frame = batchtag.export(**scope_of(sandbox))
    frame.loc[3, "tag:env"] = "edited"
    frame = frame.drop(columns="tags")  # the wide form: the tag: columns say it all
    report = run(sandbox, frame, tmp_path).set_index("snapshot_id")
    sid = frame.loc[3, "snapshot_id"]
    assert report.status.value_counts().to_dict() == {"noop": len(frame) - 1, "ok": 1}
    assert json.loads(report.loc[sid, "request_body"]) == {"tags": {"env": "edited"}}


def test_an_export_whose_tags_dicts_and_tag_columns_disagree_is_refused(sandbox, tmp_path):
    frame = batchtag.export(**scope_of(sandbox))
    frame.index = [f"s{i}" for i in range(len(frame))]
    edited = frame.copy()
    edited.at["s3", "tags"] = {**frame.at["s3", "tags"], "env": "edited"}
    cells = frame.copy()
    cells.loc[["s5", "s7"], "tag:env"] = "edited"
    sent = endpoints(sandbox)["patch"]
    for changed, first, more in [(edited, "s3", ""), (cells, "s5", " (and 1 more rows)")]:
        with pytest.raises(ManifestError) as info:
            run(sandbox, changed, tmp_path)
        assert [str(p) for p in info.value.details] == [
            f"row label {first!r}, column 'tags': the tags dict no longer matches the tag: "
            f"columns{more}: edit one of the two and drop the other: "
            "frame.drop(columns='tags') to apply the tag: columns, or form='json' to apply "
            "the dicts"
        ]
    assert endpoints(sandbox)["patch"] == sent
    sid = edited.at["s3", "snapshot_id"]
    as_json = edited[["snapshot_id", "tags"]]
    report = run(sandbox, as_json, tmp_path, "j", form="json").set_index("snapshot_id")
    assert json.loads(report.loc[sid, "request_body"]) == {"tags": {"env": "edited"}}


def test_max_changes_counts_what_would_really_change(sandbox, tmp_path):
    ids = sandbox.store.ids()[:50]
    run(sandbox, sets(ids), tmp_path, "first")
    manifest = sets(ids)
    manifest.loc[:2, "tag:k1"] = "again"  # 3 of 50 change on the re-run
    sent = endpoints(sandbox)["patch"]
    report = run(sandbox, manifest, tmp_path, "second", max_changes="5")
    assert report.status.value_counts().to_dict() == {"noop": 47, "ok": 3}
    manifest["tag:k1"] = "all-new"
    with pytest.raises(AbortRun, match="would change 50 snapshots, more than max_changes='5'"):
        run(sandbox, manifest, tmp_path, "third", max_changes="5")
    assert endpoints(sandbox)["patch"] == sent + 3


def test_pages_that_hold_nothing_to_send_are_read_at_the_full_read_concurrency(
    make_sandbox, tmp_path
):
    # 8 pages: the plan's snapshots are all on the last, so the engine has nothing to send
    # while the first 7 are read; they are read at once, not two at a time.
    sandbox = make_sandbox(snapshots=8000, latency_ms=100)
    ids = sandbox.store.ids()[-50:]
    report = run(sandbox, sets(ids), tmp_path, dry_run=True, check_current=True, concurrency=16)
    assert set(report.status) <= {"planned", "noop"} and len(report) == 50
    assert endpoints(sandbox)["list"] == 8
    assert sandbox.stats()["max_inflight"] > 2
