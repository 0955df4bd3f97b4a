"""Writing a plan diff (`-o`) as CSV / Parquet / JSONL, a batch of rows at a time.

The text formats stream records; Parquet is written in row groups of `GROUP` rows, each
column typed by its kind (a passthrough column, typed by its cells, is made whole once so
every row group has the same type, as `write_table` would give it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from batchtag.diff._store import DIFF_COLUMNS, Diff
from batchtag.record import kind_of
from batchtag.tabular import ANY, atomic_write, table_format

DIFF_KINDS = {c: kind_of(c) for c in DIFF_COLUMNS}  # the dtype contract's (batchtag.record)
GROUP = 16_384  # rows per Parquet row group (made from Python cells, so bounded)


def write_diff(diff: Any, path: str | os.PathLike) -> None:
    """The full diff as CSV / Parquet / JSONL (by suffix), one row per (snapshot, change),
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
    if not isinstance(diff, Diff):
        diff = _FrameRows(diff)
    kinds = {c: DIFF_KINDS[c] for c in diff.columns if c in DIFF_COLUMNS}
    fmt = table_format(path)
    if fmt.appendable:  # line-based: streams the records it is given
        fmt.write(path, diff.columns, diff.records(), kinds)
    else:
        atomic_write(path, lambda fh: _write_parquet(diff, kinds, fh))


def _write_parquet(diff, kinds, fh) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    loose = {c: _whole(diff, c) for c in diff.columns if c not in kinds}
    writer = None
    for table in _groups(diff, kinds, loose):
        if writer is None:
            writer = pq.ParquetWriter(fh, table.schema)
        writer.write_table(table)
    if writer is None:  # no rows: an empty table of the same types
        arrays = [kinds.get(c, ANY).to_arrow([]) for c in diff.columns]
        pq.write_table(pa.Table.from_arrays(arrays, names=list(diff.columns)), fh)
    else:
        writer.close()


def _whole(diff, column: str):
    """A passthrough column made whole (its Arrow type depends on every cell)."""
    return ANY.to_arrow([v for cells in diff.column(column, batch=GROUP) for v in cells])


def _groups(diff, kinds, loose) -> Iterator[Any]:
    """The diff as Arrow tables of `GROUP` rows, columns typed by `kinds` (`loose`: whole)."""
    import pyarrow as pa

    names = [c for c in diff.columns if c in kinds]
    start = 0
    for batches in zip(*(diff.column(c, batch=GROUP) for c in names), strict=True):
        size = len(batches[0])
        made = {c: kinds[c].to_arrow(cells) for c, cells in zip(names, batches, strict=True)}
        made.update((c, array.slice(start, size)) for c, array in loose.items())
        yield pa.Table.from_arrays([made[c] for c in diff.columns], names=diff.columns)
        start += size


class _FrameRows:
    """A DataFrame seen through `Diff`'s reading interface (`columns`, `records`, `column`)."""

    def __init__(self, frame):
        self.frame = frame
        self.columns = list(frame.columns)

    def records(self) -> Iterator[dict[str, Any]]:
        return iter(self.frame.to_dict("records"))

    def column(self, name: str, *, batch: int = GROUP) -> Iterator[list[Any]]:
        values = self.frame[name].tolist()
        for start in range(0, len(values), batch):
            yield values[start : start + batch]
