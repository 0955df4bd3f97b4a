"""The three manifest forms: which one a manifest is written in, which columns it reads, and
how its rows become operations (pos, op, key, value).

- long: `op`, `key`, `value` columns, one operation a row (and an optional `overwrite`
  column: a rename may replace a different value);
- wide: `tag:<key>` columns (and optionally `name`): a cell sets the tag, the delete marker
  removes it, an empty cell leaves it alone (or removes it with `empty_deletes`);
- json: a `tags` column holding a merge-patch object (or null to clear), optional `name`.

A change file (`field`, `old`, `new` columns, `batchtag.manifest._changes`) is told apart
first: it is a kind of input of its own, not a form.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from batchtag.errors import Problem, option
from batchtag.manifest._changes import change_ops
from batchtag.manifest._columnar import categorical, from_codes, fullmatch, index_type, normalised
from batchtag.manifest._detect import blank_cells_note
from batchtag.manifest._messages import Collector, shown, tag_text_problem
from batchtag.manifest._operations import concat, no_ops, ops_frame
from batchtag.manifest._patches import patch_ops
from batchtag.manifest._rules import apply_rules
from batchtag.model import (
    CHANGE_FILE,
    NAME_COLUMN,
    OPS,
    OVERWRITE_COLUMN,
    TAG_PREFIX,
    TAG_TEXT,
    TAGS_COLUMN,
)


def is_export_tags_copy(frame: pd.DataFrame, columns: list[str]) -> bool:
    """True for `batchtag.export()`'s frame: `tag:` columns plus a `tags` column of dicts
    (the same tags, for convenience). Such a frame is a wide manifest; its `tags` column is
    neither read nor passed through (name the form ``json`` to read it instead).

    Examples
    --------
    >>> is_export_tags_copy(pd.DataFrame({"tag:env": ["a"], "tags": [{"env": "a"}]}),
    ...                     ["tag:env", "tags"])
    True
    """
    if TAGS_COLUMN not in columns or not any(c.startswith(TAG_PREFIX) for c in columns):
        return False
    values = frame[TAGS_COLUMN].dropna()
    return len(values) > 0 and all(type(v) is dict for v in values)


def edited_tags_copy(frame: pd.DataFrame) -> list:
    """The 1-based rows of an export frame whose `tags` dict no longer equals what its
    `tag:` columns say (one of the two was edited; which one cannot be told).

    Examples
    --------
    >>> edited_tags_copy(pd.DataFrame({"tag:env": ["a", "b"], "tags": [{"env": "a"}, {}]}))
    [2]
    """
    columns = [c for c in frame.columns if str(c).strip().startswith(TAG_PREFIX)]
    keys = [str(c).strip()[len(TAG_PREFIX) :] for c in columns]
    cells = [frame[c].tolist() for c in columns]
    edited = []
    tags = frame[TAGS_COLUMN].tolist()
    for row, (given, *values) in enumerate(zip(tags, *cells, strict=True), start=1):
        said = {k: v for k, v in zip(keys, values, strict=True) if not _is_na(v)}
        if (given if type(given) is dict else {}) != said:
            edited.append(row)
    return edited


def tags_copy_problem(rows: list[int]) -> Problem:
    """Refuse an export frame whose `tags` dicts and `tag:` columns disagree (the first
    row is named, by its label once located)."""
    more = f" (and {len(rows) - 1} more rows)" if len(rows) > 1 else ""
    return Problem(
        f"the tags dict no longer matches the tag: columns{more}: edit one of the two and "
        f"drop the other: frame.drop(columns='tags') to apply the tag: columns, or "
        f"{option('form', 'json')} to apply the dicts",
        row=rows[0],
        column=TAGS_COLUMN,
    )


def _is_na(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def form_ops(
    form: str | None, frame: pd.DataFrame, out: Collector, marker: str, empty_deletes: bool
) -> pd.DataFrame:
    """The checked operations of a manifest in `form` (none when the form is unknown).

    Rows the reader already refused (`out.refused`) get no further problems."""
    if form == CHANGE_FILE:
        ops = change_ops(frame, out)
    elif form == "long":
        ops = long_ops(frame, out)
    elif form == "wide":
        ops = wide_ops(frame, marker, out, empty_deletes=empty_deletes)
    elif form == "json":
        ops = json_ops(frame, out)
    else:
        ops = no_ops()
    refused = out.refused()
    if refused.any() and len(ops):
        ops["ok"] = ops["ok"].to_numpy(dtype=bool) & ~refused[ops["pos"].to_numpy()]
    return apply_rules(ops, out)


def long_ops(frame: pd.DataFrame, out: Collector) -> pd.DataFrame:
    """One operation a row, from the `op`, `key` and `value` columns."""
    n = len(frame)
    if "op" not in frame.columns:
        out.add("missing required column (long form: op, key, value)", "op")
        return no_ops()
    op = pd.Series(normalised(categorical(frame["op"])))
    known = op.isin(OPS).to_numpy()
    ok = known.copy()
    for column, ops, what in (
        ("key", ["set", "delete", "rename"], "set, delete and rename need a key"),
        ("value", ["set", "rename", "name"], "set, rename and name need a value"),
    ):
        needs = op.isin(ops).to_numpy()
        if column not in frame.columns and needs.any():
            out.add(f"missing column: {what}", column)
            ok &= ~needs

    def word(text: str) -> str:
        listed = ", ".join(OPS[:-1]) + " or " + OPS[-1]
        if not text.strip():
            return f"op is empty: use {listed}"
        return f"unknown op {shown(text)}: use {listed}"

    out.cells(~known, frame["op"], word, "op")
    key = frame["key"] if "key" in frame.columns else ""
    value = frame["value"] if "value" in frame.columns else ""
    over = overwrites(frame, out)
    ops = ops_frame(np.arange(n, dtype=index_type(n)), op, key, value, "key", "value", over)
    ops["ok"] = ok
    return ops


TRUE_TEXTS, FALSE_TEXTS = ("true", "yes", "1"), ("false", "no", "0", "")


def overwrites(frame: pd.DataFrame, out: Collector) -> np.ndarray | bool:
    """Per row, whether its rename may replace a different value (the `overwrite` column:
    true/false, yes/no, 1/0, empty for false); False without the column. It means nothing
    on other rows (a set always replaces the value)."""
    if OVERWRITE_COLUMN not in frame.columns:
        return False
    cells = normalised(categorical(frame[OVERWRITE_COLUMN]))
    texts = pd.Index(cells.categories, dtype=str)
    truth = np.append(np.asarray(texts.isin(TRUE_TEXTS), dtype=bool), False)
    known = np.append(np.asarray(texts.isin(TRUE_TEXTS + FALSE_TEXTS), dtype=bool), True)
    out.cells(
        ~known[cells.codes],
        frame[OVERWRITE_COLUMN],
        lambda text: f"overwrite {shown(text)}: use true or false (empty: false)",
        OVERWRITE_COLUMN,
    )
    return truth[cells.codes]


WIDE_OPS = ["set", "delete"]  # by `delete` (0 or 1)


def wide_ops(
    frame: pd.DataFrame, marker: str, out: Collector, *, empty_deletes: bool = False
) -> pd.DataFrame:
    """One operation per filled `tag:<key>` cell (every cell with `empty_deletes`) and per
    filled `name` cell."""
    parts = []
    blanks = 0
    for column in frame.columns:
        if not column.startswith(TAG_PREFIX):
            continue
        key = column[len(TAG_PREFIX) :]
        if not fullmatch(pd.Series([key], dtype=str), TAG_TEXT)[0]:
            out.add(f"column name: {tag_text_problem(key, 'tag key')}", column)
            continue
        ops, blank = _tag_ops(categorical(frame[column]), key, column, marker, empty_deletes)
        parts.append(ops)
        blanks += blank
    if blanks:
        out.notes.append(blank_cells_note(blanks))
    if NAME_COLUMN in frame.columns:
        parts.append(_name_ops(frame[NAME_COLUMN], out, marker))
    return concat(parts)


def _tag_ops(
    cells: pd.Categorical, key: str, column: str, marker: str, empty_deletes: bool
) -> tuple[pd.DataFrame, int]:
    """The operations of one `tag:<key>` column, worked out once per distinct cell text and
    spread to the rows through the codes (no Python object per row), and how many blank
    cells it ignored (none with `empty_deletes`)."""
    texts = pd.Index(cells.categories, dtype=str)
    if "" not in texts:  # a deleting row's value is ""
        texts = texts.append(pd.Index([""], dtype=str))
    blank = np.asarray(texts == "", dtype=bool)
    delete = np.asarray(texts.str.strip() == marker, dtype=bool) | blank
    codes = cells.codes
    blank_code = int(np.flatnonzero(blank)[0])
    codes = np.where(codes < 0, blank_code, codes)  # a missing cell is an empty one
    filled = ~blank[codes]
    ignored = 0 if empty_deletes else int(len(filled) - np.count_nonzero(filled))
    every = empty_deletes or bool(filled.all())
    positions = np.arange(len(codes), dtype=index_type(len(codes))) if every else None
    positions = np.flatnonzero(filled) if positions is None else positions
    del filled
    picked = codes[positions]
    deleted = delete[picked]
    ops = from_codes(deleted.astype(np.int8), WIDE_OPS)
    values = from_codes(np.where(deleted, blank_code, picked), texts)
    return ops_frame(positions, ops, key, values, column, column), ignored


def _name_ops(cells: pd.Series, out: Collector, marker: str | None) -> pd.DataFrame:
    positions = np.flatnonzero((cells != "").to_numpy())
    values = cells.iloc[positions].reset_index(drop=True)
    part = ops_frame(positions, "name", "", values, NAME_COLUMN, NAME_COLUMN)
    if marker is not None:
        marked = (values.str.strip() == marker).to_numpy()
        for pos in positions[marked].tolist():
            out.add("a snapshot name cannot be deleted", NAME_COLUMN, pos)
        part["ok"] = ~marked
    return part


def json_ops(frame: pd.DataFrame, out: Collector) -> pd.DataFrame:
    """The operations of each row's `tags` merge patch, then its `name`."""
    parts = []
    if TAGS_COLUMN in frame.columns:
        parts.append(patch_ops(frame[TAGS_COLUMN], out))
    elif NAME_COLUMN not in frame.columns:
        out.add("missing required column (json form: tags, optional name)", TAGS_COLUMN)
    if NAME_COLUMN in frame.columns:
        parts.append(_name_ops(frame[NAME_COLUMN], out, None))
    return concat(parts)
