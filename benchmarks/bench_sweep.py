"""Every command at 1M snapshots: the peak RSS of each, one whole process per command, and
enforce's wall time against export plus apply of the same changes (issue 27).

One sandbox scope of `SNAPSHOTS` snapshots, a wide manifest of every one of them (one tag,
one passthrough column, as `bench_memory`'s), whole processes (VmHWM read at exit), each
from the sandbox's seeded state (`BENCH_SWEEP=export,plan` runs only those):

- **export**: `batchtag export -o inventory.parquet`;
- **plan**: `batchtag plan manifest.csv` with the default limit (it prints 20 snapshots
  and counts the rest);
- **apply**: `batchtag apply manifest.csv --report report.csv`;
- **undo**: `batchtag undo` of a report of the first half of the manifest, every row ok
  (`bench_resume.write_half_report`): it reads the state of those 500k snapshots again
  (the seeded state lacks what the report says the run wrote: each is a conflict);
- **resume**: `batchtag apply --resume` of (a copy of) that report, run to its end;
- **enforce --check**: `batchtag enforce --check` of a two-rule policy that sets two tags
  on every snapshot (one rule with a ``where``): export, evaluate, diff, nothing sent;
- **enforce**: the same policy enforced; then **export + apply**:
  `batchtag export -o` and `batchtag apply` of a manifest of exactly those changes, from
  the seeded state. Target: enforce <= 1.2x the pair's wall time.

Target for every peak: <= 300 MB. A 1M apply sends a million PATCHes: minutes.

    python -m benchmarks.bench_sweep          (BENCH_QUICK=1: 20k snapshots)
"""

from __future__ import annotations

import os
import shutil
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
COMMANDS = ("export", "plan", "apply", "undo", "resume", "enforce --check", "enforce")
# BENCH_SWEEP=export,plan: only some of them (a 1M apply takes many minutes)
CHOSEN = [c for c in COMMANDS if c in os.environ.get("BENCH_SWEEP", ",".join(COMMANDS)).split(",")]


def child(sandbox: harness.Sandbox, args: list[str], folder: Path) -> dict:
    run = harness.run_child("batchtag", [*args, *FAST], harness.client_env(sandbox.url), folder)
    if run.code not in (0, 1, 2) or (run.code == 2 and args[0] not in ("plan", "enforce")):
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
        policy = folder / "policy.toml"
        policy.write_text(POLICY)
        half = folder / "half.csv"
        write_half_report(manifest, half)
        out = ["--overwrite", "--yes"]
        inventory = ["-o", str(folder / "inventory.parquet"), "--overwrite"]
        runs = {
            "export": ["export", *inventory],
            "plan": ["plan", str(manifest)],
            "apply": ["apply", str(manifest), "--report", str(folder / "report.csv"), *out],
            "undo": ["undo", str(half), "-o", str(folder / "undo.jsonl"), "--overwrite"],
            "resume": ["apply", str(manifest), "--resume", str(half), "--yes"],
            "enforce --check": ["enforce", str(policy), "--check"],
            "enforce": ["enforce", str(policy), "--report", str(folder / "enforce.csv"), *out],
        }
        result: dict = {}
        for name in CHOSEN:
            sandbox.reset()  # every command from the seeded state
            report = folder / "half-copy.csv"
            for suffix in ("", ".meta.json"):  # resume appends to its report: a fresh copy
                shutil.copy(f"{half}{suffix}", f"{report}{suffix}")
            args = [str(report) if a == str(half) else a for a in runs[name]]
            result[name] = child(sandbox, args, folder)
        if "enforce" in CHOSEN:
            changes = write_changes(ids, folder / "changes.csv")
            sandbox.reset()
            exported = child(sandbox, ["export", *inventory], folder)
            pair = ["apply", str(changes), "--report", str(folder / "pair.csv"), *out]
            applied = child(sandbox, pair, folder)
            result["export + apply"] = {
                "wall": exported["wall"] + applied["wall"],
                "cpu": exported["cpu"] + applied["cpu"],
                "peak_mb": max(exported["peak_mb"], applied["peak_mb"]),
            }
    return result


def ratio(result: dict) -> float | None:
    """enforce's wall time over export + apply of the same changes (same run)."""
    if "export + apply" not in result:
        return None
    return result["enforce"]["wall"] / result["export + apply"]["wall"]


def table(result: dict) -> str:
    lines = [f"{'command':16} {'wall s':>8} {'cpu s':>7} {'peak MB':>8}"]
    for name, r in result.items():
        lines.append(f"{name:16} {r['wall']:8.1f} {r['cpu']:7.1f} {r['peak_mb']:8.0f}")
    if ratio(result) is not None:
        lines.append(f"enforce / export + apply: {ratio(result):.2f}x (target <= {TARGET}x)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(run()))
