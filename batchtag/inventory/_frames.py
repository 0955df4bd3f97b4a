"""The inventory as a frame: typed by the dtype contract, with its ``tags`` column, and read
back from an export file (`read_inventory`) as the frame `export` returned.

A wide inventory that holds every inventory column gets a ``tags`` column: the dict of the
frame's ``tag:<key>`` cells (the user tags), so fed back to `apply` the frame reads as the
wide form with the dicts as a copy. Files do not store it; `read_inventory` derives it the
same way, so a frame and its file give the same frame.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from batchtag.inventory._select import INVENTORY_COLUMNS, LONG_COLUMNS, TAGS_COLUMN
from batchtag.model import TAG_PREFIX
from batchtag.record import conform, read_typed


def inventory_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (an export's rows) in the contract's dtypes, with the ``tags`` column when it
    is a whole wide inventory (see the module doc); ``attrs`` kept."""
    frame = frame.drop(columns=TAGS_COLUMN, errors="ignore")
    typed = conform(frame)
    if has_tags_column(list(typed.columns)):
        typed[TAGS_COLUMN] = tag_dicts(typed)
    return typed


def has_tags_column(columns: list[str]) -> bool:
    """A wide inventory with every inventory column (not `--long`, not a few `--columns`)."""
    return set(INVENTORY_COLUMNS) <= set(columns) and not set(LONG_COLUMNS) <= set(columns)


def tag_dicts(frame: pd.DataFrame) -> pd.Series:
    """Each row's ``tag:<key>`` cells as a dict (empty when it has none)."""
    out: list[dict[str, str]] = [{} for _ in range(len(frame))]
    for column in frame.columns:
        if not (isinstance(column, str) and column.startswith(TAG_PREFIX)):
            continue
        key = column[len(TAG_PREFIX) :]
        cells = frame[column]
        present = np.flatnonzero(cells.notna().to_numpy())
        values = cells.to_numpy(dtype=object)
        for row in present.tolist():
            out[row][key] = values[row]
    return pd.Series(out, index=frame.index, dtype=object)


def read_inventory(path: str | os.PathLike) -> pd.DataFrame:
    """Read an export file (``batchtag export -o``, ``batchtag.export(output=...)``) back
    as the frame `batchtag.export` returned.

    Parameters
    ----------
    path : str or PathLike
        A ``.csv``, ``.jsonl`` or ``.parquet`` export.

    Returns
    -------
    pandas.DataFrame
        One row per snapshot (or per tag, for a ``long`` export), columns as written:
        ids and texts in the string dtype, ``project_id``/``region_id``/``size`` Int64,
        ``created_at``/``updated_at`` UTC datetimes, ``tag:``/``ro:`` columns text, and for a
        whole wide export the ``tags`` dict column.

    Raises
    ------
    UsageError
        An unknown suffix, or a row that cannot be read (named by its line).

    Examples
    --------
    >>> inventory = batchtag.read_inventory("inventory.parquet")  # doctest: +SKIP
    >>> inventory[inventory["tag:cost-center"].isna()]  # doctest: +SKIP
    """
    return inventory_frame(read_typed(path))
