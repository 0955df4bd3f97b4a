"""The crash-safety bound of a run: what a `kill -9` of `apply` may lose.

Report rows go to the OS once per event-loop iteration (batchtag.record._writer), so a kill
loses at most the requests in flight (one per worker) plus the results finished since the
last hand-over (at most one per worker: a worker finishes at most one request per
iteration): at most 2 x --concurrency snapshots applied but not in the report. A resume
finds those applied when it reads the state (noop, not sent) and sends exactly the rest.
"""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import env_for, invoke, patches, set_rows, wait_until, write_long_csv

from batchtag.record import read_report

CONCURRENCY = 8
RATE = ["--rate", "1000"]  # (20 ms a request: concurrency, not the rate, bounds the run)
KILL_AFTER = 120  # PATCHes the sandbox has received when the run is killed
TAG = ("batch", "crash")


def answered(sandbox) -> bool:
    """Every request the sandbox received has been answered (or its handler ended)."""
    stats = sandbox.stats()
    return sum(stats["requests"].values()) == sum(stats["responses"].values())


def applied(sandbox, ids: list[str]) -> set[str]:
    key, value = TAG
    return {sid for sid in ids if sandbox.store.find(1, 1, sid).tags.get(key) == value}


def test_kill_9_loses_at_most_one_iteration_of_results_and_resume_sends_the_rest(
    make_sandbox, tmp_path
):
    sandbox = make_sandbox(latency_ms=20)
    ids = sandbox.store.ids()
    manifest = write_long_csv(tmp_path / "m.csv", set_rows(ids, *TAG))
    report = tmp_path / "report.csv"
    command = [sys.executable, "-m", "batchtag", "apply", str(manifest), "--report", str(report)]
    command += ["--yes", "--no-progress", "--concurrency", str(CONCURRENCY), *RATE]
    proc = subprocess.Popen(command, env={**os.environ, **env_for(sandbox)})
    try:
        wait_until(lambda: patches(sandbox) >= KILL_AFTER, what=f"{KILL_AFTER} PATCHes")
    finally:
        proc.kill()  # SIGKILL: no flush, no cleanup of any kind
        proc.wait(timeout=30)
    wait_until(lambda: answered(sandbox), what="the sandbox to answer what it received")

    done = applied(sandbox, ids)
    recorded = read_report(report)
    assert set(recorded["status"]) == {"ok"}
    recorded_ids = set(recorded["snapshot_id"])
    assert recorded_ids <= done  # a row is written only for a PATCH the API answered
    assert len(done) >= KILL_AFTER - CONCURRENCY  # answered before the kill (some in flight)
    assert len(done) < len(ids)
    assert len(done - recorded_ids) <= 2 * CONCURRENCY

    sent_before = patches(sandbox)
    resumed = invoke(["apply", str(manifest), "--resume", str(report), *RATE], sandbox)
    assert resumed.exit_code == 0, resumed.output
    assert patches(sandbox) - sent_before == len(ids) - len(done)  # exactly the rest
    final = read_report(report)
    assert sorted(final["snapshot_id"]) == sorted(ids)  # each snapshot exactly once
    noop = set(final.loc[final["status"] == "noop", "snapshot_id"])
    assert noop == done - recorded_ids  # applied but unrecorded: found applied, not resent
    assert applied(sandbox, ids) == set(ids)
