"""End to end over real HTTP against the sandbox: the paths the virtual-time tests in
test_engine.py cannot see (aiohttp, the sandbox's own faults, the Python API, Ctrl-C)."""

from __future__ import annotations

import _thread
import asyncio
import threading

import pandas as pd
import pytest
from helpers import API_KEY, fetch_tags, scope_of, set_rows, wait_until, write_long_csv

import batchtag
from batchtag.config import Settings
from batchtag.gcore import Client
from batchtag.model import PlanEntry
from batchtag.record import read_report
from batchtag.send import Engine, EngineOptions

pytestmark = pytest.mark.timeout(90)


def run_apply(sandbox, tmp_path, rows, **options):
    manifest = write_long_csv(tmp_path / "m.csv", rows)
    options.setdefault("concurrency", 8)
    options.setdefault("rate", 500)
    return batchtag.apply(manifest, report=tmp_path / "report.csv", **scope_of(sandbox, **options))


def run_engine(sandbox, entries, **options):
    """Drive the engine directly (for knobs the CLI does not expose)."""
    results = []

    async def main():
        async with Client(Settings(sandbox.base_url, API_KEY)) as client:
            engine = Engine(client, EngineOptions(**options), results.append)
            await engine.run(entries)
            return engine

    return asyncio.run(main()), {r.snapshot_id: r for r in results}


def test_ok_keeps_returned_tags_and_changes_the_sandbox(make_sandbox, tmp_path):
    sandbox = make_sandbox()
    ids = sandbox.store.ids()[:20]
    report = run_apply(sandbox, tmp_path, set_rows(ids, "cost-center", "cc-7"))
    assert set(report.status) == {"ok"}
    assert report.attrs["summary"]["exit_code"] == 0
    for row in report.itertuples():
        assert row.tags_after["cost-center"] == "cc-7"
    assert all(fetch_tags(sandbox.base_url, sid)["cost-center"] == "cc-7" for sid in ids)


def test_locks_that_clear_end_ok_with_retries_counted(make_sandbox, tmp_path):
    sandbox = make_sandbox(lock_rate=0.5, lock_ms=200)
    locked = [s.id for s in sandbox.store.snapshots() if s.task_id][:6]
    free = [s.id for s in sandbox.store.snapshots() if not s.task_id][:6]
    report = run_apply(sandbox, tmp_path, set_rows(locked + free))
    assert set(report.status) == {"ok"}
    stats = sandbox.stats()
    assert stats["responses"].get("409", 0) >= len(locked)
    assert report.attrs["summary"]["retries"]["lock"] >= len(locked)
    by_id = report.set_index("snapshot_id")
    assert (by_id.loc[locked, "attempts"] >= 2).all()
    assert (by_id.loc[free, "attempts"] == 1).all()


def test_transient_5xx_are_retried(make_sandbox, tmp_path):
    sandbox = make_sandbox(error_rate=0.25, seed=3)
    ids = sandbox.store.ids()[:40]
    report = run_apply(sandbox, tmp_path, set_rows(ids), retries=8)
    assert set(report.status) == {"ok"}
    stats = sandbox.stats()["responses"]
    assert sum(stats.get(code, 0) for code in ("500", "502", "503")) > 0
    assert report.attrs["summary"]["retries"]["transient"] > 0


def test_dropped_connections_are_retried(make_sandbox, tmp_path):
    sandbox = make_sandbox(drop_rate=0.2, seed=5)
    ids = sandbox.store.ids()[:30]
    report = run_apply(sandbox, tmp_path, set_rows(ids), retries=8)
    assert set(report.status) == {"ok"}
    assert report.attrs["summary"]["retries"]["transient"] > 0
    assert all(fetch_tags(sandbox.base_url, sid)["batch"] == "one" for sid in ids)


def test_wrong_key_aborts_and_skips_the_rest(make_sandbox, tmp_path):
    sandbox = make_sandbox(api_key="the-right-key")
    ids = sandbox.store.ids()[:60]
    with pytest.raises(batchtag.AbortRun, match=r"credentials rejected .*\(report: ") as info:
        run_apply(sandbox, tmp_path, set_rows(ids), concurrency=4, rate=50)
    assert str(tmp_path / "report.csv") in str(info.value)
    report = info.value.report  # the report frame, as apply returned it before
    counts = report.status.value_counts().to_dict()
    assert counts.get("ok", 0) == 0
    assert counts["skipped"] >= 60 - 4
    assert report.attrs["summary"]["exit_code"] == 3
    assert sandbox.stats()["requests"].get("PATCH", 0) <= 4
    assert len(report) == 60


