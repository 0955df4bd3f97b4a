"""Memory of `apply` as the snapshots grow: a wide manifest (one tag, one passthrough column)
against a sandbox with that many snapshots, whole processes, peak RSS (VmHWM).

For each size: `apply` to a new CSV report, then `apply --resume` of that report (every
snapshot done: it reads the report, sends nothing). Targets at 1M snapshots: peak RSS
<= 400 MB for both, and apply's peak at 1M within 1.5x of its peak at 100k.
The sandbox runs at zero latency; a 1M apply takes minutes, so this section is slow.
Run: `python -m benchmarks memory` (BENCH_MEMORY_SIZES=100000,300000 for other sizes).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks import harness, mode

DEFAULT_SIZES = mode.pick("100000,1000000", "10000,30000")
SIZES = tuple(int(n) for n in os.environ.get("BENCH_MEMORY_SIZES", DEFAULT_SIZES).split(","))
TARGET_MB = 400
GROWTH = 1.5  # peak at the largest size / peak at the smallest
PASSTHROUGH = "ticket"


def write_wide(ids: list[str], path: Path) -> Path:
    """snapshot_id, tag:env, ticket: one tag and one passthrough column."""
    with open(path, "w") as fh:
        fh.write(f"snapshot_id,tag:{harness.TAG_KEY},{PASSTHROUGH}\n")
        fh.writelines(f"{sid},{harness.TAG_VALUE},T-{i % 1000}\n" for i, sid in enumerate(ids))
    return path


def apply(url: str, manifest: Path, folder: Path, *extra: str) -> dict:
    args = ["batchtag", "apply", str(manifest), "--yes", "--no-progress"]
    args += ["--concurrency", "64", "--rate", "1000000"]
    args += ["--project-id", str(harness.PROJECT_ID), "--region-id", str(harness.REGION_ID)]
    args += ["--summary-json", str(folder / "summary.json"), *extra]
    child = harness.run_child(args[0], args[1:], harness.client_env(url), folder)
    if child.code:
        raise RuntimeError(f"batchtag apply failed ({child.code}): {child.stderr[-2000:]}")
    summary = json.loads((folder / "summary.json").read_text())
    return {"wall": child.wall, "peak_mb": child.peak_mb, "summary": summary}


def measure(size: int) -> dict:
    with harness.sandbox(size) as sandbox, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest = write_wide(sandbox.snapshot_ids(), folder / "manifest.csv")
        report = folder / "report.csv"
        fresh = apply(sandbox.url, manifest, folder, "--report", str(report))
        resumed = apply(sandbox.url, manifest, folder, "--resume", str(report))
    return {"size": size, "apply": fresh, "resume": resumed}


def run(sizes: tuple[int, ...] = SIZES) -> list[dict]:
    return [measure(size) for size in sizes]


def growth(rows: list[dict]) -> float:
    return rows[-1]["apply"]["peak_mb"] / rows[0]["apply"]["peak_mb"]


def table(rows: list[dict]) -> str:
    lines = [
        f"{'snapshots':>10} {'apply s':>8} {'apply MB':>9} {'resume s':>9} {'resume MB':>10}"
        f" {'sent':>9}"
    ]
    for r in rows:
        fresh, resumed = r["apply"], r["resume"]
        lines.append(
            f"{r['size']:>10,} {fresh['wall']:>8.1f} {fresh['peak_mb']:>9.0f}"
            f" {resumed['wall']:>9.1f} {resumed['peak_mb']:>10.0f}"
            f" {fresh['summary'].get('sent', 0):>9,}"
        )
    lines.append(f"apply peak RSS, {rows[-1]['size']:,} / {rows[0]['size']:,}: {growth(rows):.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    start = time.perf_counter()
    print(table(run()))
    print(f"({time.perf_counter() - start:.0f} s)")
