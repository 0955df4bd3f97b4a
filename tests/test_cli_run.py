"""Issue 5: report formats, crash-safe resume, interrupts, dry-run, summary, guards, progress.

The kill -9 and signal tests run the real CLI in a subprocess against an in-process sandbox.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import env_for, invoke, patches, set_rows, wait_until, write_long_csv

from batchtag.cli import main
from batchtag.config import ENV_API_KEY, ENV_BASE_URL
from batchtag.record import read_report

apply_module = importlib.import_module("batchtag.cli.apply")
CONCURRENCY = 4  # of the subprocess runs below: at most this many requests are in flight


def manifest_for(tmp_path, ids, **extra) -> Path:
    rows = [{**row, **extra} for row in set_rows(ids, "batch", "run5")]
    return write_long_csv(tmp_path / "m.csv", rows)


def finished_run(sandbox, tmp_path, count: int, report_name: str) -> tuple[Path, Path, int]:
    """One complete apply of `count` snapshots: (manifest, report, PATCHes so far)."""
    manifest = manifest_for(tmp_path, sandbox.store.ids()[:count])
    report_path = tmp_path / report_name
    assert invoke(["apply", str(manifest), "--report", str(report_path)], sandbox).exit_code == 0
    return manifest, report_path, patches(sandbox)


# -- report -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_report_has_every_column_one_row_per_snapshot(sandbox, tmp_path, suffix):
    ids = sandbox.store.ids()[:6]
    manifest = manifest_for(tmp_path, ids, ticket="OPS-7")
    report_path = tmp_path / f"report{suffix}"
    result = invoke(["apply", str(manifest), "--report", str(report_path)], sandbox)
    assert result.exit_code == 0, result.output
    report = read_report(report_path)
    for column in ["status", "http_status", "attempts", "error_class", "error", "request_id"]:
        assert column in report.columns
    for column in ["started_at", "finished_at", "elapsed_ms", "tags_before", "tags_after"]:
        assert column in report.columns
    assert {"rows", "ticket"} <= set(report.columns)
    assert sorted(report.snapshot_id) == sorted(ids)
    row = report.set_index("snapshot_id").loc[ids[0]]
    assert row.status == "ok" and int(row.http_status) == 200 and int(row.attempts) == 1
    assert row.ticket == "OPS-7"
    assert row.tags_after["batch"] == "run5"  # tags_after comes from the API's response
    assert sandbox.store.find(1, 1, ids[0]).tags["batch"] == "run5"


def test_default_report_path_is_printed(sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manifest = manifest_for(tmp_path, sandbox.store.ids()[:2])
    result = invoke(["apply", str(manifest)], sandbox)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "report:" in line)
    path = Path(line.split("report:", 1)[1].strip())
    assert set(read_report(path if path.is_absolute() else tmp_path / path).status) == {"ok"}


def test_an_existing_report_is_not_replaced_silently(sandbox, tmp_path):
    manifest, report_path, sent = finished_run(sandbox, tmp_path, 2, "r.csv")
    again = invoke(["apply", str(manifest), "--report", str(report_path)], sandbox)
    assert again.exit_code == 2 and "--resume" in again.output and "--overwrite" in again.output
    assert patches(sandbox) == sent
    forced = ["apply", str(manifest), "--report", str(report_path), "--overwrite"]
    assert invoke(forced, sandbox).exit_code == 0
    assert len(read_report(report_path)) == 2


# -- crash safety and resume ----------------------------------------------------------------


def start_cli(sandbox, manifest, report_path, *extra) -> subprocess.Popen:
    command = [sys.executable, "-m", "batchtag", "apply", str(manifest), "--report"]
    command += [str(report_path), "--yes", "--no-progress", "--concurrency", str(CONCURRENCY)]
    command += extra
    env = {**os.environ, **env_for(sandbox)}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_rows(path: Path, at_least: int, proc: subprocess.Popen) -> None:
    """Wait until the report (or its Parquet journal) holds some finished rows."""
    journal = Path(f"{path}.journal.jsonl")

    def enough() -> bool:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        return any(p.exists() and p.read_text().count("\n") > at_least for p in (path, journal))

    wait_until(enough, what=f"{at_least} rows in {path.name}")


def assert_resent_only_unrecorded(sent_before: int, sandbox, expected: int) -> None:
    """The resume sent exactly the `expected` unrecorded snapshots. Requests the stopped
    client had in flight may land at the sandbox late (before or after `sent_before` was
    read), so the count may exceed `expected` by at most the in-flight bound; no wait for
    the count to "settle" is needed."""
    resent = patches(sandbox) - sent_before
    assert expected <= resent <= expected + CONCURRENCY, (resent, expected)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_kill_9_then_resume_applies_and_records_each_snapshot_once(make_sandbox, tmp_path, suffix):
    sandbox = make_sandbox(latency_ms=10)
    ids = sandbox.store.ids()[:150]
    manifest = manifest_for(tmp_path, ids)
    report_path = tmp_path / f"report{suffix}"
    proc = start_cli(sandbox, manifest, report_path, "--rate", "40")
    wait_for_rows(report_path, 30, proc)
    proc.kill()  # SIGKILL: no cleanup of any kind
    proc.wait(timeout=30)
    sent_before = patches(sandbox)
    assert sent_before < len(ids)

    result = invoke(
        ["apply", str(manifest), "--resume", str(report_path), "--rate", "500"], sandbox
    )
    assert result.exit_code == 0, result.output
    report = read_report(report_path)
    assert sorted(report.snapshot_id) == sorted(ids)  # each snapshot exactly once
    assert set(report.status) <= {"ok", "noop"}
    assert all(sandbox.store.find(1, 1, sid).tags["batch"] == "run5" for sid in ids)
    done_before = int(result.output.split("resumed: ")[1].split()[0])
    # only what the killed run had not recorded is sent again; what it applied without
    # recording is found applied when the resume reads the state: noop, not sent
    applied_unrecorded = int((report.status == "noop").sum())
    expected = len(ids) - done_before - applied_unrecorded
    assert_resent_only_unrecorded(sent_before, sandbox, expected)
    assert done_before >= 30


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_interrupt_exits_130_with_summary_then_resume_completes(make_sandbox, tmp_path, sig):
    sandbox = make_sandbox(latency_ms=10)
    ids = sandbox.store.ids()[:120]
    manifest = manifest_for(tmp_path, ids)
    report_path = tmp_path / "report.csv"
    proc = start_cli(sandbox, manifest, report_path, "--rate", "40")
    wait_for_rows(report_path, 20, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert b"interrupted" in out and b"--resume" in out
    first = read_report(report_path)
    assert sorted(first.snapshot_id) == sorted(ids)  # every snapshot accounted for
    assert {"ok", "skipped"} == set(first.status)
    sent_before = patches(sandbox)

    result = invoke(
        ["apply", str(manifest), "--resume", str(report_path), "--rate", "500"], sandbox
    )
    assert result.exit_code == 0, result.output
    final = read_report(report_path)
    assert sorted(final.snapshot_id) == sorted(ids) and set(final.status) == {"ok"}
    assert_resent_only_unrecorded(sent_before, sandbox, (first.status == "skipped").sum())


def test_resuming_a_finished_run_sends_nothing(sandbox, tmp_path):
    manifest, report_path, sent = finished_run(sandbox, tmp_path, 4, "r.jsonl")
    result = invoke(["apply", str(manifest), "--resume", str(report_path)], sandbox)
    assert result.exit_code == 0 and "4 already done" in result.output
    assert patches(sandbox) == sent and len(read_report(report_path)) == 4


def test_resume_resends_failures_and_keeps_one_row_each(make_sandbox, tmp_path):
    sandbox = make_sandbox()
    ids = sandbox.store.ids()[:3]
    ghost = "00000000-0000-4000-8000-000000000000"
    manifest = write_long_csv(tmp_path / "m.csv", set_rows(ids + [ghost]))
    report_path = tmp_path / "r.csv"
    assert invoke(["apply", str(manifest), "--report", str(report_path)], sandbox).exit_code == 1
    before = sandbox.stats()["endpoints"]
    result = invoke(["apply", str(manifest), "--resume", str(report_path)], sandbox)
    assert result.exit_code == 1
    after = sandbox.stats()["endpoints"]
    # only the not_found one again: read (it is still not there), and not written
    assert {k: after.get(k, 0) - before.get(k, 0) for k in ("list", "get", "patch")} == {
        "list": 0,
        "get": 1,
        "patch": 0,
    }
    report = read_report(report_path)
    assert len(report) == 4 and (report.status == "not_found").sum() == 1


def test_resume_with_another_manifest_is_refused(sandbox, tmp_path):
    ids = sandbox.store.ids()[:4]
    manifest, report_path, _ = finished_run(sandbox, tmp_path, 4, "r.csv")
    other = write_long_csv(tmp_path / "other.csv", set_rows(ids, "batch", "different"))
    requests = sandbox.stats()["total_requests"]
    result = invoke(["apply", str(other), "--resume", str(report_path)], sandbox)
    assert result.exit_code == 2 and "different manifest" in result.output
    assert sandbox.stats()["total_requests"] == requests


# -- dry-run, summary, guards ---------------------------------------------------------------


def test_dry_run_sends_nothing_and_shows_each_request_body(sandbox, tmp_path):
    ids = sandbox.store.ids()[:3]
    rows = set_rows(ids, "env", "prod") + [{"snapshot_id": ids[0], "op": "delete", "key": "old"}]
    manifest = write_long_csv(tmp_path / "m.csv", rows)
    report_path = tmp_path / "r.jsonl"
    result = invoke(["apply", str(manifest), "--dry-run", "--report", str(report_path)], sandbox)
    assert result.exit_code == 0, result.output
    assert sandbox.stats()["total_requests"] == 0
    report = read_report(report_path).set_index("snapshot_id")
    assert set(report.status) == {"planned"}
    assert json.loads(report.loc[ids[0], "request_body"]) == {"tags": {"env": "prod", "old": None}}
    assert json.loads(report.loc[ids[1], "request_body"]) == {"tags": {"env": "prod"}}


def test_summary_json_for_schedulers(make_sandbox, tmp_path):
    sandbox = make_sandbox(rate_limit=20)
    ids = sandbox.store.ids()[:40]
    manifest = manifest_for(tmp_path, ids)
    summary_path = tmp_path / "out" / "summary.json"
    args = ["apply", str(manifest), "--report", str(tmp_path / "r.csv")]
    args += ["--rate", "200", "--summary-json", str(summary_path)]
    result = invoke(args, sandbox)
    assert result.exit_code == 0, result.output
    data = json.loads(summary_path.read_text())
    assert data["counts"]["ok"] == 40 and data["total"] == 40 and data["exit_code"] == 0
    assert data["retries"]["rate_limit"] > 0 and data["rate_changes"] > 0
    assert data["elapsed_s"] > 0 and data["rate_per_s"] > 0
    assert "retries: rate limit" in result.output


def test_summary_lists_the_most_common_errors(sandbox, tmp_path):
    ghosts = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(3)]
    manifest = write_long_csv(tmp_path / "m.csv", set_rows(ghosts))
    result = invoke(["apply", str(manifest), "--report", str(tmp_path / "r.csv")], sandbox)
    assert result.exit_code == 1
    assert "most common errors" in result.output and "3 x NotFoundError" in result.output


@pytest.mark.parametrize(("limit", "code"), [("5", 3), ("10", 0), ("4%", 3), ("5%", 0)])
def test_max_changes_guard(sandbox, tmp_path, limit, code):
    # the default sandbox holds 200 snapshots: 10 changes are 5% of the scope
    manifest = manifest_for(tmp_path, sandbox.store.ids()[:10])
    args = ["apply", str(manifest), "--report", str(tmp_path / "r.csv"), "--max-changes", limit]
    result = invoke(args, sandbox)
    assert result.exit_code == code, result.output
    assert patches(sandbox) == (10 if code == 0 else 0)
    if code == 3:
        assert "--max-changes" in result.output


def test_interactive_runs_above_the_threshold_ask_first(sandbox, tmp_path, monkeypatch):
    monkeypatch.setattr(apply_module, "CONFIRM_ABOVE", 3)
    monkeypatch.setattr(apply_module, "interactive", lambda: True)
    manifest = manifest_for(tmp_path, sandbox.store.ids()[:5])
    args = ["apply", str(manifest), "--report", str(tmp_path / "r.csv")]
    runner = CliRunner()
    declined = runner.invoke(main, args, input="n\n", env=env_for(sandbox))
    assert "change 5 snapshots" in declined.output and declined.exit_code == 3
    assert sandbox.stats()["total_requests"] == 0  # it asks before reading anything
    accepted = runner.invoke(main, [*args, "--overwrite"], input="y\n", env=env_for(sandbox))
    assert accepted.exit_code == 0 and patches(sandbox) == 5


def test_yes_and_non_interactive_runs_never_prompt(sandbox, tmp_path, monkeypatch):
    monkeypatch.setattr(apply_module, "CONFIRM_ABOVE", 3)
    manifest = manifest_for(tmp_path, sandbox.store.ids()[:5])
    args = ["apply", str(manifest), "--report", str(tmp_path / "r.csv")]
    result = invoke(args, sandbox)  # CliRunner's stdin is not a terminal
    assert result.exit_code == 0 and "Continue?" not in result.output
    monkeypatch.setattr(apply_module, "interactive", lambda: True)
    result = invoke([*args, "--overwrite", "--yes"], sandbox)
    assert result.exit_code == 0 and "Continue?" not in result.output


# -- progress and logging -------------------------------------------------------------------


def test_progress_bar_on_request_and_off_when_not_a_terminal(sandbox, tmp_path):
    manifest = manifest_for(tmp_path, sandbox.store.ids()[:5])
    runner = CliRunner()  # click >= 8.2 keeps stderr apart
    base = ["apply", str(manifest), "--report", str(tmp_path / "r.csv"), "--overwrite"]
    quiet = runner.invoke(main, base, env=env_for(sandbox))
    shown = runner.invoke(main, [*base, "--progress"], env=env_for(sandbox))
    assert quiet.exit_code == shown.exit_code == 0
    assert "5/5" in shown.stderr and "failed" not in shown.stderr
    assert "5/5" not in quiet.stderr


def test_json_logs_for_schedulers(sandbox, tmp_path):
    manifest = manifest_for(tmp_path, sandbox.store.ids()[:3])
    args = ["apply", str(manifest), "--report", str(tmp_path / "r.csv"), "-v"]
    proc = subprocess.run(
        [sys.executable, "-m", "batchtag", *args, "--log-format", "json"],
        env={**os.environ, **env_for(sandbox)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    assert records and all({"level", "message"} <= set(r) for r in records)
    assert any("3 snapshots to send" in r["message"] for r in records)


# -- secrets --------------------------------------------------------------------------------

SECRET = "sk-live-RECOGNISABLE-7f3a9c"


def run_with_secret(sandbox, tmp_path, name, ids, *extra):
    manifest = manifest_for(tmp_path, ids)
    report_path = tmp_path / f"{name}.jsonl"
    summary_path = tmp_path / f"{name}.summary.json"
    args = ["-m", "batchtag", "apply", str(manifest), "--report", str(report_path)]
    args += ["--summary-json", str(summary_path), "--retries", "1", "-vv", *extra]
    env = {**os.environ, **env_for(sandbox), ENV_API_KEY: SECRET}
    proc = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=120
    )
    texts = [proc.stdout, proc.stderr, report_path.read_text(), summary_path.read_text()]
    return proc.returncode, texts


def test_the_key_never_appears_in_output_logs_report_or_summary(make_sandbox, tmp_path):
    good = make_sandbox()
    wrong_key = make_sandbox(api_key="another-key")
    faulty = make_sandbox(error_rate=0.5, lock_rate=0.2, lock_ms=50, seed=4)
    cases = [
        ("ok", good, (), 0),
        ("unauthorized", wrong_key, (), 3),
        ("faults", faulty, ("--rate", "200"), None),
        ("json", good, ("--log-format", "json", "--overwrite", "--rate", "100"), 0),
        ("option", good, ("--api-key", SECRET, "--overwrite", "--rate", "100"), 0),
    ]
    for name, sandbox, extra, expected in cases:
        code, texts = run_with_secret(sandbox, tmp_path, name, sandbox.store.ids()[:8], *extra)
        if expected is not None:
            assert code == expected, (name, texts[1][-2000:])
        assert "8 snapshots to send" in texts[1], f"{name}: -vv logs the run"
        for text in texts:
            assert SECRET not in text, name


def test_plain_http_to_a_remote_host_is_refused(tmp_path):
    manifest = manifest_for(tmp_path, ["2a698d8b-9d9a-40eb-981c-120fc2cf11b4"])
    env = {ENV_API_KEY: SECRET, ENV_BASE_URL: "http://api.example.com"}
    args = ["apply", str(manifest), "--report", str(tmp_path / "r.csv"), "--project-id", "1"]
    result = CliRunner().invoke(main, [*args, "--region-id", "1"], env=env)
    assert result.exit_code == 2 and "--insecure-http" in result.output
    assert SECRET not in result.output and not (tmp_path / "r.csv").exists()


def test_insecure_http_lifts_the_refusal():
    from batchtag.config import resolve_settings
    from batchtag.errors import UsageError

    with pytest.raises(UsageError):
        resolve_settings("http://api.example.com", SECRET)
    assert resolve_settings("http://api.example.com", SECRET, insecure_http=True).base_url
    assert resolve_settings("https://api.example.com", SECRET).base_url
    assert SECRET not in repr(resolve_settings("https://api.example.com", SECRET))


def test_a_rerun_says_how_many_writes_it_saved(sandbox, tmp_path):
    manifest = write_long_csv(tmp_path / "m.csv", set_rows(sandbox.store.ids()[:5]))
    assert (
        invoke(["apply", str(manifest), "--report", str(tmp_path / "a.csv")], sandbox).exit_code
        == 0
    )
    sent = patches(sandbox)
    summary_path = tmp_path / "s.json"
    args = ["apply", str(manifest), "--report", str(tmp_path / "b.csv")]
    result = invoke([*args, "--summary-json", str(summary_path)], sandbox)
    assert result.exit_code == 0 and patches(sandbox) == sent
    assert "writes saved: 5 (noop, read with 1 request)" in result.output
    summary = json.loads(summary_path.read_text())
    assert summary["writes_saved"] == 5
    assert summary["state_read"] == {"snapshots": 5, "requests": 1}
