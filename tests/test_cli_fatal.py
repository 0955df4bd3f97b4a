"""Fatal exits of scheduled runs: the summary file always says how the run ended (its exit
code and why), and with --log-format json the error line is one JSON object."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import API_KEY, closed_url, invoke, scope_of, set_rows, write_long_csv

import batchtag

SAMPLE = Path(__file__).parent.parent / "samples" / "cost-policy.toml"
LAST_NIGHT = {"exit_code": 0, "counts": {"ok": 5}}


def last_night(tmp_path: Path) -> Path:
    path = tmp_path / "night.json"
    path.write_text(json.dumps(LAST_NIGHT))
    return path


def command(kind: str, server, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """(arguments, env) of a run that is refused after its options were checked."""
    if kind == "enforce --max-changes 1%":
        return ["enforce", str(SAMPLE), "--max-changes", "1%", "-y"], {}
    if kind == "apply --max-changes 1":
        manifest = write_long_csv(tmp_path / "m.csv", set_rows(server.store.ids()[:3]))
        return ["apply", str(manifest), "--max-changes", "1"], {}
    return ["enforce", str(SAMPLE), "--retries", "0", "-y"], {"GCORE_BASE_URL": closed_url()}


KINDS = ["enforce --max-changes 1%", "apply --max-changes 1", "enforce, inventory unreadable"]


@pytest.mark.parametrize("kind", KINDS)
def test_an_aborted_run_replaces_last_nights_summary_with_its_exit_code_and_reason(
    make_sandbox, tmp_path, kind
):
    server = make_sandbox(snapshots=50)
    args, env = command(kind, server, tmp_path)
    summary = last_night(tmp_path)
    result = invoke(
        [*args, "--summary-json", str(summary), "--report", str(tmp_path / "r.csv")], server, **env
    )
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ")
    data = json.loads(summary.read_text())
    assert data["exit_code"] == 3 and data["error"] == lines[-1].removeprefix("error: ")
    assert data["aborted"] == data["error"]
    assert not list(tmp_path.glob("night.json?*"))  # no temporary file left beside it
    if "max-changes" in kind:
        assert data["error"].startswith("refusing to start: ")
    else:
        assert data["error"].startswith("cannot read the inventory: ")


def test_a_usage_error_found_late_writes_exit_2(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=5)
    manifest = write_long_csv(tmp_path / "m.csv", set_rows(server.store.ids()[:1]))
    summary = last_night(tmp_path)
    args = ["apply", str(manifest), "--undo-file", str(tmp_path / "u.txt")]
    result = invoke([*args, "--summary-json", str(summary)], server)
    assert result.exit_code == 2, result.output
    data = json.loads(summary.read_text())
    assert data["exit_code"] == 2 and "name the file *.jsonl, *.csv or *.parquet" in data["error"]
    assert data["aborted"] is None
    assert server.stats()["total_requests"] == 0


def test_with_json_logs_the_fatal_error_is_one_json_object(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=50)
    args, env = command("apply --max-changes 1", server, tmp_path)
    result = invoke([*args, "--log-format", "json"], server, **env)
    assert result.exit_code == 3
    record = json.loads(result.stderr.strip().splitlines()[-1])
    assert record["level"] == "error"
    assert record["message"].startswith("refusing to start: the plan would change 3 snapshots")
    plain = invoke(args + ["--overwrite"], server, **env)
    assert plain.stderr.strip().splitlines()[-1].startswith("error: refusing to start: ")


def skipped_classes_and_groups(report: Path, summary: Path) -> tuple[set, list[str]]:
    rows = pd.read_csv(report, dtype=str, keep_default_na=False)
    classes = set(rows.loc[rows["status"] == "skipped", "error_class"])
    groups = [e["error"] for e in json.loads(summary.read_text())["top_errors"]]
    return classes, [g for g in groups if "not sent" in g]


def test_skipped_rows_of_an_abort_are_one_aborted_group(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=300, api_key=API_KEY)
    manifest = write_long_csv(tmp_path / "m.csv", set_rows(server.store.ids()))
    report, summary = tmp_path / "r.csv", tmp_path / "s.json"
    args = ["apply", str(manifest), "--report", str(report), "--summary-json", str(summary)]
    result = invoke([*args, "--no-check-current"], server, GCORE_API_KEY="wrong-key-1")
    assert result.exit_code == 3, result.output
    classes, groups = skipped_classes_and_groups(report, summary)
    assert classes == {"Aborted"}
    assert len(groups) == 1 and groups[0].startswith("Aborted: not sent: run aborted")


def test_skipped_rows_of_an_interrupt_are_one_interrupted_group(
    make_sandbox, tmp_path, monkeypatch
):
    server = make_sandbox(snapshots=300)
    monkeypatch.setattr(
        "batchtag.commands._apply.install_signal_handlers", lambda engine: engine.interrupt()
    )
    manifest = write_long_csv(tmp_path / "m.csv", set_rows(server.store.ids()))
    report, summary = tmp_path / "r.csv", tmp_path / "s.json"
    args = ["apply", str(manifest), "--report", str(report), "--summary-json", str(summary)]
    result = invoke(args, server)
    assert result.exit_code == 130, result.output
    classes, groups = skipped_classes_and_groups(report, summary)
    assert classes == {"Interrupted"}
    assert groups == ["Interrupted: not sent: run interrupted"]


def test_python_apply_refused_by_a_guard_writes_the_summary_too(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=5)
    manifest = write_long_csv(tmp_path / "m.csv", set_rows(server.store.ids()[:3]))
    summary = last_night(tmp_path)
    with pytest.raises(batchtag.AbortRun, match="refusing to start") as info:
        batchtag.apply(
            manifest,
            **scope_of(server, report=str(tmp_path / "r.csv")),
            max_changes=1,
            summary_json=str(summary),
        )
    data = json.loads(summary.read_text())
    assert (data["exit_code"], data["error"]) == (3, str(info.value))
