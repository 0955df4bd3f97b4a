"""Reports under faults: a full disk, unwritable paths, a second run, spreadsheet re-saves,
huge cells, torn lines; and two runs at once in threads (issues 10 and 16)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import API_KEY, env_for, set_rows, write_long_csv

from batchtag.api import apply
from batchtag.cli import main
from batchtag.errors import UsageError
from batchtag.model import Result
from batchtag.record import ReportLock, ReportWriter, done_keys, read_report
from batchtag.tabular import write_all

FP = "f" * 32


def invoke(args, sandbox):
    return CliRunner().invoke(main, args, env=env_for(sandbox), catch_exceptions=False)


def patches(sandbox) -> int:
    return sandbox.stats()["requests"].get("PATCH", 0)


def manifest(tmp_path: Path, ids: list[str], name: str = "m.csv", value: str = "one") -> Path:
    return write_long_csv(tmp_path / name, set_rows(ids, "batch", value))


# ------------------------------------------------------------------ two runs at once


def test_two_applies_in_threads_each_write_their_own_report(make_sandbox, tmp_path):
    sandbox = make_sandbox(snapshots=120)
    ids = sandbox.store.ids()
    jobs = {"a": ids[:60], "b": ids[60:]}
    frames, errors = {}, []

    def run(name: str) -> None:
        try:
            frames[name] = apply(
                str(manifest(tmp_path, jobs[name], f"{name}.csv", name)),
                report=str(tmp_path / f"{name}-report.csv"),
                base_url=sandbox.base_url, api_key=API_KEY, project_id=1, region_id=1,
                concurrency=4, rate=1000,
            )  # fmt: skip
        except Exception as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    for name, expected in jobs.items():
        report = read_report(tmp_path / f"{name}-report.csv")
        assert sorted(report["snapshot_id"]) == sorted(expected)
        assert (report["status"] == "ok").all()
        assert all(tags.get("batch") == name for tags in report["tags_after"])
        assert sorted(report["rows"].tolist()) == [[i + 1] for i in range(len(expected))]
        assert sorted(frames[name]["snapshot_id"]) == sorted(expected)


# ------------------------------------------------------------------ full disk mid-run


def fill_disk_after(monkeypatch, folder: Path, writes: int) -> None:
    """Every write to a file under `folder` fails with ENOSPC after `writes` of them."""
    real = os.write
    count = {"n": 0}

    def write(fd, data):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if target.startswith(str(folder)):
            count["n"] += 1
            if count["n"] > writes:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)  # every writer calls os.write


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_disk_full_mid_run_stops_at_once_with_one_line(make_sandbox, tmp_path, monkeypatch, suffix):
    sandbox = make_sandbox(snapshots=30)
    ids = sandbox.store.ids()
    path = tmp_path / f"r{suffix}"
    args = ["apply", str(manifest(tmp_path, ids)), "--report", str(path), "--concurrency", "1"]
    header = 1 if suffix == ".csv" else 0
    fill_disk_after(monkeypatch, tmp_path, 1 + header + 10)  # the lock's pid, then 10 rows
    result = invoke([*args, "--rate", "1000"], sandbox)

    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines() if result.stderr_bytes else []
    assert lines == [f"error: report write failed: no space left on device ({path})"]
    assert "Traceback" not in result.output
    # The 11th result could not be recorded. Rows go to the OS once per event-loop
    # iteration, so the one worker may have sent the 12th PATCH in the iteration before
    # the failed write stopped the run; nothing after it.
    sent = patches(sandbox)
    assert sent in (11, 12)
    monkeypatch.undo()
    assert read_report(path)["snapshot_id"].tolist() == ids[:10]
    resumed = invoke([*args[:2], "--resume", str(path), *args[4:], "--rate", "1000"], sandbox)
    assert resumed.exit_code == 0, resumed.output
    # what was applied but not recorded is found done when the resume reads the state
    assert patches(sandbox) == 30
    assert resumed.output.startswith("30 snapshots in")  # the whole report ...
    this_run = f"  this run: 20 snapshots: ok {30 - sent}, noop {sent - 10}"  # ... this run
    assert this_run in resumed.output.splitlines()
    assert read_report(path)["snapshot_id"].tolist() == ids


@pytest.mark.parametrize(
    "where", ["/proc/batchtag-r.csv", "/proc/no-such-dir/r.csv", "read-only/r.csv"]
)
def test_unwritable_report_is_exit_2_before_anything_is_sent(sandbox, tmp_path, where):
    if where.startswith("read-only"):
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        (tmp_path / "read-only").mkdir(mode=0o500)
        where = str(tmp_path / where)
    m = manifest(tmp_path, sandbox.store.ids()[:3])
    result = invoke(["apply", str(m), "--report", where], sandbox)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: report {where} cannot be written: ")
    assert len(result.stderr.splitlines()) == 1
    assert sandbox.stats()["requests"] == {}


# ------------------------------------------------------------------ the lock

HOLDER = """
import sys
from batchtag.record import ReportLock
with ReportLock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_a_second_run_on_a_running_report_is_refused_naming_the_holder(sandbox, tmp_path):
    path = tmp_path / "r.csv"
    m = manifest(tmp_path, sandbox.store.ids()[:3])
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline() == b"locked\n"
        result = invoke(["apply", str(m), "--report", str(path)], sandbox)
        assert result.exit_code == 2
        assert f"is in use by another batchtag run (pid {holder.pid})" in result.stderr
        assert sandbox.stats()["requests"] == {}
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # The killed holder's lock is stale: the next run takes it over.
    assert invoke(["apply", str(m), "--report", str(path)], sandbox).exit_code == 0
    assert not Path(f"{path}.lock").exists()


