"""`batchtag apply` end to end through the CLI, checked through the API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from helpers import env_for, fetch, set_rows, write_long_csv

import batchtag
from batchtag.cli import main
from batchtag.client import tags_dict
from batchtag.manifest import read_plan
from batchtag.report import load_report

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "snapshots-long.csv"


def invoke(args, sandbox, **env):
    runner = CliRunner()
    return runner.invoke(main, args, env={**env_for(sandbox), **env}, catch_exceptions=False)


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and batchtag.__version__ in result.output
    out = subprocess.run(
        [sys.executable, "-m", "batchtag", "--version"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and batchtag.__version__ in out.stdout


def test_sample_manifest_applies_every_change(sandbox, tmp_path):
    plan = read_plan(SAMPLE, project_id=1, region_id=1)
    before = {e.snapshot_id: fetch(sandbox.base_url, e.snapshot_id) for e in plan}
    report_path = tmp_path / "report.csv"
    result = invoke(["apply", str(SAMPLE), "--report", str(report_path)], sandbox)
    assert result.exit_code == 0, result.output
    assert "ok" in result.output
    report = load_report(report_path)
    assert len(report) == len(plan.entries)
    assert set(report.status) == {"ok"}
    assert "ticket" in report.columns
    for entry in plan:
        snap_before = before[entry.snapshot_id]
        user_before = tags_dict(snap_before, user_only=True)
        read_only = tags_dict(snap_before).items() - user_before.items()
        after = fetch(sandbox.base_url, entry.snapshot_id)
        assert tags_dict(after, user_only=True) == entry.target_tags(user_before)
        assert read_only <= tags_dict(after).items()  # read-only tags untouched
        if entry.name:
            assert after["name"] == entry.name


def test_failures_give_exit_1_and_ok_rows_still_land(sandbox, tmp_path):
    ids = sandbox.store.ids()[:2]
    ghost = "00000000-0000-4000-8000-000000000000"
    manifest = write_long_csv(tmp_path / "m.csv", set_rows(ids + [ghost]))
    result = invoke(["apply", str(manifest), "--report", str(tmp_path / "r.csv")], sandbox)
    assert result.exit_code == 1
    report = load_report(tmp_path / "r.csv").set_index("snapshot_id")
    assert report.loc[ghost, "status"] == "not_found"
    assert set(report.loc[ids, "status"]) == {"ok"}


def test_bad_manifest_exit_2_and_nothing_sent(sandbox, tmp_path):
    manifest = write_long_csv(
        tmp_path / "bad.csv",
        [
            {"snapshot_id": "not-a-uuid", "op": "set", "key": "a", "value": "b"},
            {"snapshot_id": sandbox.store.ids()[0], "op": "explode", "key": "a", "value": "b"},
        ],
    )
    result = invoke(["apply", str(manifest), "--report", str(tmp_path / "r.csv")], sandbox)
    assert result.exit_code == 2
    assert "row 1" in result.output and "snapshot_id" in result.output
    assert "row 2" in result.output and "op" in result.output
    assert sandbox.stats()["total_requests"] == 0


def test_missing_key_is_a_usage_error(sandbox, tmp_path):
    manifest = write_long_csv(tmp_path / "m.csv", set_rows(sandbox.store.ids()[:1]))
    result = invoke(["apply", str(manifest)], sandbox, GCORE_API_KEY="")
    assert result.exit_code == 2
    assert "GCORE_API_KEY" in result.output
    assert sandbox.stats()["total_requests"] == 0
