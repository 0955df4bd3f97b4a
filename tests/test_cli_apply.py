"""`batchtag apply` end to end through the CLI, checked through the API."""

from __future__ import annotations

import dataclasses
import errno
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import (
    env_for,
    fetch,
    fetch_tags,
    invoke,
    patches,
    set_rows,
    tags_dict,
    write_long_csv,
)

import batchtag
from batchtag.cli import main
from batchtag.config import ENV_API_KEY, ENV_BASE_URL
from batchtag.diff import diff_entry
from batchtag.manifest import read_plan
from batchtag.model import Snapshot
from batchtag.record import read_report

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "snapshots-long.csv"


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
    report = read_report(report_path)
    assert len(report) == len(plan.entries)
    noop = sum(
        diff_entry(e, Snapshot.from_wire(before[e.snapshot_id])).verdict == "noop" for e in plan
    )
    assert (report.status == "noop").sum() == noop  # known from the state read: not sent
    assert f"  ok {len(plan.entries) - noop}, noop {noop}\n" in result.output  # summary
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
    report = read_report(tmp_path / "r.csv").set_index("snapshot_id")
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
    lines = result.output.splitlines()
    assert lines[0] == "error: manifest has 2 problems:"
    assert lines[1].startswith("  row 1, line 2, column 'snapshot_id': snapshot_id 'not-a-uuid'")
    assert lines[2].startswith("  row 2, line 3, column 'op': unknown op 'explode'")
    assert sandbox.stats()["total_requests"] == 0


def test_missing_key_is_a_usage_error(sandbox, tmp_path):
    manifest = write_long_csv(tmp_path / "m.csv", set_rows(sandbox.store.ids()[:1]))
    result = invoke(["apply", str(manifest)], sandbox, **{ENV_API_KEY: ""})
    assert result.exit_code == 2
    assert ENV_API_KEY in result.output
    assert sandbox.stats()["total_requests"] == 0


# -- start-up, the option table, the command layout -----------------------------------------

HEAVY = ("pandas", "pyarrow", "aiohttp")


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["sandbox", "--help"]])
def test_help_and_version_import_nothing_heavy(args):
    probe = (
        "import sys; from batchtag.cli import main\n"
        f"try: main({args!r})\n"
        "except SystemExit: pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_small_run_without_failures_loads_no_retry_machinery_and_no_parquet(sandbox, tmp_path):
    """A small CSV run sends as soon as it can: the retry strategies (tenacity, and the
    tornado it imports where that is installed) load at a first failure, the Parquet reader
    only for a Parquet file."""
    ids = sandbox.store.ids()[:10]
    manifest = write_long_csv(tmp_path / "m.csv", set_rows(ids))
    args = ["apply", str(manifest), "--yes", "--no-progress", "--report", str(tmp_path / "r.csv")]
    probe = (
        "import sys; from batchtag.cli import main\n"
        f"try: main({args!r})\n"
        "except SystemExit as stop: print(stop.code)\n"
        "print(sorted(m for m in ('tenacity', 'tornado', 'pyarrow.parquet') if m in sys.modules))"
    )
    env = {**os.environ, **env_for(sandbox)}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.stdout.strip().splitlines()[-2:] == ["0", "[]"], out.stderr[-2000:]
    assert all(fetch_tags(sandbox.base_url, sid)["batch"] == "one" for sid in ids)
    assert patches(sandbox) == len(ids)


def test_every_command_has_an_example_and_loads_lazily():
    from batchtag.cli import COMMANDS

    for name in COMMANDS:
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output, name


def test_the_option_table_drives_cli_library_and_engine_defaults():
    from batchtag.commands import ApplyOptions
    from batchtag.defaults import OPTIONS, PYTHON_OPTIONS
    from batchtag.gcore import Client, RetrySettings
    from batchtag.send import EngineOptions

    assert [f.name for f in dataclasses.fields(ApplyOptions)] == [o.name for o in PYTHON_OPTIONS]
    assert ApplyOptions() == ApplyOptions(**{o.name: o.default for o in PYTHON_OPTIONS})
    engine, retry = EngineOptions(), RetrySettings()
    assert (engine.concurrency, engine.rate) == (
        OPTIONS["concurrency"].default,
        OPTIONS["rate"].default,
    )
    assert retry.transient_retries == OPTIONS["retries"].default
    assert inspect.signature(Client).parameters["timeout"].default == OPTIONS["timeout"].default
    params = {p.name: p for p in main.get_command(None, "apply").params}
    for option in PYTHON_OPTIONS:
        assert params[option.name].default == option.default, option.name
    assert "api_key=***" in repr(ApplyOptions(api_key="sk-hidden")) and "sk-hidden" not in repr(
        ApplyOptions(api_key="sk-hidden")
    )


# -- hostile input: URLs with credentials, unwritable summary files --------------------------


@pytest.mark.parametrize(
    "url", ["http://u:hunter2-pw@127.0.0.1:1", "ftp://u:hunter2-pw@h", "https://tok3n-pw@h"]
)
def test_base_urls_with_credentials_are_refused_without_echoing_them(sandbox, tmp_path, url):
    manifest = write_long_csv(tmp_path / "m.csv", set_rows(sandbox.store.ids()[:1]))
    result = invoke(
        ["apply", str(manifest), "--report", str(tmp_path / "r.csv")],
        sandbox,
        **{ENV_BASE_URL: url},
    )
    assert result.exit_code == 2, result.output
    assert "must not contain credentials" in result.output
    assert "hunter2" not in result.output and "tok3n" not in result.output
    assert sandbox.stats()["total_requests"] == 0 and not (tmp_path / "r.csv").exists()


def test_an_unwritable_summary_file_is_refused_before_sending(sandbox, tmp_path):
    manifest = write_long_csv(tmp_path / "m.csv", set_rows(sandbox.store.ids()[:2]))
    args = ["apply", str(manifest), "--report", str(tmp_path / "r.csv")]
    target = manifest / "summary.json"  # its parent is a file
    result = invoke([*args, "--summary-json", str(target)], sandbox)
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"error: cannot write --summary-json {target}: ")
    assert sandbox.stats()["total_requests"] == 0


def test_a_summary_file_failing_at_the_end_prints_the_summary_first(sandbox, tmp_path, monkeypatch):
    def disk_full(data, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("batchtag.commands._apply.write_summary_json", disk_full)
    manifest = write_long_csv(tmp_path / "m.csv", set_rows(sandbox.store.ids()[:2]))
    args = ["apply", str(manifest), "--report", str(tmp_path / "r.csv")]
    result = invoke([*args, "--summary-json", str(tmp_path / "s.json")], sandbox)
    assert result.exit_code == 3  # documented: the run was fine, its summary file was not
    assert "Traceback" not in result.output
    assert result.stderr.strip() == (
        f"error: summary not written to {tmp_path / 's.json'}: No space left on device"
    )
    assert "  ok 2\n" in result.stdout  # the summary came out on stdout
    assert set(read_report(tmp_path / "r.csv").status) == {"ok"}