def test_the_lock_is_exclusive_and_released(tmp_path):
    path = tmp_path / "r.csv"
    with ReportLock(path) as lock:
        assert lock.path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(
            UsageError, match=f"in use by another batchtag run \\(pid {os.getpid()}\\)"
        ):
            ReportLock(path).acquire()
    with ReportLock(path):  # free again
        pass


# ------------------------------------------------------------------ hand-edited reports


def result(i: int, status: str = "ok", **kw) -> Result:
    return Result(1, 76, f"snap-{i:03d}", status, attempts=1, rows=[i + 2], **kw)


def write_report(path: Path, results, resume=False) -> None:
    with ReportWriter(path, passthrough=[], fingerprint=FP, resume=resume) as writer:
        for r in results:
            writer.write(r)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_resave_with_bom_and_crlf_resumes_without_resending(tmp_path, suffix):
    path = tmp_path / f"r{suffix}"
    write_report(path, [result(i, "ok" if i % 2 else "failed") for i in range(20)])
    text = path.read_text(encoding="utf-8")
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    assert done_keys(path) == {(1, 76, f"snap-{i:03d}") for i in range(1, 20, 2)}
    write_report(path, [result(0)], resume=True)
    report = read_report(path)
    assert report.columns[0] == "project_id"  # no junk column from the mark
    assert len(report) == 20 and report.loc[0, "status"] == "ok"


def test_a_cell_over_128_kib_reads_back(tmp_path):
    path = tmp_path / "r.csv"
    big = "x" * 200_000
    write_report(path, [result(0), result(1, "failed", error=big), result(2)])
    report = read_report(path)
    assert report["snapshot_id"].tolist() == ["snap-000", "snap-001", "snap-002"]
    assert report.loc[1, "error"] == big


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_damaged_row_in_the_middle_is_an_error_naming_the_line(tmp_path, suffix):
    path = tmp_path / f"r{suffix}"
    write_report(path, [result(i) for i in range(3)])
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(2, "1,76,snap-x,ok\n" if suffix == ".csv" else '{"project_id": 1,\n')
    path.write_text("".join(lines))
    line = 3 if suffix == ".csv" else 3
    with pytest.raises(UsageError, match=f"cannot read {path}, line {line}: "):
        read_report(path)


def test_a_bad_cell_in_the_middle_names_line_and_column(tmp_path):
    path = tmp_path / "r.csv"
    write_report(path, [result(i) for i in range(3)])
    path.write_text(path.read_text().replace("1,76,snap-001", "1,seventy-six,snap-001"))
    with pytest.raises(UsageError, match=f"cannot read {path}, line 3: column 'region_id': "):
        read_report(path)


def test_a_damaged_parquet_report_is_one_line_error(tmp_path):
    path = tmp_path / "r.parquet"
    write_report(path, [result(0)])
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(UsageError, match=f"cannot read {path}: not a readable Parquet file"):
        read_report(path)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_torn_journal_line_drops_only_itself(tmp_path, suffix):
    path = tmp_path / f"r{suffix}"
    writer = ReportWriter(path, passthrough=[], fingerprint=FP)
    writer.write(result(0))
    writer.write(result(1))
    target = Path(f"{path}.journal.jsonl") if suffix == ".parquet" else path
    fd = os.open(target, os.O_WRONLY | os.O_APPEND)
    write_all(fd, b'{"project_id": 1, "region_id": 76, "snapshot_id": "snap-0')
    os.close(fd)
    assert read_report(path)["snapshot_id"].tolist() == ["snap-000", "snap-001"]


def test_a_corrupt_meta_file_is_one_line_error(tmp_path):
    path = tmp_path / "r.csv"
    write_report(path, [result(0)])
    Path(f"{path}.meta.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match="metadata .*not a JSON object"):
        ReportWriter(path, passthrough=[], fingerprint=FP, resume=True)


def test_rows_of_one_busy_iteration_reach_the_file_past_the_hand_over_bound(tmp_path):
    """Inside a loop, rows wait for the next iteration; a burst with no iteration between
    (results that needed no request) is handed over every FLUSH_ROWS rows, not held."""
    import asyncio

    from batchtag.record import FLUSH_ROWS

    path = tmp_path / "r.csv"
    seen: list[int] = []

    async def burst() -> None:
        with ReportWriter(path, passthrough=[], fingerprint=FP) as writer:
            for i in range(FLUSH_ROWS * 2 + 5):
                writer.write(result(i))
            seen.append(len(path.read_text().splitlines()) - 1)  # before the loop iterates

    asyncio.run(burst())
    assert seen == [FLUSH_ROWS * 2]
    assert len(read_report(path)) == FLUSH_ROWS * 2 + 5
