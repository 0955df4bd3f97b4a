"""apply's undo file (--undo-file): a change file that restores the run, refuses what cannot
work, survives resume, and is never replaced."""

from __future__ import annotations

import errno
import json

import pandas as pd
import pytest
from apply_runs import endpoints, ro_state, run, sets, user_state, with_user_tags
from helpers import SID, invoke, scope_of, write_long_csv

import batchtag
from batchtag.errors import UsageError
from batchtag.record import ChangeWriter


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
    lines = [json.loads(line) for line in undo.read_text().splitlines()]
    assert {line["snapshot_id"] for line in lines} == set(ids[:5])  # a row per changed key
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

    monkeypatch.setattr(ChangeWriter, "write_rows", full)
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


def test_undo_file_is_appended_on_resume_and_never_replaced(make_sandbox, tmp_path):
    sandbox = make_sandbox(lock_rate=0.2, lock_ms=3_600_000)  # locks that outlast the run
    snaps = sandbox.store.snapshots()
    locked = [s.id for s in snaps if s.task_id][:2]
    free = [s.id for s in snaps if not s.task_id][:3]
    manifest = sets(free + locked)
    undo = tmp_path / "undo.jsonl"
    first = run(sandbox, manifest, tmp_path, "r", undo_file=undo, lock_budget=0.05)
    assert first.status.value_counts().to_dict() == {"ok": 3, "failed": 2}
    assert len(undo.read_text().splitlines()) == 3
    written = undo.read_text()
    with pytest.raises(UsageError, match="undo.jsonl already exists"):
        run(sandbox, manifest, tmp_path, "other", undo_file=undo)
    # --overwrite keeps it too: the new run's goes beside it, and the summary says so
    other = run(
        sandbox, manifest, tmp_path, "other", undo_file=undo, overwrite=True, lock_budget=0.05
    )
    beside = tmp_path / "undo-2.jsonl"
    assert undo.read_text() == written and beside.exists()
    assert other.attrs["summary"]["undo_file"] == str(beside)
    assert f"undo file {undo} exists and is kept" in other.attrs["summary"]["notes"][0]
    sandbox.store.end_tasks()
    resumed = batchtag.apply(
        manifest, resume=tmp_path / "r.csv", undo_file=undo, **scope_of(sandbox, rate=2000)
    )
    assert set(resumed.status) == {"ok"}
    lines = [json.loads(line) for line in undo.read_text().splitlines()]
    assert sorted(line["snapshot_id"] for line in lines) == sorted(free + locked)


def test_an_undo_file_of_an_unknown_format_is_refused_before_any_request(sandbox, tmp_path):
    with pytest.raises(UsageError, match="undo_file=.*name the file \\*.jsonl, \\*.csv"):
        run(sandbox, sets(sandbox.store.ids()[:5]), tmp_path, undo_file=tmp_path / "u.txt")
    assert sandbox.stats()["total_requests"] == 0 and not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_an_undo_file_in_each_format_reverts_the_run(sandbox, tmp_path, suffix):
    ids = with_user_tags(sandbox, 4)
    original = {sid: user_state(sandbox, sid) for sid in ids}
    undo = tmp_path / f"undo{suffix}"
    run(sandbox, sets(ids), tmp_path, undo_file=undo)
    run(sandbox, undo, tmp_path, "back")
    assert {sid: user_state(sandbox, sid) for sid in ids} == original