def test_no_snapshot_ever_has_two_requests_in_flight(make_sandbox, tmp_path):
    sandbox = make_sandbox(lock_rate=0.3, lock_ms=100, error_rate=0.1, latency_ms=5)
    ids = sandbox.store.ids()[:60]
    first = run_apply(sandbox, tmp_path, set_rows(ids), concurrency=32, retries=8)
    # renames read the snapshot first: a GET and a PATCH per snapshot, never overlapping
    renames = [
        {"snapshot_id": sid, "op": "rename", "key": "batch", "value": "batch2"} for sid in ids[:20]
    ]
    (tmp_path / "report.csv").unlink()
    second = run_apply(
        sandbox,
        tmp_path,
        renames + set_rows(ids[20:], "other", "x"),
        concurrency=32,
        retries=8,
    )
    assert set(first.status) == set(second.status) == {"ok"}
    assert sandbox.stats()["max_inflight_per_snapshot"] == 1
    renamed = sandbox.store.find(1, 1, ids[0]).tags  # the API itself answers 500s here
    assert renamed.get("batch2") == "one" and "batch" not in renamed


def test_apply_works_inside_a_running_event_loop(make_sandbox, tmp_path):
    sandbox = make_sandbox()
    ids = sandbox.store.ids()[:5]

    async def notebook_cell():
        asyncio.get_running_loop()  # as in Jupyter: a loop is already running
        return run_apply(sandbox, tmp_path, set_rows(ids, "nb", "yes"))

    report = asyncio.run(notebook_cell())
    assert set(report.status) == {"ok"}
    assert fetch_tags(sandbox.base_url, ids[0])["nb"] == "yes"


def test_apply_async_returns_the_report(make_sandbox, tmp_path):
    sandbox = make_sandbox()
    ids = sandbox.store.ids()[:3]
    manifest = write_long_csv(tmp_path / "m.csv", set_rows(ids))
    report = asyncio.run(
        batchtag.apply_async(manifest, report=tmp_path / "r.jsonl", **scope_of(sandbox))
    )
    assert list(report.snapshot_id) == ids
    assert set(report.status) == {"ok"}


def test_ctrl_c_in_a_notebook_interrupts_the_run_and_resume_finishes(make_sandbox, tmp_path):
    sandbox = make_sandbox(latency_ms=10)
    ids = sandbox.store.ids()[:100]
    report_path = tmp_path / "report.csv"

    def press_ctrl_c_once_rows_land() -> None:
        def landed() -> bool:
            return report_path.exists() and report_path.read_text().count("\n") > 10

        try:  # on a timeout the run is interrupted all the same, so the test cannot hang
            wait_until(landed, timeout=30, what="ten report rows")
        finally:
            _thread.interrupt_main()  # what Jupyter's "interrupt kernel" does

    async def notebook_cell():
        threading.Thread(target=press_ctrl_c_once_rows_land, daemon=True).start()
        return run_apply(sandbox, tmp_path, set_rows(ids), rate=40, concurrency=4)

    # run_until_complete, unlike asyncio.run, leaves Python's own SIGINT handler in place,
    # as a Jupyter kernel does
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(batchtag.Interrupted) as caught:  # the report so far, and the resume
            loop.run_until_complete(notebook_cell())
    finally:
        loop.close()
    first = read_report(report_path)
    pd.testing.assert_frame_equal(caught.value.report, first)
    assert sorted(first.snapshot_id) == sorted(ids)
    assert set(first.status) == {"ok", "skipped"}
    report = batchtag.apply(tmp_path / "m.csv", resume=report_path, **scope_of(sandbox, rate=500))
    assert len(report) == 100 and set(report.status) == {"ok"}
    assert report.attrs["summary"]["exit_code"] == 0


def test_a_failing_plan_iterator_stops_the_run_after_reporting_what_it_took(make_sandbox):
    sandbox = make_sandbox()
    ids = sandbox.store.ids()[:30]

    def entries():
        for sid in ids[:20]:
            yield PlanEntry(1, 1, sid, tags={"batch": "b"})
        raise OSError("manifest stream broke")

    results = []

    async def main():
        async with Client(Settings(sandbox.base_url, API_KEY)) as client:
            engine = Engine(client, EngineOptions(concurrency=4, rate=1000), results.append)
            await engine.run(entries())

    with pytest.raises(OSError, match="manifest stream broke"):
        asyncio.run(main())
    assert sorted(r.snapshot_id for r in results) == sorted(ids[:20])
    assert {r.status for r in results} == {"ok"}
    assert sandbox.stats()["requests"]["PATCH"] == 20
