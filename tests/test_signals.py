"""SIGINT, SIGTERM and SIGHUP in every phase of every command: exit 130, one line saying
so, temporary files removed, the report lock released, and `--summary-json` written with
what happened (so a scheduler never reads an earlier run's).

Each test starts the real CLI in a subprocess against a slow sandbox and signals it at a
known point: once the process has installed its handlers (its caught-signal mask in
/proc) for start-up, or once the sandbox has answered a first read for the later phases.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import env_for, wait_until

from batchtag.sandbox import SandboxConfig, SandboxServer

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc"),
]
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


@pytest.fixture(scope="module")
def slow():
    """Every request takes 300 ms: a phase lasts long enough to be signalled in."""
    with SandboxServer(SandboxConfig(snapshots=3000, latency_ms=300)) as server:
        yield server


def catches(pid: int, sig: int) -> bool:
    """Whether process `pid` has a handler installed for `sig` (SigCgt in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    mask = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask.split()[1], 16) & (1 << (sig - 1)))


def gets(sandbox) -> int:
    return sandbox.stats()["requests"].get("GET", 0)


def start(args: list[str], sandbox, tmp_path: Path) -> subprocess.Popen:
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, **env_for(sandbox), "TMPDIR": str(tmp)}
    command = [sys.executable, "-m", "batchtag", *args]
    return subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def signalled(proc: subprocess.Popen, sig: int, when) -> tuple[str, str]:
    wait_until(lambda: proc.poll() is not None or when(), timeout=60, what="the phase")
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return out.decode(), err.decode()


def assert_interrupted(proc, err: str, tmp_path: Path, summary: Path | None = None) -> None:
    assert proc.returncode == 130, err
    assert "interrupted" in err.lower(), err
    assert not list((tmp_path / "tmp").iterdir()), "temporary files left behind"
    assert not list(tmp_path.glob("*.lock")), "a report lock left behind"
    if summary is not None:
        data = json.loads(summary.read_text())
        assert data["exit_code"] == 130, data


def manifest(sandbox, tmp_path: Path, count: int = 3000) -> Path:
    ids = sandbox.store.ids()[:count]
    path = tmp_path / "m.csv"
    pd.DataFrame({"snapshot_id": ids, "tag:owner": "signal"}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("sig", SIGNALS)
def test_start_up(slow, tmp_path, sig):
    before = slow.stats()["total_requests"]
    summary = tmp_path / "summary.json"
    m = manifest(slow, tmp_path)
    proc = start(
        ["apply", str(m), "--report", "r.csv", "--summary-json", str(summary)], slow, tmp_path
    )
    out, err = signalled(proc, sig, lambda: catches(proc.pid, signal.SIGTERM))
    assert_interrupted(proc, err, tmp_path, summary)
    assert slow.stats()["total_requests"] == before  # nothing was sent


@pytest.mark.parametrize("sig", SIGNALS)
def test_apply_while_reading_the_state(slow, tmp_path, sig):
    m = manifest(slow, tmp_path)
    summary = tmp_path / "summary.json"
    first = gets(slow)
    args = ["apply", str(m), "--report", "r.csv", "--summary-json", str(summary), "--yes"]
    proc = start([*args, "--max-changes", "100%"], slow, tmp_path)  # reads all state first
    out, err = signalled(proc, sig, lambda: gets(slow) > first)
    assert_interrupted(proc, err, tmp_path, summary)


@pytest.mark.parametrize("sig", SIGNALS)
def test_export(slow, tmp_path, sig):
    summary = tmp_path / "summary.json"
    first = gets(slow)
    proc = start(["export", "-o", "inv.parquet", "--summary-json", str(summary)], slow, tmp_path)
    out, err = signalled(proc, sig, lambda: gets(slow) > first)
    assert_interrupted(proc, err, tmp_path, summary)
    assert not (tmp_path / "inv.parquet").exists()  # no half-written inventory


@pytest.mark.parametrize("sig", SIGNALS)
def test_plan(slow, tmp_path, sig):
    m = manifest(slow, tmp_path)
    first = gets(slow)
    proc = start(["plan", str(m), "-o", "plan.csv"], slow, tmp_path)
    out, err = signalled(proc, sig, lambda: gets(slow) > first)
    assert_interrupted(proc, err, tmp_path)
    assert not (tmp_path / "plan.csv").exists()


@pytest.mark.parametrize("sig", SIGNALS)
def test_enforce(slow, tmp_path, sig):
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nname = "owner"\nset = { owner = "signal" }\n')
    summary = tmp_path / "summary.json"
    first = gets(slow)
    args = ["enforce", str(policy), "--report", "r.csv", "--summary-json", str(summary), "--yes"]
    proc = start(args, slow, tmp_path)
    out, err = signalled(proc, sig, lambda: gets(slow) > first)
    assert_interrupted(proc, err, tmp_path, summary)


@pytest.mark.parametrize("sig", SIGNALS)
def test_undo(slow, tmp_path, sig):
    ids = slow.store.ids()[:3000]
    report = tmp_path / "run.csv"
    rows = [{"project_id": 1, "region_id": 1, "snapshot_id": sid, "status": "ok"} for sid in ids]
    frame = pd.DataFrame(rows)
    frame["tags_before"] = '{"owner":"before"}'
    frame["tags_after"] = '{"owner":"after"}'
    frame.to_csv(report, index=False)
    first = gets(slow)
    proc = start(["undo", str(report), "-o", "back.jsonl"], slow, tmp_path)
    out, err = signalled(proc, sig, lambda: gets(slow) > first)
    assert_interrupted(proc, err, tmp_path)
