"""Write the sample manifests of every form and file type, for the sandbox's default seed.

    python samples/make_manifests.py          # rewrites the files next to this script

| file | form | what it shows |
|---|---|---|
| snapshots-long.csv (hand-written) | long | every op: set, delete, clear, rename, name |
| snapshots-wide.csv | wide | a `tag:<key>` column per key, `<delete>`, an empty cell leaves a tag alone |
| snapshots-json.jsonl | json | a merge patch per snapshot (`null` removes a key; `"tags": null` clears) |
| snapshots-wide.parquet | wide | Parquet with integer project_id / region_id columns |

Every file carries a `ticket` passthrough column (copied into the report). The snapshot IDs
are those `batchtag sandbox` serves with its defaults (seed 0, project 1, region 1), so
``batchtag apply samples/snapshots-wide.csv --dry-run`` works against a fresh sandbox.
tests/test_samples.py checks that the files are what this script writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from batchtag.model import DELETE_MARKER
from batchtag.sandbox import SandboxConfig
from batchtag.sandbox.store import SnapshotStore

HERE = Path(__file__).resolve().parent


def sandbox_ids() -> list[str]:
    """The snapshot IDs of project 1 / region 1 of the default sandbox, in store order."""
    config = SandboxConfig()
    store = SnapshotStore(
        seed=config.seed,
        snapshots=config.snapshots,
        project_ids=config.project_ids,
        region_ids=config.region_ids,
    )
    return store.ids(1, 1)


def wide(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "snapshot_id": ids[40:45],
            "tag:env": ["prod", "prod", "staging", None, "dev"],
            "tag:cost-center": ["cc-1001", "cc-1001", None, "cc-2040", None],
            "tag:tmp": [DELETE_MARKER, None, DELETE_MARKER, None, None],
            "name": [None, None, None, "api-44-primary", None],
            "ticket": ["OPS-201"] * 3 + ["OPS-202"] * 2,
        }
    )


def json_rows(ids: list[str]) -> list[dict]:
    return [
        {"snapshot_id": ids[50], "tags": {"env": "prod", "tmp": None}, "ticket": "OPS-301"},
        {"snapshot_id": ids[51], "tags": {"team": "data", "cost-center": "cc-3001"}},
        {"snapshot_id": ids[52], "tags": None, "ticket": "OPS-302"},  # clear every user tag
        {"snapshot_id": ids[53], "tags": {"retention": "30d"}, "name": "db-53-monthly"},
    ]


def write_all(out: Path = HERE) -> list[Path]:
    """Write the generated samples into `out`; returns their paths."""
    ids = sandbox_ids()
    paths = [
        out / "snapshots-wide.csv",
        out / "snapshots-json.jsonl",
        out / "snapshots-wide.parquet",
    ]
    wide(ids).to_csv(paths[0], index=False)
    lines = [json.dumps(row) + "\n" for row in json_rows(ids)]
    paths[1].write_text("".join(lines))
    scoped = wide(ids).assign(project_id=1, region_id=1)
    scoped = scoped[["project_id", "region_id", *wide(ids).columns]]
    scoped.to_parquet(paths[2], index=False)
    return paths


if __name__ == "__main__":
    for path in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(path)
