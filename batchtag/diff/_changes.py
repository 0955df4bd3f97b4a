"""Reading a change file back: a plan's diff (``plan -o``) or an undo manifest (``undo -o``,
``apply --undo-file``), as the frame `batchtag.plan` / `batchtag.undo` returned.

Each format's columns come back in its own order, even a column no row of the file holds
(an undo line leaves out a missing ``name``), typed by the dtype contract
(`batchtag.record.kind_of`); any other column follows in file order.
"""

from __future__ import annotations

import os

import pandas as pd

from batchtag.diff._store import DIFF_COLUMNS
from batchtag.record import UNDO_COLUMNS, kind_of, read_typed

# The change formats, by their columns: a new format adds its column list here.
CHANGE_FORMATS: tuple[tuple[str, ...], ...] = (tuple(DIFF_COLUMNS), tuple(UNDO_COLUMNS))


def read_changes(path: str | os.PathLike) -> pd.DataFrame:
    """Read a change file (a plan's diff, an undo manifest) back as the frame that was
    written.

    Parameters
    ----------
    path : str or PathLike
        A ``.csv``, ``.jsonl`` or ``.parquet`` file from ``plan -o``, ``undo -o`` or
        ``apply --undo-file`` (or ``batchtag.plan(output=...)``, ``batchtag.undo(output=...)``).

    Returns
    -------
    pandas.DataFrame
        ids and texts in the string dtype, ``project_id``/``region_id`` Int64, ``tags`` dicts
        (an undo's merge patch: None deletes a key), ``rows`` lists.

    Raises
    ------
    UsageError
        No such file, an unknown suffix, or a row that cannot be read (named by its line).

    Examples
    --------
    >>> diff = batchtag.read_changes("plan.parquet")  # doctest: +SKIP
    >>> diff[diff.verdict == "change"]  # doctest: +SKIP
    """
    frame = read_typed(path)
    found = list(frame.columns)
    chosen = max(CHANGE_FORMATS, key=lambda columns: len(set(columns) & set(found)))
    if not set(chosen) & set(found):
        return frame
    for column in chosen:
        if column not in frame.columns:
            frame[column] = kind_of(column).to_series([None] * len(frame))
    return frame[[*chosen, *(c for c in found if c not in chosen)]]
