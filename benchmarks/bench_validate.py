"""Validate a 1M-row long-form manifest (CSV and Parquet); report time and peak RSS.

Each measurement runs in a fresh Python process, so peak RSS (VmHWM) is that run's own,
imports included (about 110 MB for pandas + pyarrow). A plain read of the same file is measured alongside as a baseline.
Target on a 2-core machine: under 10 s and under 600 MB peak for each validation.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from benchmarks import mode

ROWS = mode.pick(1_000_000, 100_000)
ROWS_PER_SNAPSHOT = 2

CHILD = r"""
import json, sys, time
kind, path = sys.argv[1], sys.argv[2]
import pandas as pd, pyarrow.parquet as pq
from batchtag.manifest import describe_manifest as summarize, read_plan
start = time.perf_counter()
if kind == "validate":
    summary = summarize(read_plan(path))
    rows = summary["rows"]
elif kind == "read_csv":
    rows = len(pd.read_csv(path, dtype=str, keep_default_na=False))
else:
    rows = len(pq.read_table(path).to_pandas())
seconds = time.perf_counter() - start
# VmHWM, not ru_maxrss: ru_maxrss keeps the parent's peak across fork+exec
status = open("/proc/self/status").read()
peak_mb = int(status.split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mb": peak_mb}))
"""


def make_table(rows: int = ROWS, per_snapshot: int = ROWS_PER_SNAPSHOT) -> pa.Table:
    """Long form: every snapshot gets a `set env`, then a `set owner`, a `delete` or a `name`,
    then (with more rows per snapshot) one `set label-N` a row."""
    rng = np.random.default_rng(7)
    index = np.arange(rows)
    snap = index // per_snapshot
    second = index % per_snapshot == 1
    choice = rng.integers(0, 3, rows)
    op = np.where(~second, "set", np.array(["set", "delete", "name"])[choice])
    key = np.where(~second, "env", np.array(["owner", "old-tag", ""])[choice])
    value = np.where(
        ~second,
        np.array(["prod", "staging", "dev"])[rng.integers(0, 3, rows)],
        np.where(choice == 0, "team-" + (snap % 97).astype(str), ""),
    )
    value = np.where((choice == 2) & second, "snap-" + snap.astype(str), value)
    later = index % per_snapshot >= 2  # more rows per snapshot: one more label each
    key = np.where(later, "label-" + (index % per_snapshot).astype(str), key)
    op = np.where(later, "set", op)
    value = np.where(later, "v" + (snap % 13).astype(str), value)
    sid = np.char.add("5f0c8a3e-1b2d-4c6e-8f00-", np.char.zfill(snap.astype(str), 12))
    return pa.table(
        {
            "snapshot_id": sid,
            "project_id": (9_007_199_254_740_993 + snap % 3).astype(str),  # above 2**53
            "region_id": (76 + snap % 2).astype(str),
            "op": op,
            "key": key,
            "value": value,
            "ticket": np.char.add("OPS-", (snap % 1000).astype(str)),
        }
    )


def write_files(
    folder: Path, rows: int = ROWS, per_snapshot: int = ROWS_PER_SNAPSHOT
) -> dict[str, Path]:
    table = make_table(rows, per_snapshot)
    csv_path, parquet_path = folder / "long.csv", folder / "long.parquet"
    pacsv.write_csv(table, csv_path, pacsv.WriteOptions(quoting_style="needed"))
    pq.write_table(table, parquet_path)
    return {"csv": csv_path, "parquet": parquet_path}


def measure(kind: str, path: Path) -> dict:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(rows: int = ROWS, per_snapshot: int = ROWS_PER_SNAPSHOT) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(Path(tmp), rows, per_snapshot)
        for name, kind, path in (
            ("validate long CSV", "validate", files["csv"]),
            ("baseline pandas.read_csv(dtype=str)", "read_csv", files["csv"]),
            ("validate long Parquet", "validate", files["parquet"]),
            ("baseline pyarrow read_table().to_pandas()", "read_parquet", files["parquet"]),
        ):
            results.append({"name": name, **measure(kind, path)})
    return results


def table(results: list[dict]) -> str:
    lines = [f"{'benchmark':44} {'rows':>9} {'seconds':>8} {'peak MB':>8}"]
    for r in results:
        lines.append(f"{r['name']:44} {r['rows']:>9} {r['seconds']:>8.2f} {r['peak_rss_mb']:>8.0f}")
    for fmt, base in (("CSV", 1), ("Parquet", 3)):
        if len(results) > base:
            v, b = results[base - 1], results[base]
            lines.append(
                f"validate/baseline ({fmt}): time x{v['seconds'] / b['seconds']:.1f},"
                f" peak RSS x{v['peak_rss_mb'] / b['peak_rss_mb']:.1f}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    # optional arguments: rows, rows per snapshot
    args = [int(a) for a in sys.argv[1:3]]
    print(table(run(*args)))
