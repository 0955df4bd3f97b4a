"""Manifest rows into a Plan: one entry per (project, region, snapshot), merged in file order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from batchtag.errors import ManifestError
from batchtag.manifest import load_manifest
from batchtag.plan import Plan, PlanEntry
from batchtag.validation import OPS, Checked, Coded, check_manifest, factorize

SET, DELETE, CLEAR, RENAME, NAME = range(5)


def read_plan(
    source: Any,
    *,
    form: str | None = None,
    delete_marker: str = "<delete>",
    project_id: int | None = None,
    region_id: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Plan:
    """Load, validate and plan a manifest (path, "-" for CSV on stdin, or DataFrame).

    Raises ManifestError with every problem found; nothing here touches the network.
    """
    manifest = load_manifest(source)
    checked = check_manifest(
        manifest,
        form=form,
        delete_marker=delete_marker,
        project_id=project_id,
        region_id=region_id,
        env=env,
    )
    if checked.problems:
        raise ManifestError(checked.problems)
    return build_plan(checked)


def build_plan(checked: Checked) -> Plan:
    manifest = checked.manifest
    extras = [_first_values(manifest.frame[c], checked.group) for c in checked.passthrough]
    rows = manifest.rows().tolist()
    first = np.unique(checked.group, return_index=True)[1] if len(rows) else np.zeros(0, int)
    snapshots = checked.snapshot.iloc[first].tolist()
    # the text columns are no longer needed: let them go before the per-snapshot objects
    # pile up (peak memory on a 1M-row manifest is set here)
    manifest.frame = manifest.frame.iloc[:0]
    checked.snapshot = checked.snapshot.iloc[:0]
    pa.default_memory_pool().release_unused()
    entries = _entries(checked, first, snapshots)
    del snapshots
    for g, row in zip(checked.group.tolist(), rows, strict=True):
        entries[g].rows.append(row)
    del rows
    _apply_ops(entries, checked.ops)
    for column, (groups, values) in zip(checked.passthrough, extras, strict=True):
        for entry in entries:
            entry.extra[column] = ""
        for g, value in zip(groups, values, strict=True):
            entries[g].extra[column] = value
    counts = np.bincount(checked.ops.op, minlength=len(OPS)).tolist()
    return Plan(
        entries=entries,
        form=checked.form or "long",
        rows=manifest.total_rows,
        passthrough=list(checked.passthrough),
        ops=dict(zip(OPS, counts, strict=True)),
    )


def _shared(values: np.ndarray) -> list:
    """values.tolist(), but equal values share one Python object."""
    uniques, inverse = np.unique(values, return_inverse=True)
    objects = uniques.tolist()
    return [objects[i] for i in inverse.tolist()]


def _entries(checked: Checked, first: np.ndarray, snapshots: list[str]) -> list[PlanEntry]:
    """One entry per group; groups are numbered in first-seen order, `first` is each one's
    first row."""
    projects = _shared(checked.project[first])
    regions = _shared(checked.region[first])
    return [
        PlanEntry(project_id=p, region_id=r, snapshot_id=s)
        for p, r, s in zip(projects, regions, snapshots, strict=True)
    ]


def _apply_ops(entries: list[PlanEntry], ops: Coded) -> None:
    keys, values = ops.keys, ops.values
    rows = zip(
        ops.group.tolist(), ops.op.tolist(), ops.key.tolist(), ops.value.tolist(), strict=True
    )
    for g, o, k, v in rows:
        entry = entries[g]
        if o == SET:
            entry.tags[keys[k]] = values[v]
        elif o == DELETE:
            entry.tags[keys[k]] = None
        elif o == CLEAR:
            # in file order, a clear wipes what earlier rows wrote for this snapshot
            entry.clear = True
            entry.tags.clear()
            entry.renames.clear()
        elif o == RENAME:
            entry.renames[keys[k]] = values[v]
        else:
            entry.name = values[v]


def _first_values(cells: pd.Series, group: np.ndarray) -> tuple[list[int], list[str]]:
    """Per snapshot group, the first non-empty value of a passthrough column."""
    filled = (cells != "").to_numpy()
    codes, objects = factorize(cells[filled])
    first = pd.Series(codes).groupby(group[filled], sort=False).first()
    return first.index.tolist(), [objects[c] for c in first.tolist()]


def summarize(plan: Plan) -> dict[str, Any]:
    """What a plan holds, as plain data (the `validate` command's output)."""
    return {
        "form": plan.form,
        "rows": plan.rows,
        "snapshots": len(plan.entries),
        "operations": {kind: plan.ops.get(kind, 0) for kind in OPS},
        "scopes": [
            {"project_id": p, "region_id": r, "snapshots": n}
            for (p, r), n in sorted(plan.scopes.items())
        ],
        "passthrough": list(plan.passthrough),
        "needs_current": sum(1 for e in plan.entries if e.needs_current),
    }


def format_summary(summary: dict[str, Any]) -> str:
    ops = ", ".join(f"{kind} {n}" for kind, n in summary["operations"].items() if n) or "none"
    lines = [
        f"manifest OK ({summary['form']} form): {summary['rows']} rows,"
        f" {summary['snapshots']} snapshots",
        f"operations: {ops}",
    ]
    for scope in summary["scopes"]:
        lines.append(
            f"scope project {scope['project_id']} region {scope['region_id']}:"
            f" {scope['snapshots']} snapshots"
        )
    if summary["needs_current"]:
        lines.append(
            f"{summary['needs_current']} snapshots need their current tags read first"
            " (rename, or clear plus set)"
        )
    if summary["passthrough"]:
        lines.append("passthrough columns: " + ", ".join(summary["passthrough"]))
    return "\n".join(lines)
