"""Snapshot IDs and scopes (project, region): checked, normalised and grouped.

`project_id` and `region_id` come from their columns, blank cells and missing columns filled
from the option, then from the environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from batchtag.errors import option
from batchtag.manifest._columnar import arrow, factorize, fullmatch, group_codes
from batchtag.manifest._detect import ENV_VARS, scope_default
from batchtag.manifest._messages import Collector, shown
from batchtag.model import POSITIVE_INT, UUID_LOWER

SCIENTIFIC = re.compile(r"\s*[0-9.]+[eE][+-]?[0-9]+\s*")  # how a spreadsheet shows a long number


def check_snapshot_ids(frame: pd.DataFrame, out: Collector) -> tuple[pd.Series, np.ndarray]:
    """The snapshot ids (trimmed, lowercase) and which rows hold a valid one."""
    if "snapshot_id" not in frame.columns:
        out.add("missing required column", "snapshot_id")
        return pd.Series([""] * len(frame), dtype=str), np.zeros(len(frame), dtype=bool)
    raw = frame["snapshot_id"]
    snapshot = raw
    ok = fullmatch(raw, UUID_LOWER)
    if not ok.all():  # normalising copies the column, so only when some cell needs it
        snapshot = raw.str.strip().str.lower()
        ok = fullmatch(snapshot, UUID_LOWER)

    def word(text: str) -> str:
        if not text.strip():
            return "snapshot_id is empty"
        return f"snapshot_id {shown(text)} is not a uuid (8-4-4-4-12 hex digits)"

    out.cells(~ok, raw, word, "snapshot_id")
    return snapshot, ok


def check_scope(
    frame: pd.DataFrame,
    column: str,
    given: int | None,
    env: Mapping[str, str],
    out: Collector,
) -> np.ndarray:
    """The column's number per row, with the option, then the env var, filling it in (or its
    blank cells). A bad cell gets a negative number of its own, so rows still group.
    Without the column, every row's number is the same (a read-only broadcast array)."""
    var = ENV_VARS[column]
    default = scope_default(column, given, env)
    if isinstance(default, str):  # the option or the variable is not a positive integer
        out.add(default, column)
        default = None
    n = len(frame)
    if column not in frame.columns:
        if default is None:
            if given is None and not env.get(var, "").strip():
                out.add(
                    f"missing: give a {column} column, pass {option(column)}, or set {var}", column
                )
        # one number for every row: a read-only view of a single value, not n copies
        return np.broadcast_to(np.int64(default or 0), (n,))
    raw = frame[column]
    codes, uniques = factorize(raw)  # IDs repeat: work on the few distinct values
    uniques = [u.strip() for u in uniques]
    unique_ok = fullmatch(pd.Series(uniques, dtype=str), POSITIVE_INT)
    values = np.array(
        [int(u) if good else 0 for u, good in zip(uniques, unique_ok, strict=True)] + [0],
        dtype=np.int64,
    )
    ok = np.append(unique_ok, False)[codes]
    number = np.where(ok, values[codes], -(codes + 2))
    blank = np.array([u == "" for u in uniques] + [False])[codes]
    if default is not None:
        number[blank] = default
        ok = ok | blank

    def word(cell: str) -> str:
        if not cell.strip():
            return f"{column} is empty and there is no default: pass {option(column)} or set {var}"
        if SCIENTIFIC.fullmatch(cell):
            return (
                f"{column} {shown(cell)} is not a positive integer (scientific notation, as a"
                " spreadsheet shows long numbers: format the column as text)"
            )
        return f"{column} {shown(cell)} is not a positive integer"

    out.cells(~ok, raw, word, column)
    return number


def snapshot_groups(project: np.ndarray, region: np.ndarray, snapshot: pd.Series) -> np.ndarray:
    """A group number per row for (project, region, snapshot), numbered in first-seen order.

    Each part is factorised on its own and the codes combined into one int64, which hashes
    far cheaper than a three-column groupby over strings; the snapshot strings are never
    turned into Python objects."""
    s = group_codes(arrow(snapshot))
    if _constant(project) and _constant(region):
        return s  # one scope, the usual case: the snapshot codes are the groups
    p = group_codes(project).astype(np.int64)
    r = group_codes(region).astype(np.int64)
    scope = group_codes(p * (r.max() + 1) + r)  # renumbered, so the next line cannot overflow
    return group_codes(scope.astype(np.int64) * (s.max() + 1) + s)


def _constant(values: np.ndarray) -> bool:
    return not len(values) or bool((values == values[0]).all())
