"""A re-run that changes 1%: every request batchtag sends, reads included (issue 12).

A 100k-snapshot scope; the manifest gives every snapshot its current name (as an unedited
export would) except 1%, which get a new one. `batchtag apply` with its defaults (the
state is read first when that is cheaper than writing blind) should send the list pages
(100) and the 1,000 real changes: at most 1,100 requests in total, counted by the sandbox.

    python -m benchmarks.bench_rerun
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from benchmarks import harness, mode

SNAPSHOTS = mode.pick(100_000, 10_000)
CHANGED_EVERY = 100  # 1%
PAGE = 1000
TARGET = SNAPSHOTS // PAGE + SNAPSHOTS // CHANGED_EVERY  # the pages and the changes: 1,100


def names(sandbox: harness.Sandbox) -> list[tuple[str, str]]:
    """(id, name) of every snapshot, in listing order."""
    return [(s["id"], s["name"]) for page in sandbox.pages() for s in page]


def write_manifest(pairs: list[tuple[str, str]], path: Path) -> int:
    """A wide manifest (snapshot_id, name); returns how many names differ from now."""
    lines = ["snapshot_id,name"]
    changed = 0
    for i, (sid, name) in enumerate(pairs):
        if i % CHANGED_EVERY == 0:
            name, changed = f"rerun-{i}", changed + 1
        lines.append(f"{sid},{name}")
    path.write_text("\n".join(lines) + "\n")
    return changed


def run() -> dict:
    with harness.sandbox(SNAPSHOTS) as sandbox, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        changed = write_manifest(names(sandbox), folder / "manifest.csv")
        sandbox.reset()  # same snapshots, stats from zero
        summary_path = folder / "summary.json"
        args = ["apply", str(folder / "manifest.csv"), "--report", str(folder / "report.csv")]
        args += ["--yes", "--no-progress", "--concurrency", "64", "--rate", "1000000"]
        args += ["--summary-json", str(summary_path)]
        child = harness.run_child("batchtag", args, harness.client_env(sandbox.url), folder)
        if not summary_path.exists():
            raise RuntimeError(f"batchtag apply failed ({child.code}): {child.stderr[-2000:]}")
        summary = json.loads(summary_path.read_text())
        stats = sandbox.stats()
    return {
        "changed": changed,
        "requests": stats["total_requests"],
        "endpoints": stats["endpoints"],
        "writes_saved": summary["writes_saved"],
        "counts": {k: v for k, v in summary["counts"].items() if v},
        "wall": child.wall,
        "peak_mb": child.peak_mb,
    }


def table(r: dict) -> str:
    return "\n".join(
        [
            f"snapshots {SNAPSHOTS:,}, changed {r['changed']:,}: {r['requests']:,} requests"
            f" {r['endpoints']}",
            f"statuses {r['counts']}, writes saved {r['writes_saved']:,}",
            f"wall {r['wall']:.1f} s, peak RSS {r['peak_mb']:.0f} MB",
        ]
    )


if __name__ == "__main__":
    print(table(run()))
