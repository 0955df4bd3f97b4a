"""Export-shaped inventories and the reference model of applying a policy's manifest."""

from __future__ import annotations

import pandas as pd

from batchtag.policy import parse_policy

BASE = ["project_id", "region_id", "snapshot_id", "name", "status", "size"]


def inventory(snapshots: list[dict]) -> pd.DataFrame:
    """An export-shaped frame: each snapshot is {"tags": {...}, "ro": {...}, "size": n}."""
    rows = []
    for i, snap in enumerate(snapshots):
        row = {
            "project_id": 1,
            "region_id": 1,
            "snapshot_id": f"aaaaaaaa-0000-4000-8000-{i:012d}",
            "name": f"snap-{i}",
            "status": "available",
            "size": snap.get("size", 10),
        }
        row.update({f"tag:{k}": v for k, v in snap.get("tags", {}).items()})
        row.update({f"ro:{k}": v for k, v in snap.get("ro", {}).items()})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys(BASE + [c for r in rows for c in r])))
    frame = frame.astype({"project_id": "int64", "region_id": "int64", "size": "int64"})
    tag_columns = [c for c in frame.columns if c.startswith(("tag:", "ro:"))]
    frame[tag_columns] = frame[tag_columns].astype(object).where(frame[tag_columns].notna(), None)
    return frame


def user_tags(frame: pd.DataFrame) -> list[dict[str, str]]:
    columns = [c for c in frame.columns if c.startswith("tag:")]
    return [
        {c[4:]: v for c, v in zip(columns, values, strict=True) if isinstance(v, str)}
        for values in frame[columns].itertuples(index=False)
    ]


def after(snapshots: list[dict], manifest: pd.DataFrame) -> list[dict]:
    """The reference model of applying a long set/delete manifest to the snapshots."""
    out = [{**s, "tags": dict(s.get("tags", {}))} for s in snapshots]
    index = {f"aaaaaaaa-0000-4000-8000-{i:012d}": i for i in range(len(out))}
    for row in manifest.itertuples(index=False):
        tags = out[index[row.snapshot_id]]["tags"]
        if row.op == "set":
            tags[row.key] = row.value
        else:
            assert row.op == "delete" and row.key in tags
            del tags[row.key]
    return out


def policy(text: str):
    return parse_policy(text, "p.toml")
