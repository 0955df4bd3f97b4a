"""`batchtag plan` of a 1M-row manifest on a 1M-snapshot scope vs `batchtag export` of it.

Both run as whole processes (the CLI unchanged) against one sandbox process, alternating,
best of `ROUNDS`: export writes the scope to Parquet; plan reads the same scope (list
pages: fewer requests than a GET each) and diffs every manifest row against it, printing
the summary only (`--limit 0`). Targets: plan <= 1.5x export's wall time, peak RSS
<= 600 MB.

    python -m benchmarks.bench_plan
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks import harness, mode

SNAPSHOTS = mode.pick(1_000_000, 20_000)
CONCURRENCY = 8
ROUNDS = 1
FAST = ["--no-progress", "--concurrency", str(CONCURRENCY), "--rate", "1000000"]


def run_export(url: str, folder: Path) -> harness.ChildRun:
    args = ["export", "-o", str(folder / "inventory.parquet"), "--overwrite", *FAST]
    return checked(harness.run_child("batchtag", args, harness.client_env(url), folder), "export")


def run_plan(url: str, folder: Path, manifest: Path) -> harness.ChildRun:
    args = ["plan", str(manifest), "--limit", "0", *FAST]
    child = checked(harness.run_child("batchtag", args, harness.client_env(url), folder), "plan")
    if f"({SNAPSHOTS:,} snapshots".replace(",", "") not in child.stdout.replace(",", ""):
        raise RuntimeError(f"plan did not cover every snapshot: {child.stdout[:500]}")
    return child


def checked(child: harness.ChildRun, what: str) -> harness.ChildRun:
    if child.code not in (0, 2):
        raise RuntimeError(f"batchtag {what} failed ({child.code}): {child.stderr[-2000:]}")
    return child


def run() -> dict:
    """Best of `ROUNDS` of each; wall seconds, CPU seconds and peak RSS (MB)."""
    with harness.sandbox(SNAPSHOTS) as sandbox, tempfile.TemporaryDirectory() as tmp:
        manifest = harness.write_manifest(sandbox.snapshot_ids(), Path(tmp) / "manifest.csv")
        runners = {
            "export": lambda folder: run_export(sandbox.url, folder),
            "plan": lambda folder: run_plan(sandbox.url, folder, manifest),
        }
        return harness.best_runs(ROUNDS, runners, Path(tmp))


def ratio(result: dict) -> float:
    """plan's wall time over export's (same scope, same run)."""
    return result["plan"]["wall"] / result["export"]["wall"]


def table(result: dict) -> str:
    return harness.figures_table(result, "command")


if __name__ == "__main__":
    print(table(run()))
