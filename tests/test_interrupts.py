"""Ctrl-C from Python (a notebook's stop button sends the kernel the same SIGINT): every
command raises `batchtag.Interrupted` with the frame so far and the call that finishes it.

SIGINT is delivered to the main thread by a watcher once the sandbox has answered a given
number of requests (a point in the run, not a time), while the sandbox's latency keeps the
rest of the run long enough for the signal to land first.
"""

from __future__ import annotations

import re
import signal
import threading
import traceback

import pandas as pd
import pytest
from helpers import API_KEY, scope_of, wait_until

import batchtag


def interrupt_when(condition, what: str) -> threading.Thread:
    """SIGINT to the main thread (what Ctrl-C and the stop button do) once `condition()`."""
    main = threading.main_thread().ident

    def watch() -> None:
        wait_until(condition, what=what)
        signal.pthread_kill(main, signal.SIGINT)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


def requests(server, method: str) -> int:
    return server.stats()["requests"].get(method, 0)


def set_manifest(ids, value: str = "cc-1") -> pd.DataFrame:
    return pd.DataFrame({"snapshot_id": ids, "op": "set", "key": "cost-center", "value": value})


def only_the_call(error: BaseException, name: str) -> None:
    """A short traceback: of batchtag's frames only the function called, no KeyboardInterrupt
    chained to it."""
    internal = [
        f.name
        for f in traceback.extract_tb(error.__traceback__)
        if "/batchtag/" in f.filename.replace("\\", "/")
    ]
    assert internal == [name]
    assert error.__suppress_context__ and error.__cause__ is None


def test_an_interrupted_apply_keeps_its_report_and_resumes_where_it_stopped(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=200, latency_ms=20, api_key=API_KEY)
    ids = server.store.ids()
    report = tmp_path / "run1.csv"
    options = scope_of(server, report=str(report), concurrency=2, rate=500, progress=False)
    watcher = interrupt_when(lambda: requests(server, "PATCH") >= 10, "10 PATCHes")
    with pytest.raises(batchtag.Interrupted) as caught:
        batchtag.apply(set_manifest(ids), **options)
    watcher.join()
    error = caught.value
    only_the_call(error, "apply")
    partial = error.report
    counts = partial["status"].value_counts().to_dict()
    assert counts["ok"] >= 10 and counts["skipped"] == 200 - counts["ok"]
    assert counts["ok"] == requests(server, "PATCH")  # in flight ones finished: all recorded
    assert len(str(error).splitlines()) == 1 and API_KEY not in str(error)
    assert f"resume={str(report)!r}" in str(error) and "api_key=***" in str(error)
    assert "resume=" in repr(error.resume) and API_KEY not in repr(vars(error.resume))
    assert error.exit_code == 130 and isinstance(error, batchtag.BatchtagError)

    finished = error.resume(concurrency=8)  # an option of the call can change
    assert finished["status"].value_counts().to_dict() == {"ok": 200}
    assert requests(server, "PATCH") == 200  # every snapshot written once
    assert finished.attrs["summary"]["already_done"] == counts["ok"]


class Terminated(Exception):
    """What a scheduler's SIGTERM handler raises in the task's thread (Airflow's does)."""


def test_a_schedulers_stop_ends_the_run_cleanly_and_is_raised_as_it_is(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=200, latency_ms=20, api_key=API_KEY)
    report = tmp_path / "run1.csv"

    def terminate(signum, frame):
        raise Terminated("the task was stopped")

    previous = signal.signal(signal.SIGUSR1, terminate)
    try:
        main = threading.main_thread().ident
        watcher = threading.Thread(
            target=lambda: (
                wait_until(lambda: requests(server, "PATCH") >= 10, what="10 PATCHes"),
                signal.pthread_kill(main, signal.SIGUSR1),
            ),
            daemon=True,
        )
        watcher.start()
        options = scope_of(server, report=str(report), concurrency=2, rate=500, progress=False)
        with pytest.raises(Terminated):
            batchtag.apply(set_manifest(server.store.ids()), **options)
        watcher.join()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    written = batchtag.read_report(report)["status"].value_counts().to_dict()
    assert written["ok"] == requests(server, "PATCH") and written["skipped"] > 0


def test_an_interrupt_before_the_first_write_sends_nothing_and_runs_again(make_sandbox, tmp_path):
    """max_changes reads the whole state before sending: a Ctrl-C while it reads stops
    a run that has sent nothing and has no report; the resume is the same call."""
    server = make_sandbox(snapshots=3000, latency_ms=50, api_key=API_KEY)
    ids = server.store.ids()[:5]  # 3 list pages are fewer requests than 5 GETs
    report = tmp_path / "run1.csv"
    options = scope_of(server, report=str(report), max_changes="100%", concurrency=1)
    watcher = interrupt_when(lambda: requests(server, "GET") >= 1, "the first page")
    with pytest.raises(batchtag.Interrupted, match="nothing was sent") as caught:
        batchtag.apply(set_manifest(ids), progress=False, **options)
    watcher.join()
    assert caught.value.report is None and requests(server, "PATCH") == 0
    assert not report.exists()
    assert "resume=" not in repr(caught.value.resume)
    assert caught.value.resume()["status"].value_counts().to_dict() == {"ok": 5}


