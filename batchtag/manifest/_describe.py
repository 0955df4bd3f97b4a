"""What a planned manifest holds, as plain data and as the `validate` command's text."""

from __future__ import annotations

from collections import Counter
from typing import Any

from batchtag.manifest._entries import PlanEntries
from batchtag.model import CHANGE_FILE, OPS, Plan


def describe_manifest(plan: Plan) -> dict[str, Any]:
    """What a plan holds, as plain data (the `validate` command's output).

    Parameters
    ----------
    plan : Plan
        From `read_plan`.

    Returns
    -------
    dict
        ``form``, ``rows``, ``snapshots``, ``operations`` (count per op), ``scopes``,
        ``passthrough``, ``needs_current`` (snapshots whose current tags must be read),
        ``ids_in_several_scopes`` (snapshot ids listed under more than one project/region:
        each is a separate request, and a snapshot exists in one scope only) and ``notes``
        (blank tag cells ignored). A change file's ``form`` is ``changes``.

    Examples
    --------
    >>> describe_manifest(Plan(entries=[]))["snapshots"]
    0
    """
    entries = plan.entries
    scopes = plan.scopes
    if isinstance(entries, PlanEntries):  # columns: no Python object per entry
        needs_current = entries.needs_current_count()
        # in one scope every entry is a different id: no need to sort a million of them
        several = entries.ids_in_several_scopes() if len(scopes) > 1 else 0
    else:
        needs_current = sum(1 for e in entries if e.needs_current)
        several = sum(1 for n in Counter(e.snapshot_id for e in entries).values() if n > 1)
    return {
        "form": plan.form,
        "rows": plan.rows,
        "snapshots": len(plan.entries),
        "operations": {kind: plan.ops.get(kind, 0) for kind in OPS},
        "scopes": [
            {"project_id": p, "region_id": r, "snapshots": n}
            for (p, r), n in sorted(scopes.items())
        ],
        "passthrough": list(plan.passthrough),
        "needs_current": needs_current,
        "ids_in_several_scopes": several,
        "notes": list(plan.notes),
    }


def format_validation(description: dict[str, Any]) -> str:
    """The `validate` command's text for a `describe_manifest` result.

    Examples
    --------
    >>> print(format_validation(describe_manifest(Plan(entries=[]))))
    manifest OK (long form): 0 rows, 0 snapshots
    operations: none
    """
    d = description
    ops = ", ".join(f"{kind} {n}" for kind, n in d["operations"].items() if n) or "none"
    what = "change file OK" if d["form"] == CHANGE_FILE else f"manifest OK ({d['form']} form)"
    lines = [f"{what}: {d['rows']} rows, {d['snapshots']} snapshots", f"operations: {ops}"]
    for scope in d["scopes"]:
        lines.append(
            f"scope project {scope['project_id']} region {scope['region_id']}:"
            f" {scope['snapshots']} snapshots"
        )
    if d["form"] == CHANGE_FILE:
        lines.append(
            "each change is applied only where its key still holds its old value"
            " (else the snapshot is a conflict)"
        )
    elif d["needs_current"]:
        lines.append(
            f"{d['needs_current']} snapshots need their current tags read first"
            " (rename, or clear plus set)"
        )
    if d["operations"].get("rename"):
        lines.append(
            "a rename onto a key that holds a different value is refused (a conflict)"
            " unless its row says overwrite=true"
        )
    if d.get("ids_in_several_scopes"):
        lines.append(
            f"note: {d['ids_in_several_scopes']} snapshot ids appear in more than one scope;"
            " each is its own request, and a snapshot exists in one scope only, so the others"
            " will end not_found"
        )
    if d["passthrough"]:
        lines.append("passthrough columns: " + ", ".join(d["passthrough"]))
    lines.extend(f"note: {note}" for note in d.get("notes") or ())
    return "\n".join(lines)
