"""Apply reads the state first: minimal PATCH bodies, no-ops and missing snapshots cost no
write, the auto default, --no-check-current, the before-state and --undo-file."""

from __future__ import annotations

import asyncio
import errno
import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import API_KEY, SID, invoke, scope_of, write_long_csv
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import batchtag
from batchtag.client import Client, tags_dict
from batchtag.config import Settings
from batchtag.diff import diff_plan
from batchtag.errors import AbortRun, ManifestError, UsageError
from batchtag.manifest import read_plan
from batchtag.undo import UndoWriter

KEYS = ["k1", "k2", "k3", "k4"]  # user keys of these tests (the sandbox's ro keys differ)


def run(sandbox, manifest, folder: Path, name: str = "r", **options) -> pd.DataFrame:
    """`batchtag.apply` against the sandbox; options override the defaults here."""
    options = {"project_id": 1, "region_id": 1, "rate": 2000, "concurrency": 8, **options}
    return batchtag.apply(
        manifest,
        report=folder / f"{name}.csv",
        base_url=sandbox.base_url,
        api_key=API_KEY,
        **options,
    )


def endpoints(sandbox) -> dict[str, int]:
    counts = sandbox.stats()["endpoints"]
    return {k: counts.get(k, 0) for k in ("list", "get", "patch")}


def snapshot(sandbox, sid: str) -> dict:
    return sandbox.store.find(1, 1, sid).to_json()


def user_state(sandbox, sid: str) -> tuple[dict, str]:
    snap = snapshot(sandbox, sid)
    return tags_dict(snap, user_only=True), snap["name"]


def ro_state(sandbox, sid: str) -> dict:
    snap = snapshot(sandbox, sid)
    return {t["key"]: t["value"] for t in snap["tags"] if t["read_only"]}


def put_tags(sandbox, wanted: dict[str, dict[str, str]]) -> None:
    """Give each snapshot exactly these user tags (two PATCHes each: clear, then set)."""

    async def go() -> None:
        async with Client(Settings(sandbox.base_url, API_KEY)) as client:
            for sid, tags in wanted.items():
                await client.patch_snapshot(1, 1, sid, b'{"tags": null}')
                if tags:
                    await client.patch_snapshot(1, 1, sid, json.dumps({"tags": tags}).encode())

    asyncio.run(go())


def with_user_tags(sandbox, count: int) -> list[str]:
    """Snapshots that have user tags (and read-only ones first)."""
    snaps = [s for s in sandbox.store.snapshots() if set(s.tags) - s.read_only]
    snaps.sort(key=lambda s: not s.read_only)
    return [s.id for s in snaps[:count]]


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


@pytest.mark.timeout(180)
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
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
    expect = predicted(diff_plan(plan, {(1, 1, s): snapshot(sandbox, s) for s in ids}), before)
    report = run(sandbox, pd.DataFrame(rows), tmp_path_factory.mktemp("run"), check_current=True)
    assert set(report.status) <= {"ok", "noop"}
    assert {sid: user_state(sandbox, sid) for sid in ids} == expect


# ---------------------------------------------------------------- undo file


def test_undo_file_restores_user_tags_and_names(sandbox, tmp_path):
    ids = with_user_tags(sandbox, 6)
    original = {sid: user_state(sandbox, sid) for sid in ids}
    ro_before = {sid: ro_state(sandbox, sid) for sid in ids}
    rows = [{"snapshot_id": ids[0], "op": "clear"}]
    rows += [{"snapshot_id": sid, "op": "set", "key": "k1", "value": "new"} for sid in ids[1:4]]
    rows += [{"snapshot_id": ids[4], "op": "name", "value": "moved-away"}]
    rows += [
        {"snapshot_id": ids[5], "op": "set", "key": k, "value": v}
        for k, v in original[ids[5]][0].items()
    ]
    undo = tmp_path / "undo.jsonl"
    report = run(sandbox, pd.DataFrame(rows), tmp_path, undo_file=undo)
    assert report.set_index("snapshot_id").loc[ids[5], "status"] == "noop"
    assert len(undo.read_text().splitlines()) == 5  # one line per changed snapshot
    run(sandbox, undo, tmp_path, "undo")
    assert {sid: user_state(sandbox, sid) for sid in ids} == original
    assert {sid: ro_state(sandbox, sid) for sid in ids} == ro_before


