"""Scheduled runs (issue 24, item 1): per-run file names with {started}, a re-run after an
interruption finishes the job (cron line and the Airflow task, through the real Python API),
and the Kubernetes sample runs as a numeric user."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import API_KEY, env_for, invoke, patches, wait_until

import batchtag
from batchtag.commands import ApplyOptions
from batchtag.record import fill_started, read_report, started_stamp

SCHEDULE = Path(__file__).parent.parent / "samples" / "schedule"
STAMP = re.compile(r"\d{8}T\d{6}Z")
# A rule that changes 36 of the default 400-snapshot sandbox (under the sample's 10% guard).
POLICY = """
[[rule]]
name = "gold apps"
where = "`tag:app`.isin(['search', 'checkout'])"
set = { tier = "gold" }
"""


def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "gold.toml"
    path.write_text(POLICY)
    return path


def gold(sandbox) -> set[str]:
    """The snapshots the policy is about, and whether each has its tag now."""
    return {
        s.id for s in sandbox.store.snapshots(1, 1) if s.tags.get("app") in ("search", "checkout")
    }


# -- {started} ------------------------------------------------------------------------------


def test_started_is_the_runs_start_in_utc_and_the_same_in_every_name():
    when = datetime(2026, 3, 1, 2, 30, 5, tzinfo=UTC)
    options = ApplyOptions(
        report="runs/e-{started}.csv",
        undo_file="runs/e-{started}.undo.jsonl",
        summary_json="runs/s-{started}.json",
    ).stamped(when)
    assert options.report == "runs/e-20260301T023005Z.csv"
    assert options.undo_file == "runs/e-20260301T023005Z.undo.jsonl"
    assert options.summary_json == "runs/s-20260301T023005Z.json"
    assert options.stamped() is options  # nothing left to fill
    assert started_stamp(datetime(2026, 3, 1, 3, 30, tzinfo=UTC)) == "20260301T033000Z"


def test_a_name_taken_in_the_same_second_gets_a_counter_in_every_name(tmp_path):
    when = datetime(2026, 3, 1, 2, 30, tzinfo=UTC)
    names = {
        "report": str(tmp_path / "e-{started}.csv"),
        "summary_json": str(tmp_path / "s-{started}.json"),
    }
    (tmp_path / "e-20260301T023000Z.csv").write_text("snapshot_id\n")
    filled = fill_started(names, when)
    assert filled == {
        "report": str(tmp_path / "e-20260301T023000Z-2.csv"),
        "summary_json": str(tmp_path / "s-20260301T023000Z-2.json"),
    }


@pytest.mark.parametrize(
    "args, message",
    [
        (["--report", "r-{start}.csv"], "--report r-{start}.csv: unknown placeholder {start}"),
        (["--resume", "r-{started}.csv"], "{started} names the new files of a run"),
        (["--report", "-"], "--report -: stdout is not possible: the report is written"),
        (["--undo-file", "-"], "--undo-file -: stdout is not possible"),
    ],
)
def test_bad_names_are_one_line_exit_2_and_nothing_sent(sandbox, tmp_path, args, message):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"snapshot_id,op,key,value\n{sandbox.store.ids()[0]},set,a,b\n")
    result = invoke(["apply", str(manifest), *args], sandbox)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert sandbox.stats()["total_requests"] == 0


def test_an_error_before_the_run_still_writes_its_summary_under_a_filled_name(sandbox, tmp_path):
    args = [
        "enforce",
        str(tmp_path / "missing.toml"),
        "--summary-json",
        str(tmp_path / "s-{started}.json"),
    ]
    result = invoke(args, sandbox)
    assert result.exit_code == 2
    (written,) = tmp_path.glob("s-*.json")
    assert STAMP.search(written.name) and json.loads(written.read_text())["exit_code"] == 2


def start_enforce(sandbox, policy: Path, runs: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "batchtag", "enforce", str(policy), "--yes"]
    command += ["--report", str(runs / "enforce-{started}.csv"), "--rate", "40", *extra]
    command += ["--undo-file", str(runs / "enforce-{started}.undo.jsonl")]
    env = {**os.environ, **env_for(sandbox)}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_the_same_enforce_command_again_after_an_interruption_finishes_the_job(
    make_sandbox, tmp_path
):
    """The crontab line, run twice: the first run is interrupted (SIGINT, exit 130), the same
    command again is not refused, writes its own report and sends only what is left."""
    sandbox = make_sandbox(snapshots=400, latency_ms=20)
    policy, runs = policy_file(tmp_path), tmp_path / "runs"
    wanted = gold(sandbox)
    first = start_enforce(sandbox, policy, runs)
    wait_until(lambda: patches(sandbox) >= 5, what="the first PATCHes")
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=60) == 130, first.stderr.read().decode()
    sent_first = patches(sandbox)
    assert 0 < sent_first < len(wanted)
    second = start_enforce(sandbox, policy, runs)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err.decode()
    reports = sorted(runs.glob("enforce-*.csv"), key=lambda p: p.stat().st_mtime)
    assert len(reports) == 2 and all(STAMP.search(p.name) for p in reports)
    assert len(list(runs.glob("enforce-*.undo.jsonl"))) == 2
    assert {s.id for s in sandbox.store.snapshots(1, 1) if s.tags.get("tier") == "gold"} == wanted
    first_ok, second = (read_report(p) for p in reports)
    first_ok = set(first_ok.query("status == 'ok'")["snapshot_id"])
    assert not first_ok & set(second["snapshot_id"])  # what the first run did is not redone
    assert first_ok | set(second.query("status in ['ok', 'noop']")["snapshot_id"]) == wanted
    # each snapshot written once, but for the few in flight when the first run stopped
    assert len(wanted) <= patches(sandbox) <= len(wanted) + 16


# -- the samples ----------------------------------------------------------------------------


def load_airflow_sample():
    spec = importlib.util.spec_from_file_location(
        "airflow_enforce", SCHEDULE / "airflow_enforce.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


AIRFLOW_ATTEMPT = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("airflow_enforce", sys.argv[1])
sample = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sample)
sample.POLICY, sample.RUNS = sys.argv[2], sys.argv[3]
sample.enforce_task(ds="2026-03-01")
"""


