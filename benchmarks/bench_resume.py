"""`apply --resume` of a big report half done: how soon it sends again, and its peak RSS.

A wide manifest (one tag, one passthrough column) of every snapshot of a sandbox scope, and
a CSV report of the first half of it, every row `ok`, written by batchtag's own report
writer with the cells a real run leaves (tags before and after, names, times, rows, the
request body); the second half is still to send. The run is timed from its start to the
first PATCH the sandbox receives (its `first_at` stats), in two modes: the default (the
state is read first, a page at a time, the pages of the done half included) and blind
(`--no-check-current`: the report and the manifest are all it reads before sending). Once
`SETTLE` PATCHes went through it is interrupted (SIGINT, exit 130): its peak RSS (VmHWM)
covers the report's reading and the start of the sending. Each run resumes a fresh copy
of the report.

    python -m benchmarks.bench_resume
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import harness, mode
from benchmarks.bench_memory import write_wide

SNAPSHOTS = mode.pick(1_000_000, 20_000)
SETTLE = mode.pick(20_000, 1_000)  # PATCHes let through before the run is interrupted
TARGET_S = 5.0
TARGET_MB = 300
DEADLINE_S = 900  # a run that has not sent SETTLE PATCHes by then has failed
MODES = {"default": [], "blind": ["--no-check-current"]}


def write_half_report(manifest: Path, report: Path) -> int:
    """The report of a run stopped half-way: the first half of the plan `ok`, as batchtag's
    writer records it (the fingerprint of the whole manifest). Returns its rows."""
    from batchtag.manifest import read_plan
    from batchtag.model import Result
    from batchtag.record import ReportWriter

    plan = read_plan(manifest, project_id=harness.PROJECT_ID, region_id=harness.REGION_ID)
    half = len(plan.entries) // 2
    body = json.dumps({"tags": {harness.TAG_KEY: harness.TAG_VALUE}}, separators=(",", ":"))
    before = {"app": "checkout", "cost-center": "cc-3300", "team": "platform"}
    after = {**before, harness.TAG_KEY: harness.TAG_VALUE}
    with ReportWriter(report, passthrough=plan.passthrough, fingerprint=plan.fingerprint()) as out:
        for i, entry in enumerate(plan.entries):
            if i == half:
                break
            out.write(
                Result(
                    entry.project_id,
                    entry.region_id,
                    entry.snapshot_id,
                    "ok",
                    http_status=200,
                    attempts=1,
                    started_at="2026-01-05T10:00:00.000Z",
                    finished_at="2026-01-05T10:00:00.120Z",
                    elapsed_ms=120.4,
                    tags_before=before if i % 3 else {},
                    tags_after=after if i % 3 else {harness.TAG_KEY: harness.TAG_VALUE},
                    name_before=f"etl-{i % 24:02d}-20240713-1202",
                    name_after=f"etl-{i % 24:02d}-20240713-1202",
                    ro_tags={},
                    rows=list(entry.rows),
                    extra=dict(entry.extra),
                    body_json=body,
                )
            )
    return half


def resume(sandbox: harness.Sandbox, manifest: Path, kept: Path, folder: Path, extra: list[str]):
    """One resume of a fresh copy of the report: seconds to the first PATCH, peak RSS."""
    report = folder / "report.csv"
    for suffix in ("", ".meta.json"):
        shutil.copy(f"{kept}{suffix}", f"{report}{suffix}")
    sandbox.reset()
    hwm = folder / "hwm.txt"
    args = [str(manifest), "--resume", str(report), "--yes", "--no-progress"]
    args += ["--concurrency", "64", "--rate", "1000000", *extra]
    env = dict(harness.client_env(sandbox.url), BENCH_HWM_FILE=str(hwm))
    safe = ["-P"] if harness.CLIENT_PATH else []
    command = [sys.executable, *safe, "-c", harness.HWM_WRAPPER, "batchtag", "apply", *args]
    with open(folder / "stderr.txt", "w") as err:
        start = time.time()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env)
        try:
            first = wait_for_patches(sandbox, proc)
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait()
    if first is None:
        raise RuntimeError(f"resume sent no PATCH ({code}): {(folder / 'stderr.txt').read_text()}")
    return {"first_patch": first - start, "peak_mb": int(hwm.read_text()) / 1024, "code": code}


def wait_for_patches(sandbox: harness.Sandbox, proc: subprocess.Popen) -> float | None:
    """The Unix time of the sandbox's first PATCH, once SETTLE of them went through (None
    if the process ends or the deadline passes first)."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline and proc.poll() is None:
        stats = sandbox.stats()
        if stats["endpoints"].get("patch", 0) >= SETTLE:
            return stats["first_at"]["PATCH"]
        time.sleep(0.2)
    return sandbox.stats()["first_at"].get("PATCH")


def run() -> dict:
    with harness.sandbox(SNAPSHOTS) as sandbox, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest = write_wide(sandbox.snapshot_ids(), folder / "manifest.csv")
        kept = folder / "half.csv"
        rows = write_half_report(manifest, kept)
        result = {"rows": rows, "report_mb": os.path.getsize(kept) / 2**20}
        for name, extra in MODES.items():
            (folder / name).mkdir()
            result[name] = resume(sandbox, manifest, kept, folder / name, extra)
    return result


def table(r: dict) -> str:
    lines = [
        f"report: {r['rows']:,} rows done of {SNAPSHOTS:,} ({r['report_mb']:.0f} MB CSV)",
        f"{'mode':10} {'first PATCH s':>14} {'peak MB':>8}",
    ]
    for name in MODES:
        lines.append(f"{name:10} {r[name]['first_patch']:14.2f} {r[name]['peak_mb']:8.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(run()))
