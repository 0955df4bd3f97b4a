"""kill -9 in the middle of a run (and of a resume) loses no written result."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from batchtag.record import ReportWriter, done_keys, journal_path, read_report

FORMATS = ["csv", "jsonl", "parquet"]


def write_all(path: Path, results, **kw) -> None:
    with ReportWriter(path, passthrough=["ticket"], fingerprint="f" * 32, **kw) as writer:
        for result in results:
            writer.write(result)


# ------------------------------------------------------------------ kill -9

KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from batchtag.record import ReportWriter
    from batchtag.model import Result

    path, n, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "resume"
    status = "ok" if resume else "failed"
    writer = ReportWriter(path, passthrough=["ticket"], fingerprint="f" * 32, resume=resume)
    for i in range(n):
        writer.write(Result(1, 76, f"snap-{i:04d}", status, attempts=1,
                            tags_after={"k": str(i)}, rows=[i + 1], extra={"ticket": i}))
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def run_and_kill(path: Path, n: int, resume: bool = False) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(path), str(n), "resume" if resume else "fresh"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == -9, proc.stderr.decode()


@pytest.mark.parametrize("fmt", FORMATS)
def test_kill_9_loses_no_written_result(tmp_path, fmt):
    path = tmp_path / f"report.{fmt}"
    n = 200
    run_and_kill(path, n)
    if fmt == "parquet":
        assert not path.exists()
        assert journal_path(path).exists()

    df = read_report(path)
    assert df["snapshot_id"].tolist() == [f"snap-{i:04d}" for i in range(n)]
    assert df["tags_after"].tolist() == [{"k": str(i)} for i in range(n)]
    assert (df["status"] == "failed").all()

    # Killed again in the middle of a resume: a later reader still gets every snapshot
    # exactly once with its latest status.
    run_and_kill(path, n // 2, resume=True)
    df = read_report(path)
    assert df["snapshot_id"].tolist() == [f"snap-{i:04d}" for i in range(n)]
    assert df["status"].tolist() == ["ok"] * (n // 2) + ["failed"] * (n - n // 2)
    assert len(done_keys(path)) == n // 2

    # A final resume compacts the file for good.
    write_all(path, [], resume=True)
    assert len(read_report(path)) == n
    if fmt == "jsonl":
        assert len(path.read_text().splitlines()) == n
    if fmt == "parquet":
        assert not journal_path(path).exists()
        assert len(pd.read_parquet(path)) == n
