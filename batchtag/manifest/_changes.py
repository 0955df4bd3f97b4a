"""A change file read as input (`apply FILE`, `batchtag.apply(frame)`): its rows into
operations and the checks that guard them.

A change file (`batchtag.record.CHANGE_SCHEMA`) is told from a manifest by its columns
(`batchtag.record.is_change_file`): it is not one of the three manifest forms but a kind of
input of its own. Each change row (field ``tag`` or ``name``) gives

- the write: ``set`` key new (``delete`` when new is empty), or ``name`` new;
- its check: ``expect`` key old (old empty: the key is absent now), or ``expect_name``
  old, which `PlanEntry.conflicts` holds against the snapshot's state, read in the run.

Rows that change nothing are skipped: a plan's notes (change ``read_only``, ``conflict``)
and rows without a field (a snapshot not found). The ``verdict``, ``change`` and ``rows``
columns are the writer's account: read, never passed through.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from batchtag.manifest._columnar import categorical, fullmatch, normalised
from batchtag.manifest._messages import Collector, shown, tag_text_problem
from batchtag.manifest._operations import concat, ops_frame
from batchtag.model import TAG_TEXT
from batchtag.record import NAME, NOTES, TAG

FIELDS = (TAG, NAME)


def change_ops(frame: pd.DataFrame, out: Collector) -> pd.DataFrame:
    """The writes and checks of a change file's rows (see the module docstring); every bad
    cell is a problem naming its row and column.

    Examples
    --------
    >>> from batchtag.manifest._model import Manifest
    >>> frame = pd.DataFrame({"field": ["tag", "name"], "key": ["env", ""],
    ...                       "old": ["dev", "db-1"], "new": ["", "db-01"]})
    >>> ops = change_ops(frame, Collector(Manifest(frame, "frame")))
    >>> ops[["pos", "op", "key", "value"]].values.tolist()
    [[0, 'delete', 'env', ''], [0, 'expect', 'env', 'dev'], [1, 'name', '', 'db-01'], [1, 'expect_name', '', 'db-1']]
    """
    field = pd.Series(normalised(categorical(frame["field"])))
    notes = np.zeros(len(frame), dtype=bool)
    if "change" in frame.columns:
        notes = pd.Series(normalised(categorical(frame["change"]))).isin(NOTES).to_numpy()
    known = field.isin([*FIELDS, ""]).to_numpy() | field.isna().to_numpy()
    out.cells(
        ~known,
        frame["field"],
        lambda text: f"field {shown(text)}: a change is to a tag or the name",
        "field",
    )
    tag = (field == TAG).to_numpy(dtype=bool) & ~notes
    name = (field == NAME).to_numpy(dtype=bool) & ~notes
    key = _cells(frame, "key")
    old, new = _cells(frame, "old"), _cells(frame, "new")
    good_key = fullmatch(key, TAG_TEXT)
    out.cells(
        tag & ~good_key,
        key,
        lambda text: "a tag change needs a key" if text == "" else tag_text_problem(text, "key"),
        "key",
    )
    has_new = (new != "").to_numpy(dtype=bool)
    bad_new = tag & has_new & ~fullmatch(new, TAG_TEXT)
    out.cells(bad_new, new, lambda text: tag_text_problem(text, "new value"), "new")
    tag &= good_key & ~bad_new

    def part(mask: np.ndarray, op: str, keys, values, value_col: str) -> pd.DataFrame:
        at = np.flatnonzero(mask)
        return ops_frame(at, op, _at(keys, at), _at(values, at), "key", value_col)

    return concat(
        [
            part(tag & has_new, "set", key, new, "new"),
            part(tag & ~has_new, "delete", key, "", "new"),
            part(tag, "expect", key, old, "old"),
            part(name, "name", key, new, "new"),
            part(name, "expect_name", "", old, "old"),
        ]
    )


def _cells(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column's cells as text ("" where missing, or for a column the file lacks)."""
    if column not in frame.columns:
        return pd.Series(np.full(len(frame), "", dtype=object), dtype=str)
    return frame[column]


def _at(cells: pd.Series | str, at: np.ndarray) -> pd.Series | str:
    """The cells at positions `at` (a categorical stays coded); one text stays itself."""
    return cells if isinstance(cells, str) else cells.iloc[at].reset_index(drop=True)