def test_the_airflow_task_retried_after_an_interruption_finishes_the_job(make_sandbox, tmp_path):
    """The DAG's task function twice, through the real `batchtag.enforce`: the first attempt
    is stopped mid-run (the worker is told to stop: SIGINT), the retry is not refused,
    sends only what is left and returns the summary with every rule's figures."""
    sandbox = make_sandbox(snapshots=400, latency_ms=20)
    policy, runs = policy_file(tmp_path), tmp_path / "runs"
    wanted = gold(sandbox)
    env = {**os.environ, **env_for(sandbox)}
    command = [sys.executable, "-c", AIRFLOW_ATTEMPT, str(SCHEDULE / "airflow_enforce.py")]
    attempt = subprocess.Popen([*command, str(policy), str(runs)], env=env, stderr=subprocess.PIPE)
    wait_until(lambda: patches(sandbox) >= 5, what="the first attempt's PATCHes")
    attempt.send_signal(signal.SIGINT)
    _, err = attempt.communicate(timeout=60)
    assert attempt.returncode != 0 and b"batchtag.errors.Interrupted" in err  # failed: retried
    assert 0 < patches(sandbox) < len(wanted)
    first = read_report(next(runs.glob("enforce-2026-03-01-*.csv")))
    assert "skipped" in set(first["status"])

    sample = load_airflow_sample()
    sample.POLICY, sample.RUNS = str(policy), str(runs)
    old = {k: os.environ.get(k) for k in env_for(sandbox)}
    os.environ.update(env_for(sandbox))
    try:
        summary = sample.enforce_task(ds="2026-03-01")  # the retry, in this process
    finally:
        for name, value in old.items():
            os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)
    assert summary["exit_code"] == 0
    (rule,) = summary["rules"]
    assert rule["name"] == "gold apps" and rule["matched"] == len(wanted)
    assert rule["noncompliant"] == rule["changed"] == len(wanted) - (first["status"] == "ok").sum()
    assert {s.id for s in sandbox.store.snapshots(1, 1) if s.tags.get("tier") == "gold"} == wanted
    assert len(list(runs.glob("enforce-2026-03-01-*.csv"))) == 2
    summaries = list(runs.glob("summary-2026-03-01-*.json"))
    assert [json.loads(p.read_text())["exit_code"] for p in summaries].count(0) == 1


def test_the_airflow_task_fails_without_retry_only_for_what_a_retry_cannot_fix(monkeypatch):
    sample = load_airflow_sample()
    seen = []

    def guarded(policy, **options):
        seen.append(options)
        raise batchtag.AbortRun("refusing to start: the policy would change 50 of 100")

    with pytest.raises(batchtag.AbortRun):
        sample.enforce_task(enforce=guarded)
    assert all("{started}" in seen[0][name] for name in ("report", "undo_file", "summary_json"))


def dockerfile_user() -> str:
    (line,) = [
        ln for ln in (SCHEDULE / "Dockerfile").read_text().splitlines() if ln.startswith("USER ")
    ]
    return line.split()[1]


def test_the_image_runs_as_a_numeric_user_and_the_cronjob_says_so():
    user = dockerfile_user()
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) > 0, user  # runAsNonRoot can check only a number
    text = (SCHEDULE / "cronjob.yaml").read_text()
    context = text[text.index("securityContext:") :]
    assert re.search(r"^\s+runAsNonRoot: true$", context, re.MULTILINE)
    assert re.search(rf"^\s+runAsUser: {uid}$", context, re.MULTILINE)
    try:
        import yaml
    except ImportError:
        return
    pod = yaml.safe_load(text)["spec"]["jobTemplate"]["spec"]["template"][
        "spec"
    ]  # pragma: no cover
    assert pod["securityContext"]["runAsUser"] == int(uid)  # pragma: no cover


def test_the_scheduled_command_lines_name_their_files_by_the_runs_start():
    texts = [(SCHEDULE / name).read_text() for name in ("crontab", "batchtag-enforce.service")]
    texts.append((SCHEDULE / "cronjob.yaml").read_text())
    for text in texts:
        assert "--report" in text and re.search(r'--report[\s",\']+\S*\{started\}', text)
        assert "--overwrite" not in text.split("ExecStart=")[-1].split("\n")[0]
    assert API_KEY not in "".join(texts)