def test_undo_file_refuses_no_check_current(sandbox, tmp_path):
    manifest = write_long_csv(
        tmp_path / "m.csv", [{"snapshot_id": SID, "op": "set", "key": "a", "value": "b"}]
    )
    args = [
        "apply",
        str(manifest),
        "--report",
        str(tmp_path / "r.csv"),
        "--undo-file",
        str(tmp_path / "u.jsonl"),
    ]
    result = invoke([*args, "--no-check-current"], sandbox)
    assert result.exit_code == 2
    assert "--undo-file" in result.output and "--no-check-current" in result.output
    assert sandbox.stats()["total_requests"] == 0 and not (tmp_path / "r.csv").exists()
    with pytest.raises(UsageError, match="undo_file.*check_current=False"):
        run(sandbox, manifest, tmp_path, undo_file=tmp_path / "u.jsonl", check_current=False)


def test_undo_file_write_failure_stops_the_run(sandbox, tmp_path, monkeypatch):
    def full(self, row):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(UndoWriter, "write_record", full)
    ids = sandbox.store.ids()[:30]
    manifest = write_long_csv(
        tmp_path / "m.csv",
        [{"snapshot_id": s, "op": "set", "key": "k1", "value": "z"} for s in ids],
    )
    args = ["apply", str(manifest), "--report", str(tmp_path / "r.csv"), "--concurrency", "1"]
    result = invoke([*args, "--undo-file", str(tmp_path / "u.jsonl")], sandbox)
    assert result.exit_code == 3
    assert "undo file write failed: no space left on device" in result.output
    assert endpoints(sandbox)["patch"] == 1  # nothing dispatched after the failure


# ---------------------------------------------------------------- how the state is read


def sets(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"snapshot_id": ids, "tag:k1": "new"})


def test_auto_reads_pages_for_a_big_manifest_and_nothing_for_a_tiny_one(make_sandbox, tmp_path):
    sandbox = make_sandbox(snapshots=3500)  # 4 list pages
    ids = sandbox.store.ids()
    run(sandbox, sets(ids[-2:]), tmp_path, "tiny")
    assert endpoints(sandbox) == {"list": 1, "get": 0, "patch": 2}  # counted, written blind
    sandbox.reset()
    report = run(sandbox, sets(ids[::50]), tmp_path, "big")  # 70 writes > 4 pages
    assert endpoints(sandbox) == {"list": 4, "get": 0, "patch": 70}
    assert report.tags_before.notna().all()  # the before-state is in the report


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
    report = run(sandbox, frame, tmp_path).set_index("snapshot_id")
    sid = frame.loc[3, "snapshot_id"]
    assert report.status.value_counts().to_dict() == {"noop": len(frame) - 1, "ok": 1}
    assert json.loads(report.loc[sid, "request_body"]) == {"tags": {"env": "edited"}}


def test_undo_file_is_appended_on_resume_and_never_replaced_silently(make_sandbox, tmp_path):
    sandbox = make_sandbox(lock_rate=0.2, lock_ms=3_600_000)  # locks that outlast the run
    snaps = sandbox.store.snapshots()
    locked = [s.id for s in snaps if s.task_id][:2]
    free = [s.id for s in snaps if not s.task_id][:3]
    manifest = sets(free + locked)
    undo = tmp_path / "undo.jsonl"
    first = run(sandbox, manifest, tmp_path, "r", undo_file=undo, lock_budget=0.05)
    assert first.status.value_counts().to_dict() == {"ok": 3, "failed": 2}
    assert len(undo.read_text().splitlines()) == 3
    with pytest.raises(UsageError, match="undo.jsonl already exists"):
        run(sandbox, manifest, tmp_path, "other", undo_file=undo)
    sandbox.store.end_tasks()
    resumed = batchtag.apply(
        manifest, resume=tmp_path / "r.csv", undo_file=undo, **scope_of(sandbox, rate=2000)
    )
    assert set(resumed.status) == {"ok"}
    lines = [json.loads(line) for line in undo.read_text().splitlines()]
    assert sorted(line["snapshot_id"] for line in lines) == sorted(free + locked)


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


def test_an_undo_file_not_named_jsonl_is_refused_before_any_request(sandbox, tmp_path):
    with pytest.raises(UsageError, match="undo_file=.*name it \\*.jsonl"):
        run(sandbox, sets(sandbox.store.ids()[:5]), tmp_path, undo_file=tmp_path / "u.csv")
    assert sandbox.stats()["total_requests"] == 0 and not (tmp_path / "r.csv").exists()