def test_an_interrupted_plan_holds_the_diff_so_far(make_sandbox):
    server = make_sandbox(snapshots=20_000, latency_ms=30, api_key=API_KEY)
    ids = server.store.ids()[::1000][:12]  # 12 snapshots of 20 pages: read by GET
    manifest = set_manifest(ids)
    options = scope_of(server, concurrency=1, progress=False)
    complete = batchtag.plan(manifest, **options)
    before = requests(server, "GET")
    watcher = interrupt_when(lambda: requests(server, "GET") >= before + 3, "3 GETs")
    pattern = r"plan interrupted: \d+ of 12 snapshots read"
    with pytest.raises(batchtag.Interrupted, match=pattern) as caught:
        batchtag.plan(manifest, **options)
    watcher.join()
    only_the_call(caught.value, "plan")
    partial = caught.value.report
    assert set(partial["snapshot_id"]) < set(complete["snapshot_id"])
    assert list(partial.columns) == list(complete.columns)
    pd.testing.assert_frame_equal(caught.value.resume(), complete)


def test_an_interrupted_export_holds_the_rows_read_and_writes_no_file(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=10_000, latency_ms=50, api_key=API_KEY)
    out = tmp_path / "inventory.parquet"
    options = scope_of(server, concurrency=1, output=str(out), progress=False)
    watcher = interrupt_when(lambda: requests(server, "GET") >= 3, "3 pages")
    with pytest.raises(batchtag.Interrupted) as caught:
        batchtag.export(**options)
    watcher.join()
    only_the_call(caught.value, "export")
    partial = caught.value.report
    assert 2000 <= len(partial) < 10_000 and not out.exists()
    assert partial["snapshot_id"].is_unique
    whole = caught.value.resume()
    assert len(whole) == 10_000 and out.exists()
    pd.testing.assert_frame_equal(partial, whole.iloc[: len(partial)])


def test_an_interrupted_undo_runs_again(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=20_000, latency_ms=30, api_key=API_KEY)
    ids = server.store.ids()[::1000][:12]
    report = tmp_path / "run1.csv"
    base = scope_of(server, concurrency=1, progress=False)
    batchtag.apply(set_manifest(ids), report=str(report), check_current=True, **base)
    connection = {k: base[k] for k in ("base_url", "api_key", "concurrency", "progress")}
    before = requests(server, "GET")
    watcher = interrupt_when(lambda: requests(server, "GET") >= before + 3, "3 GETs")
    with pytest.raises(batchtag.Interrupted) as caught:
        batchtag.undo(str(report), **connection)
    watcher.join()
    only_the_call(caught.value, "undo")
    assert caught.value.report is None
    assert len(caught.value.resume()) == 12


POLICY = """
[[rule]]
name = "default cost-center"
where = "`tag:cost-center`.isna()"
set = { "cost-center" = "unassigned" }
"""


def test_an_interrupted_enforce_keeps_its_report_and_running_it_again_finishes(
    make_sandbox, tmp_path
):
    server = make_sandbox(snapshots=300, latency_ms=20, api_key=API_KEY)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    options = scope_of(
        server, concurrency=2, rate=500, progress=False, report=str(tmp_path / "e1.csv")
    )
    watcher = interrupt_when(lambda: requests(server, "PATCH") >= 10, "10 PATCHes")
    with pytest.raises(batchtag.Interrupted) as caught:
        batchtag.enforce(str(policy), **options)
    watcher.join()
    only_the_call(caught.value, "enforce")
    written = requests(server, "PATCH")
    assert (caught.value.report["status"] == "ok").sum() == written
    finished = caught.value.resume(report=str(tmp_path / "e2.csv"), concurrency=8)
    untagged = [s for s in server.store.snapshots() if "cost-center" not in s.tags]
    assert untagged == [] and (finished["status"] == "ok").all()
    assert requests(server, "PATCH") == written + len(finished)


GREEN, RED = "\x1b[32m", "\x1b[31m"  # the text bar's colours


def final_bar(text: str) -> str:
    """The last state of the last bar drawn (what a terminal shows after the \\r redraws)."""
    return re.split(r"[\r\n]+", text.strip())[-1]


def test_plan_and_undo_bars_count_the_manifests_snapshots(make_sandbox, tmp_path, capsys):
    server = make_sandbox(snapshots=3000, api_key=API_KEY)
    ids = server.store.ids()[:5]  # 5 of 3,000: a bar over the scope would count 3,000
    batchtag.plan(set_manifest(ids), progress=True, **scope_of(server))
    plan_bar = final_bar(capsys.readouterr().err)
    assert "5/5" in plan_bar and "3000" not in plan_bar and GREEN in plan_bar
    report = tmp_path / "run1.csv"
    batchtag.apply(set_manifest(ids), report=str(report), check_current=True, **scope_of(server))
    batchtag.undo(str(report), base_url=server.base_url, api_key=API_KEY, progress=True)
    undo_bar = final_bar(capsys.readouterr().err)
    assert "5/5" in undo_bar and "3000" not in undo_bar and GREEN in undo_bar


def test_an_interrupted_plan_leaves_its_bar_red_and_unfinished(make_sandbox, capsys):
    server = make_sandbox(snapshots=20_000, latency_ms=30, api_key=API_KEY)
    ids = server.store.ids()[::1000][:12]
    watcher = interrupt_when(lambda: requests(server, "GET") >= 3, "3 GETs")
    with pytest.raises(batchtag.Interrupted):
        batchtag.plan(set_manifest(ids), progress=True, **scope_of(server, concurrency=1))
    watcher.join()
    bar = final_bar(capsys.readouterr().err)
    done, total = map(int, re.search(r"(\d+)/(\d+)", bar).groups())
    assert done < total == 12 and RED in bar
