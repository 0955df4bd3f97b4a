"""JSON logs end to end (issue 24, item 2): with --log-format json every line every command
prints, on stdout and on stderr, is one JSON object, and the last is
{"event": "finished", "exit_code": N, "summary": {...}} -- in success, failure, bad input
(click's usage errors too) and when interrupted (SIGINT to a real process mid-run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import API_KEY, SID, env_for, set_rows, wait_until, write_long_csv

import batchtag
from batchtag.cli import main

SAMPLE_POLICY = Path(__file__).parent.parent / "samples" / "cost-policy.toml"
JSON = ["--log-format", "json"]


def lines_of(text: str, *, events: bool = True) -> list[dict]:
    """Every line parsed: one JSON object each (no blank line, no plain text); an event
    (``"event": ...``) unless the stream carries the command's data (rows)."""
    parsed = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(item, dict) and ("event" in item or not events) for item in parsed)
    return parsed


def check_json(stdout: str, stderr: str, code: int, *, events_on: str = "stdout") -> dict:
    """Both streams all JSON; exactly one `finished` event, the last line of its stream,
    saying `code`; the key never shows. Returns the finished event."""
    out, err = lines_of(stdout, events=events_on == "stdout"), lines_of(stderr)
    assert API_KEY not in stdout + stderr
    finished = [e for e in out + err if e.get("event") == "finished"]
    assert len(finished) == 1, (stdout, stderr)
    stream = out if events_on == "stdout" else err
    assert stream and stream[-1] is finished[0], (stdout, stderr)
    assert finished[0]["exit_code"] == code and isinstance(finished[0]["summary"], dict)
    return finished[0]


def run(args: list[str], sandbox, **env: str):
    result = CliRunner().invoke(main, [*args, *JSON], env={**env_for(sandbox), **env})
    return result


@pytest.fixture
def files(make_sandbox, tmp_path):
    """A sandbox with two regions (the second failing), and the files the commands read."""
    sandbox = make_sandbox(snapshots=30, region_ids=[1, 2], fail_scopes=["1/2:403"])
    ids = sandbox.store.ids()[:8]
    good = write_long_csv(tmp_path / "good.csv", set_rows(ids[:4], "batch", "json"))
    missing = write_long_csv(tmp_path / "missing.csv", set_rows([*ids[:2], SID]))
    bad = write_long_csv(tmp_path / "bad.csv", [{"snapshot_id": "nope", "op": "set", "key": "k"}])
    runner, env = CliRunner(), env_for(sandbox)

    def applied(name: str, rows: list[dict]) -> Path:
        manifest = write_long_csv(tmp_path / f"{name}.m.csv", rows)
        report = tmp_path / f"{name}.csv"
        result = runner.invoke(main, ["apply", str(manifest), "--report", str(report)], env=env)
        assert result.exit_code == 0, result.stderr
        return report

    report = applied("run", set_rows(ids[4:6], "batch", "first"))
    conflict = applied("conflict", set_rows(ids[6:8], "batch", "first"))
    applied("later", set_rows(ids[6:7], "batch", "someone-else"))  # undo: a conflict
    bad_policy = tmp_path / "bad.toml"
    bad_policy.write_text("[[rule]]\nname = 'x'\nwhere = 'sise > 1'\nlower = ['env']\n")
    return {
        "sandbox": sandbox,
        "good": str(good),
        "missing": str(missing),
        "bad": str(bad),
        "report": str(report),
        "conflict": str(conflict),
        "bad_policy": str(bad_policy),
        "tmp": tmp_path,
    }


def cases(f: dict) -> list[tuple[str, list[str], int]]:
    """(name, arguments, exit code) for every command: success, failure, bad input (a
    checked option or file, and one click itself refuses)."""
    tmp = f["tmp"]
    one_scope = ["--project-id", "1", "--region-id", "1"]
    policy = str(SAMPLE_POLICY)
    return [
        ("validate ok", ["validate", f["good"]], 0),
        ("validate bad manifest", ["validate", f["bad"]], 2),
        ("validate usage", ["validate"], 2),
        ("apply ok", ["apply", f["good"], "--report", str(tmp / "a1.csv")], 0),
        ("apply not found", ["apply", f["missing"], "--report", str(tmp / "a2.csv")], 1),
        ("apply bad manifest", ["apply", f["bad"], "--report", str(tmp / "a3.csv")], 2),
        ("apply usage", ["apply", f["good"], "--concurrency", "many"], 2),
        ("plan ok", ["plan", f["good"]], 0),
        ("plan not found", ["plan", f["missing"]], 1),
        ("plan usage", ["plan", f["good"], "--bogus"], 2),
        ("undo ok", ["undo", f["report"], "-o", str(tmp / "u1.jsonl")], 0),
        ("undo conflict", ["undo", f["conflict"], "-o", str(tmp / "u2.jsonl")], 1),
        ("undo no report", ["undo", str(tmp / "none.csv")], 2),
        ("export ok", ["export", *one_scope, "-o", str(tmp / "e1.csv")], 0),
        ("export to stdout", ["export", *one_scope], 0),
        ("export failing scope", ["export", "--project-id", "1", "--all-regions"], 1),
        ("export bad where", ["export", *one_scope, "--where", "size.to_csv('x')"], 2),
        ("enforce ok", ["enforce", policy, "--report", str(tmp / "n1.csv"), "-y"], 0),
        ("enforce check", ["enforce", policy, "--check"], 0),
        (
            "enforce failing scope",
            ["enforce", policy, "--check", "--all-regions", *one_scope[:2]],
            1,
        ),
        ("enforce bad policy", ["enforce", f["bad_policy"]], 2),
        ("keys ok", ["keys", *one_scope], 0),
        ("keys failing scope", ["keys", "--project-id", "1", "--all-regions"], 1),
        ("keys usage", ["keys", "--rate"], 2),
    ]


