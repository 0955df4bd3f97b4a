"""Breadth: the three shapes that used to cost keys x rows or rules x columns (issue 22).

- wide: a scope where one snapshot has TAGS user tags, `batchtag export -o FILE.parquet`;
- long: a scope of KEYS snapshots, each with a tag key of its own (KEYS distinct keys besides
  the seeded ones), `batchtag export --long -o FILE.parquet`;
- rules: a policy of RULES rules evaluated on an inventory of RULE_SNAPSHOTS snapshots
  (`batchtag.policy.evaluate`, timed in this process on the exported inventory; the
  policy's loading is timed apart, for information).

The exports run as whole processes (the CLI unchanged, start-up included: what a user waits
for) against a sandbox process, its snapshots tagged by PATCH first; best of ROUNDS. The
same export of a scope nobody tagged is timed alongside: the start-up and the fixed cost.

The policy is shaped like a generated one (a rule per window of creation time): each
snapshot falls in one window, whose two rules set a key of the window's own (hundreds of new
tag columns in all) and either upper the owner, delete the retention tag once the window's
key is set (a chained rule: a second pass) or rename app to application. So every snapshot
changes, and each is selected by two rules, not by all of them.

    python -m benchmarks.bench_breadth
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

from benchmarks import harness, mode

TAGS = mode.pick(10_000, 1_000)
WIDE_SNAPSHOTS = 5
KEYS = mode.pick(1_000, 200)
RULES = mode.pick(1_000, 100)
RULE_SNAPSHOTS = mode.pick(10_000, 1_000)
ROUNDS = mode.pick(3, 1)
TARGET_EXPORT_S = 2.0
TARGET_RULES_S = 5.0

# The policy's windows split the seeded creation times (batchtag.sandbox.seed: from 2024-01-01
# over about ten months).
FIRST = datetime(2024, 1, 1)
SPAN = timedelta(days=300)


def patch_tags(sandbox: harness.Sandbox, snapshot_id: str, tags: dict[str, str]) -> None:
    """One PATCH setting `tags` on a snapshot of the benchmark's scope."""
    url = f"{sandbox.url}/cloud/v1/snapshots/{harness.PROJECT_ID}/{harness.REGION_ID}/"
    request = urllib.request.Request(
        url + snapshot_id,
        data=json.dumps({"tags": tags}).encode(),
        method="PATCH",
        headers={
            "Authorization": f"APIKey {harness.API_KEY}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        resp.read()


def export_runs(sandbox: harness.Sandbox, folder: Path, extra: list[str]) -> dict[str, float]:
    """`batchtag export [extra] -o FILE.parquet`, whole processes; the best of ROUNDS."""
    best: harness.ChildRun | None = None
    for attempt in range(ROUNDS):
        out = folder / f"export-{attempt}.parquet"
        args = ["export", *extra, "-o", str(out), "--overwrite", "--no-progress"]
        args += ["--rate", "1000000"]
        child = harness.run_child("batchtag", args, harness.client_env(sandbox.url), folder)
        if child.code != 0:
            raise RuntimeError(f"batchtag export failed ({child.code}): {child.stderr[-2000:]}")
        if best is None or child.wall < best.wall:
            best = child
    return {"wall": best.wall, "cpu": best.cpu, "peak_mb": best.peak_mb}


def wide(folder: Path) -> dict:
    """A scope where one snapshot has TAGS tags: its export, and the untagged scope's."""
    with harness.sandbox(WIDE_SNAPSHOTS) as sandbox:
        baseline = export_runs(sandbox, folder, [])
        first = sandbox.snapshot_ids()[0]
        patch_tags(sandbox, first, {f"wide-{i:05d}": f"v{i}" for i in range(TAGS)})
        return {"baseline": baseline, "wide": export_runs(sandbox, folder, [])}


def long(folder: Path) -> dict:
    """KEYS snapshots, each with a key of its own: `export --long`."""
    with harness.sandbox(KEYS) as sandbox:
        for i, snapshot_id in enumerate(sandbox.snapshot_ids()):
            patch_tags(sandbox, snapshot_id, {f"own-{i:05d}": "x"})
        return {"long": export_runs(sandbox, folder, ["--long"])}


def policy_text(rules: int = RULES) -> str:
    """`rules` rules, two per creation window (the seeded snapshots are created over SPAN):
    one sets the window's own key, the other uppers the owner, deletes the retention tag
    where the window's key is set (chained: a second pass) or renames app, in turn."""
    windows = (rules + 1) // 2
    edges = [FIRST + SPAN * k / windows for k in range(windows + 1)]
    text = []
    for i in range(rules):
        w = i // 2
        own = f"window-{w}"
        where = f"created_at >= '{edges[w]:%Y-%m-%dT%H:%M:%S}'"
        if w + 1 < windows:  # the last window is open: every snapshot falls in one
            where += f" and created_at < '{edges[w + 1]:%Y-%m-%dT%H:%M:%S}'"
        if i % 2 == 0:
            action = f'set = {{ "{own}" = "checked" }}'
        elif w % 3 == 0:
            where += " and `tag:owner`.notna()"
            action = 'upper = ["owner"]'
        elif w % 3 == 1:
            where = f"`tag:{own}` == 'checked' and `tag:retention`.notna()"
            action = 'delete = ["retention"]'
        else:
            where += " and `tag:app`.notna()"
            action = 'rename = { "app" = "application" }'
        text.append(f'[[rule]]\nname = "rule {i}"\nwhere = "{where}"\n{action}\n')
    return "\n".join(text)


def rules() -> dict:
    """RULES rules evaluated on RULE_SNAPSHOTS exported snapshots, best of ROUNDS."""
    import batchtag
    from batchtag.policy import evaluate, parse_policy

    with harness.sandbox(RULE_SNAPSHOTS) as sandbox:
        inventory = batchtag.export(
            base_url=sandbox.url,
            api_key=harness.API_KEY,
            project_id=harness.PROJECT_ID,
            region_id=harness.REGION_ID,
            rate=1_000_000,
            progress=False,
        )
    text = policy_text()
    started = time.perf_counter()
    policy = parse_policy(text, "breadth.toml")
    load = time.perf_counter() - started
    best, manifest = float("inf"), None
    for _ in range(ROUNDS):
        started = time.perf_counter()
        manifest = evaluate(policy, inventory)
        best = min(best, time.perf_counter() - started)
    return {
        "load": load,
        "evaluate": best,
        "rows": len(manifest),
        "snapshots": int(manifest["snapshot_id"].nunique()),
        "inventory": len(inventory),
        "columns": len(inventory.columns),
    }


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        return {**wide(folder), **long(folder), "rules": rules()}


def table(result: dict) -> str:
    exports = {k: result[k] for k in ("baseline", "wide", "long")}
    lines = [harness.figures_table(exports, "export")]
    r = result["rules"]
    lines.append(
        f"rules: {RULES:,} rules on {r['inventory']:,} snapshots ({r['columns']:,} columns):"
        f" load {r['load']:.2f} s, evaluate {r['evaluate']:.2f} s;"
        f" manifest {r['rows']:,} rows on {r['snapshots']:,} snapshots"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(run()))
