"""Writing a plan diff (`-o`): a change file (`batchtag.record.write_changes`), CSV /
Parquet / JSONL by suffix, a batch of rows at a time."""

from __future__ import annotations

import os
from typing import Any

from batchtag.record import write_changes


def write_diff(diff: Any, path: str | os.PathLike) -> None:
    """The full diff as a change file (by suffix), one row per (snapshot, change),
    replacing `path` atomically.

    Parameters
    ----------
    diff : Diff or pandas.DataFrame
        The plan diff (`DiffCollector.finish()`, or the frame `batchtag.plan` returns).
    path : str or PathLike
        The output; its suffix picks the format.

    Examples
    --------
    >>> write_diff(diff, "diff.parquet")  # doctest: +SKIP
    """
    write_changes(diff, path)
