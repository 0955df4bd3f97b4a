"""Applying a change file vs applying the manifest it came from: `batchtag plan M -o F`, then
`batchtag apply M` and `batchtag apply F`, each on the same freshly reset sandbox, whole
processes, alternating, best of `ROUNDS`.

The manifest is the memory section's (a wide manifest: one tag, one passthrough column) over
every snapshot of a scope of `SNAPSHOTS`; the change file holds a row per snapshot (its old
value, the precondition, checked in the run). Both read the scope's state (list pages) and
send a PATCH per snapshot. Targets: the change file's wall time and peak RSS at most 1.1x
the manifest's.

    python -m benchmarks.bench_changes      (BENCH_CHANGES_SNAPSHOTS=100000 for another size)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from benchmarks import harness, mode
from benchmarks.bench_memory import write_wide

SNAPSHOTS = int(os.environ.get("BENCH_CHANGES_SNAPSHOTS", mode.pick(1_000_000, 20_000)))
ROUNDS = mode.pick(1, 1)
TARGET = 1.1
FAST = ["--yes", "--no-progress", "--concurrency", "64", "--rate", "1000000"]


def plan_file(url: str, manifest: Path, folder: Path) -> Path:
    """`batchtag plan MANIFEST -o plan.csv`: the change file to apply."""
    out = folder / "plan.csv"
    args = ["plan", str(manifest), "-o", str(out), "--limit", "0", "--no-progress"]
    child = harness.run_child("batchtag", args, harness.client_env(url), folder)
    if child.code not in (0, 2) or not out.exists():
        raise RuntimeError(f"batchtag plan failed ({child.code}): {child.stderr[-2000:]}")
    return out


def apply(sandbox: harness.Sandbox, source: Path, folder: Path) -> harness.ChildRun:
    """`batchtag apply SOURCE` on the freshly reset scope; checks every snapshot was sent."""
    sandbox.reset()
    summary = folder / "summary.json"
    args = ["apply", str(source), "--report", str(folder / "report.csv"), "--overwrite"]
    args += [*FAST, "--summary-json", str(summary)]
    child = harness.run_child("batchtag", args, harness.client_env(sandbox.url), folder)
    if child.code:
        raise RuntimeError(f"batchtag apply failed ({child.code}): {child.stderr[-2000:]}")
    counts = json.loads(summary.read_text())["counts"]
    if counts.get("ok") != SNAPSHOTS:
        raise RuntimeError(f"apply of {source.name} did not write every snapshot: {counts}")
    return child


def run() -> dict:
    """Best of `ROUNDS` of each apply: wall seconds, CPU seconds and peak RSS (MB)."""
    with harness.sandbox(SNAPSHOTS) as sandbox, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest = write_wide(sandbox.snapshot_ids(), folder / "manifest.csv")
        changes = plan_file(sandbox.url, manifest, folder)
        runners = {
            "manifest": lambda where: apply(sandbox, manifest, where),
            "changes": lambda where: apply(sandbox, changes, where),
        }
        result = harness.best_runs(ROUNDS, runners, folder)
    return result


def ratios(result: dict) -> dict[str, float]:
    """The change file's wall time and peak RSS over the manifest's (same run)."""
    changes, manifest = result["changes"], result["manifest"]
    return {
        "wall": changes["wall"] / manifest["wall"],
        "peak": changes["peak_mb"] / manifest["peak_mb"],
    }


def table(result: dict) -> str:
    r = ratios(result)
    lines = [harness.figures_table(result, "apply of")]
    lines.append(f"change file / manifest: wall {r['wall']:.2f}x, peak RSS {r['peak']:.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(run()))