def test_every_line_of_every_command_is_json_and_the_last_says_how_it_ended(files):
    policy_scope = files["tmp"] / "scoped.toml"  # the sample names project 1 / region 1
    seen = set()
    for name, args, code in cases(files):
        if "--all-regions" in args and args[0] == "enforce":
            policy_scope.write_text(SAMPLE_POLICY.read_text().replace("region_id = 1\n", ""))
            args = ["enforce", str(policy_scope), *args[2:]]
        result = run(args, files["sandbox"])
        assert result.exit_code == code, (name, result.stdout, result.stderr)
        data_out = args[0] == "export" and "-o" not in args
        finished = check_json(
            result.stdout, result.stderr, code, events_on="stderr" if data_out else "stdout"
        )
        if code == 2:
            assert finished["error"], name
        seen.add(args[0])
    assert seen == {"validate", "apply", "plan", "undo", "export", "enforce", "keys"}


def test_the_results_are_events_and_the_summary_is_the_last_one(files):
    applied = run(
        ["apply", files["good"], "--report", str(files["tmp"] / "s.csv")], files["sandbox"]
    )
    events = lines_of(applied.stdout)
    assert [e["event"] for e in events] == ["summary", "finished"]
    assert events[-1]["summary"]["counts"]["ok"] == 4 and events[-1]["summary"]["exit_code"] == 0
    check = run(["enforce", str(SAMPLE_POLICY), "--check", "--limit", "2"], files["sandbox"])
    kinds = [e["event"] for e in lines_of(check.stdout)]
    assert kinds[:2] == ["plan", "compliance"] and kinds[-1] == "finished"
    plan = lines_of(check.stdout)[0]
    assert len({row["snapshot_id"] for row in plan["changes"]}) <= 2
    logged = lines_of(check.stderr)
    assert all(e["event"] == "log" and {"level", "message", "time"} <= set(e) for e in logged)


def test_a_crash_is_still_json_with_the_traceback_in_one_line(files, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("something broke")

    monkeypatch.setattr("batchtag.manifest.describe_manifest", boom)
    result = run(["validate", files["good"]], files["sandbox"])
    assert result.exit_code == 1
    finished = check_json(result.stdout, result.stderr, 1)
    assert "RuntimeError: something broke" in finished["error"]
    assert any("Traceback" in e.get("exception", "") for e in lines_of(result.stderr))


def test_an_interrupt_before_the_engine_runs_is_json_and_exit_130(files, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("batchtag.manifest.describe_manifest", interrupted)
    result = run(["validate", files["good"]], files["sandbox"])
    assert result.exit_code == 130
    assert check_json(result.stdout, result.stderr, 130)["error"] == "interrupted"


# -- interrupts: SIGINT to a real process, mid-run ----------------------------------------------


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    """A sandbox where every request takes ~1.5 s, and the files the commands need (the
    run that makes the report to undo is answered at once)."""
    from batchtag.sandbox import SandboxConfig, SandboxServer

    tmp = tmp_path_factory.mktemp("slow")
    with SandboxServer(SandboxConfig(snapshots=40, seed=2)) as sandbox:
        ids = sandbox.store.ids()[:6]
        manifest = write_long_csv(tmp / "m.csv", set_rows(ids, "batch", "slow"))
        report = tmp / "r.csv"
        options = {"base_url": sandbox.base_url, "api_key": API_KEY, "project_id": 1}
        batchtag.apply(str(manifest), report=str(report), region_id=1, **options)
        sandbox.state.config.latency_ms = 1500
        yield sandbox, tmp, manifest, report


# command -> its arguments (manifest, report, folder) and what it waits for: any request of
# its own in flight, or a PATCH (the engine is sending: it stops, drains, reports)
INTERRUPTED = {
    "apply (reading)": (lambda m, r, t: ["apply", str(m), "--report", str(t / "i1.csv")], None),
    "apply (sending)": (
        lambda m, r, t: ["apply", str(m), "--report", str(t / "i2.csv"), "--concurrency", "1"],
        "PATCH",
    ),
    "plan": (lambda m, r, t: ["plan", str(m)], None),
    "undo": (lambda m, r, t: ["undo", str(r), "-o", str(t / "i.undo.jsonl")], None),
    "export": (lambda m, r, t: ["export", "-o", str(t / "i.parquet")], None),
    "enforce": (
        lambda m, r, t: ["enforce", str(SAMPLE_POLICY), "--report", str(t / "n.csv")],
        None,
    ),
    "keys": (lambda m, r, t: ["keys"], None),
}


@pytest.mark.parametrize("command", sorted(INTERRUPTED))
def test_sigint_mid_run_ends_with_json_lines_and_exit_130(slow, command):
    sandbox, tmp, manifest, report = slow
    make, method = INTERRUPTED[command]
    if command == "apply (sending)":
        manifest = write_long_csv(tmp / "m2.csv", set_rows(sandbox.store.ids()[:6], "batch", "two"))
    args = make(manifest, report, tmp)

    def requests() -> int:
        stats = sandbox.stats()
        return stats["requests"].get("PATCH", 0) if method else stats["total_requests"]

    before = requests()
    env = {**os.environ, **env_for(sandbox)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchtag", *args, *JSON, "--rate", "100"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # a request of this run is in flight (the sandbox sleeps ~1.5 s before answering)
    wait_until(
        lambda: proc.poll() is None and requests() > before, what=f"{command}'s first request"
    )
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (stdout, stderr)
    finished = check_json(stdout, stderr, 130)
    if method:  # the engine stopped: the summary says so
        assert finished["summary"]["interrupted"] and finished["summary"]["counts"]["skipped"]
