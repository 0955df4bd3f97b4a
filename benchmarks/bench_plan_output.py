"""`batchtag plan -o FILE` against the same plan without `-o`: what writing the diff costs.

A manifest that changes every snapshot of a scope (one tag each: a diff row per snapshot),
planned as whole processes against one sandbox, alternating, best of `ROUNDS`: without
`-o`, then with `-o` to CSV, Parquet and JSON Lines (`--limit 0` throughout: the summary
only). Target: each `-o` run <= 1.2x the run without it, in the same round of the bench.

    python -m benchmarks.bench_plan_output
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks import harness, mode
from benchmarks.bench_plan import FAST, checked

SNAPSHOTS = mode.pick(1_000_000, 20_000)
ROUNDS = mode.pick(1, 2)
FORMATS = (".csv", ".parquet", ".jsonl")
TARGET = 1.2
TARGET_MB = 300  # issue 27: every command at 1M


def run_plan(url: str, folder: Path, manifest: Path, suffix: str | None) -> harness.ChildRun:
    args = ["plan", str(manifest), "--limit", "0", *FAST]
    if suffix is not None:
        args += ["-o", str(folder / f"diff{suffix}"), "--overwrite"]
    child = checked(harness.run_child("batchtag", args, harness.client_env(url), folder), "plan")
    if suffix is not None and not (folder / f"diff{suffix}").exists():
        raise RuntimeError(f"plan -o wrote no {suffix} file: {child.stdout[-500:]}")
    return child


def run() -> dict:
    """Best of `ROUNDS` of each: wall seconds, CPU seconds and peak RSS (MB)."""
    with harness.sandbox(SNAPSHOTS) as sandbox, tempfile.TemporaryDirectory() as tmp:
        manifest = harness.write_manifest(sandbox.snapshot_ids(), Path(tmp) / "manifest.csv")
        runners = {"plan": lambda folder: run_plan(sandbox.url, folder, manifest, None)}
        for suffix in FORMATS:
            runners[f"plan -o {suffix[1:]}"] = lambda folder, suffix=suffix: run_plan(
                sandbox.url, folder, manifest, suffix
            )
        return harness.best_runs(ROUNDS, runners, Path(tmp))


def ratios(result: dict) -> dict[str, float]:
    """Each `-o` run's wall time over the plan's without it."""
    base = result["plan"]["wall"]
    return {suffix: result[f"plan -o {suffix[1:]}"]["wall"] / base for suffix in FORMATS}


def table(result: dict) -> str:
    return harness.figures_table(result, "command")


if __name__ == "__main__":
    print(table(run()))
