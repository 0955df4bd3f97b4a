"""Reading a change file back (``plan -o``, ``undo -o``, ``apply --undo-file``,
``enforce --check -o``) as the frame `batchtag.plan` / `batchtag.undo` returned.

The schema's columns (`batchtag.record.CHANGE_SCHEMA`) come back in its order, even a
column the file lacks, typed by the dtype contract (`batchtag.record.kind_of`); any other
column follows in file order.
"""

from __future__ import annotations

import os

import pandas as pd

from batchtag.errors import UsageError
from batchtag.record import CHANGE_COLUMNS, CHANGE_MARKS, is_change_file, kind_of, read_typed


def read_changes(path: str | os.PathLike) -> pd.DataFrame:
    """Read a change file back as the frame that was written.

    Parameters
    ----------
    path : str or PathLike
        A ``.csv``, ``.jsonl`` or ``.parquet`` change file (or one that
        ``batchtag.plan(output=...)``, ``batchtag.undo(output=...)`` wrote).

    Returns
    -------
    pandas.DataFrame
        ids and texts in the string dtype, ``project_id``/``region_id`` Int64, ``rows``
        lists; ``old`` missing where the key was absent, ``new`` where it is removed.

    Raises
    ------
    UsageError
        No such file, an unknown suffix, a row that cannot be read (named by its line), or
        a file that is no change file (it lacks field, old or new).

    Examples
    --------
    >>> plan = batchtag.read_changes("plan.parquet")  # doctest: +SKIP
    >>> plan[plan.verdict == "change"]  # doctest: +SKIP
    """
    frame = read_typed(path)
    found = list(frame.columns)
    if not is_change_file(found):
        raise UsageError(f"{path} is not a change file (it has no {', '.join(CHANGE_MARKS)})")
    for column in CHANGE_COLUMNS:
        if column not in frame.columns:
            frame[column] = kind_of(column).to_series([None] * len(frame))
    return frame[[*CHANGE_COLUMNS, *(c for c in found if c not in CHANGE_COLUMNS)]]
