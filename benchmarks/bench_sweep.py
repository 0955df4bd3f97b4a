"""Every command at 1M snapshots: the peak RSS of each, one whole process per command, and
enforce's wall time against export plus apply of the same changes (issue 27).

One sandbox scope of `SNAPSHOTS` snapshots, a wide manifest of every one of them (one tag,
one passthrough column, as `bench_memory`'s), whole processes (VmHWM read at exit), in
this order:

- **export**: `batchtag export -o inventory.parquet`;
- **plan**: `batchtag plan manifest.csv` with the default limit (it prints 20 snapshots
  and counts the rest);
- **apply**: `batchtag apply manifest.csv --report report.csv`, from the seeded state;
- **undo**: `batchtag undo report.csv -o undo.jsonl` (every snapshot checked again);
- **resume**: `batchtag apply --resume` of a report of the first half of the manifest
  (`bench_resume.write_half_report`), from the seeded state, run to its end;
- **enforce**: `batchtag enforce` of a two-rule policy that sets two tags on every
  snapshot (one rule with a ``where``), from the seeded state; then **export + apply**:
  `batchtag export -o` and `batchtag apply` of a manifest of exactly those changes, from
  the seeded state. Target: enforce <= 1.2x the pair's wall time.

Target for every peak: <= 300 MB.

    python -m benchmarks.bench_sweep          (BENCH_QUICK=1: 20k snapshots)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks import harness, mode
from benchmarks.bench_memory import write_wide
from benchmarks.bench_resume import write_half_report

SNAPSHOTS = mode.pick(1_000_000, 20_000)
TARGET_MB = 300
TARGET = 1.2  # enforce / (export + apply)
CONCURRENCY = 64
FAST = ["--no-progress", "--concurrency", str(CONCURRENCY), "--rate", "1000000"]
SET = {"bench-owner": "platform", "bench-tier": "cold"}  # what the policy writes
POLICY = f"""\
[[rule]]
name = "owner"
set = {{ "bench-owner" = "{SET["bench-owner"]}" }}

[[rule]]
name = "tier"
where = "size >= 0"
set = {{ "bench-tier" = "{SET["bench-tier"]}" }}
"""
COMMANDS = ("export", "plan", "apply", "undo", "resume", "enforce")


def child(sandbox: harness.Sandbox, args: list[str], folder: Path) -> dict:
    run = harness.run_child("batchtag", [*args, *FAST], harness.client_env(sandbox.url), folder)
    if run.code not in (0, 2) or (run.code == 2 and args[0] != "plan"):
        raise RuntimeError(f"batchtag {args[0]} failed ({run.code}): {run.stderr[-2000:]}")
    return {"wall": run.wall, "cpu": run.cpu, "peak_mb": run.peak_mb}


def write_changes(ids: list[str], path: Path) -> Path:
    """The policy's changes as a manifest: both tags on every snapshot."""
    keys = list(SET)
    with open(path, "w") as fh:
        fh.write("snapshot_id," + ",".join(f"tag:{k}" for k in keys) + "\n")
        values = ",".join(SET[k] for k in keys)
        fh.writelines(f"{sid},{values}\n" for sid in ids)
    return path


def run() -> dict:
    with harness.sandbox(SNAPSHOTS) as sandbox, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ids = sandbox.snapshot_ids()
        manifest = write_wide(ids, folder / "manifest.csv")
        changes = write_changes(ids, folder / "changes.csv")
        policy = folder / "policy.toml"
        policy.write_text(POLICY)
        half = folder / "half.csv"
        write_half_report(manifest, half)
        report, out = folder / "report.csv", ["--overwrite", "--yes"]
        inventory = ["-o", str(folder / "inventory.parquet"), "--overwrite"]
        result: dict = {}
        result["export"] = child(sandbox, ["export", *inventory], folder)
        result["plan"] = child(sandbox, ["plan", str(manifest)], folder)
        sandbox.reset()
        result["apply"] = child(
            sandbox, ["apply", str(manifest), "--report", str(report), *out], folder
        )
        undo = ["-o", str(folder / "undo.jsonl"), "--overwrite"]
        result["undo"] = child(sandbox, ["undo", str(report), *undo], folder)
        sandbox.reset()
        result["resume"] = child(
            sandbox, ["apply", str(manifest), "--resume", str(half), "--yes"], folder
        )
        sandbox.reset()
        enforced = ["--report", str(folder / "enforce.csv"), *out]
        result["enforce"] = child(sandbox, ["enforce", str(policy), *enforced], folder)
        sandbox.reset()
        exported = child(sandbox, ["export", *inventory], folder)
        applied = child(
            sandbox, ["apply", str(changes), "--report", str(folder / "pair.csv"), *out], folder
        )
        result["export + apply"] = {
            "wall": exported["wall"] + applied["wall"],
            "cpu": exported["cpu"] + applied["cpu"],
            "peak_mb": max(exported["peak_mb"], applied["peak_mb"]),
        }
    return result


def ratio(result: dict) -> float:
    """enforce's wall time over export + apply of the same changes (same run)."""
    return result["enforce"]["wall"] / result["export + apply"]["wall"]


def table(result: dict) -> str:
    lines = [f"{'command':16} {'wall s':>8} {'cpu s':>7} {'peak MB':>8}"]
    for name in (*COMMANDS, "export + apply"):
        r = result[name]
        lines.append(f"{name:16} {r['wall']:8.1f} {r['cpu']:7.1f} {r['peak_mb']:8.0f}")
    lines.append(f"enforce / export + apply: {ratio(result):.2f}x (target <= {TARGET}x)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(run()))
