"""Every default run can be undone: it reads the before-state of what it changes (list pages
or GETs, whichever are fewer requests); only --no-check-current writes blind, and then the
summary, the report's metadata and undo say the run cannot be undone; a resume keeps the
mode of the run it resumes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from apply_runs import endpoints, run, sets
from helpers import API_KEY, invoke, scope_of, write_long_csv

import batchtag
from batchtag.errors import UsageError
from batchtag.record import read_meta


def test_four_snapshots_of_a_20k_scope_are_read_by_four_gets_and_can_be_undone(
    make_sandbox, tmp_path
):
    sandbox = make_sandbox(snapshots=20_000)
    ids = sandbox.store.ids()[-4:]  # past the first page
    report = run(sandbox, sets(ids), tmp_path)
    # The first list page says the scope holds 20,000 (20 pages): 4 GETs are fewer.
    assert endpoints(sandbox) == {"list": 1, "get": 4, "patch": 4}
    assert report.tags_before.notna().all()
    assert report.attrs["summary"]["before_state"] == "read"
    assert report.attrs["summary"]["undoable"] is True
    assert read_meta(tmp_path / "r.csv")["before_state"] == "read"
    back = batchtag.undo(tmp_path / "r.csv", base_url=sandbox.base_url, api_key=API_KEY)
    assert back.attrs["skipped"].empty and set(back["snapshot_id"]) == set(ids)


def test_a_blind_run_says_everywhere_that_it_cannot_be_undone(sandbox, tmp_path):
    ids = sandbox.store.ids()[:3]
    manifest = write_long_csv(
        tmp_path / "m.csv",
        [{"snapshot_id": s, "op": "set", "key": "k1", "value": "v"} for s in ids],
    )
    report, summary = tmp_path / "r.csv", tmp_path / "s.json"
    args = ["apply", str(manifest), "--report", str(report), "--summary-json", str(summary)]
    result = invoke([*args, "--no-check-current"], sandbox)
    assert result.exit_code == 0, result.output
    assert "written blind (--no-check-current): this run cannot be undone" in result.output
    assert json.loads(summary.read_text())["undoable"] is False
    assert read_meta(report)["before_state"] == "blind"
    undo = invoke(["undo", str(report)], sandbox)
    assert undo.exit_code == 1, undo.output  # nothing to revert, every row listed
    assert "3 cannot be undone" in undo.output
    assert "cannot be undone: the run wrote blind (--no-check-current)" in undo.output


def test_a_resume_keeps_the_mode_of_the_run_it_resumes(make_sandbox, tmp_path):
    sandbox = make_sandbox(lock_rate=0.2, lock_ms=3_600_000)  # locks that outlast the run
    snaps = sandbox.store.snapshots()
    locked = [s.id for s in snaps if s.task_id][:2]
    free = [s.id for s in snaps if not s.task_id][:3]
    manifest = sets(free + locked)
    first = run(sandbox, manifest, tmp_path, check_current=False, lock_budget=0.05)
    assert first.status.value_counts().to_dict() == {"ok": 3, "failed": 2}
    sandbox.store.end_tasks()
    with pytest.raises(UsageError, match="wrote blind; its resume does the same"):
        batchtag.apply(manifest, resume=tmp_path / "r.csv", check_current=True, **scope_of(sandbox))
    resumed = batchtag.apply(manifest, resume=tmp_path / "r.csv", **scope_of(sandbox, rate=2000))
    assert set(resumed.status) == {"ok"}
    assert resumed.tags_before.isna().all()  # blind, as the run it resumed: one kind of run
    assert resumed.attrs["summary"]["before_state"] == "blind"
    assert read_meta(tmp_path / "r.csv")["before_state"] == "blind"


def test_a_reading_run_resumed_reads_too(make_sandbox, tmp_path):
    sandbox = make_sandbox(lock_rate=0.2, lock_ms=3_600_000)
    snaps = sandbox.store.snapshots()
    ids = [s.id for s in snaps if s.task_id][:1] + [s.id for s in snaps if not s.task_id][:2]
    manifest = pd.DataFrame({"snapshot_id": ids, "tag:k1": "v"})
    run(sandbox, manifest, tmp_path, lock_budget=0.05)
    sandbox.store.end_tasks()
    resumed = batchtag.apply(manifest, resume=tmp_path / "r.csv", **scope_of(sandbox, rate=2000))
    assert set(resumed.status) == {"ok"} and resumed.tags_before.notna().all()
    with pytest.raises(UsageError, match="read every snapshot first"):
        batchtag.apply(
            manifest, resume=tmp_path / "r.csv", check_current=False, **scope_of(sandbox)
        )
