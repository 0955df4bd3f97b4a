"""Writing a plan diff (`-o`) as CSV / Parquet / JSONL, a batch of rows at a time.

The diff's columns are Arrow arrays (`batchtag.diff._store`): a batch of rows is taken from
them in plan order and written as it is — Parquet row groups of `GROUP` rows, CSV and JSON
Lines text made a column at a time (`batchtag.tabular.csv_lines`, `jsonl_lines`) — the
same file `write_table` would make of the same rows. Each column is typed by its kind; a
passthrough column of other cells than text (a DataFrame manifest's ints, dates) is
encoded cell by cell, and for Parquet made whole once so every row group has the same
type, as `write_table` would give it. A DataFrame (`batchtag.plan`'s) is written through
its records, and so are change rows that come a chunk at a time (`ChangeStream`, an undo's):
the same file as a frame of them would give, never all of them held.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain
from typing import Any

from batchtag.diff._store import DIFF_COLUMNS, Diff
from batchtag.model import json_text
from batchtag.record import CHANGE_COLUMNS, kind_of
from batchtag.tabular import (
    ANY,
    CSV,
    atomic_write,
    csv_lines,
    jsonl_lines,
    table_format,
    write_output,
)

DIFF_KINDS = {c: kind_of(c) for c in DIFF_COLUMNS}  # the dtype contract's (batchtag.record)
GROUP = 16_384  # rows per Parquet row group, and taken from the diff's columns at once


def write_diff(diff: Any, path: str | os.PathLike) -> None:
    """The full diff as CSV / Parquet / JSONL (by suffix), one row per (snapshot, change),
    replacing `path` atomically.

    Parameters
    ----------
    diff : Diff, pandas.DataFrame or ChangeStream
        The plan diff (`DiffCollector.finish()`, or the frame `batchtag.plan` returns), or
        change rows as they come.
    path : str or PathLike
        The output; its suffix picks the format.

    Examples
    --------
    >>> write_diff(diff, "diff.parquet")  # doctest: +SKIP
    """
    kinds = {c: DIFF_KINDS[c] for c in diff.columns if c in DIFF_COLUMNS}
    fmt = table_format(path)
    if isinstance(diff, ChangeStream):  # as a frame of its rows would be written
        if fmt.appendable:
            fmt.write(path, diff.columns, diff.records(), kinds)
        else:
            atomic_write(path, lambda fh: _write_parquet(diff, kinds, {}, fh, _stream_groups))
    elif not isinstance(diff, Diff):  # a frame: its records, as any table
        frame = _FrameRows(diff)
        if fmt.appendable:
            fmt.write(path, frame.columns, frame.records(), kinds)
        else:
            loose = {c: _whole(frame, c) for c in frame.columns if c not in kinds}
            atomic_write(path, lambda fh: _write_parquet(frame, kinds, loose, fh, _groups))
    elif fmt.appendable:  # (to standard output for ``-``)
        write_output(path, lambda fh: _write_text(diff, fmt is CSV, fh))
    else:
        # passthrough columns of Python cells: typed by all of them; text ones are text
        loose = {c: _whole(diff, c) for c in diff.columns if c not in kinds and diff.held(c)}
        atomic_write(path, lambda fh: _write_parquet(diff, kinds, loose, fh, _arrow_groups))


def _write_text(diff: Diff, csv: bool, fh) -> None:
    """CSV (a header line first) or JSON Lines, a batch of rows at a time."""
    names = diff.columns
    if csv:
        fh.write(CSV.line(names, CSV.encoders(names, {}), names).encode())
    for batch in diff.arrow_batches(batch=GROUP):
        columns = [_cells(name, column, csv) for name, column in zip(names, batch, strict=True)]
        if csv:
            fh.write(csv_lines(columns))
        else:
            raw = [
                name == "rows" or isinstance(column, list)
                for name, column in zip(names, batch, strict=True)
            ]
            fh.write(jsonl_lines(names, columns, raw))


def _cells(name: str, column, csv: bool):
    """A column of a batch as `csv_lines` / `jsonl_lines` take it: the manifest rows as
    their JSON text, Python cells (a passthrough column of other values) encoded one by one
    (CSV text; JSON for JSON Lines)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, list):
        encode = ANY.to_text if csv else (lambda v: json_text(ANY.to_json(v)))
        return pa.array([encode(v) for v in column], pa.string())
    if name == "rows":
        listed = pc.binary_join(column.cast(pa.list_(pa.string())), ",")
        return pc.binary_join_element_wise("[", listed, "]", "")
    return column


def _write_parquet(diff, kinds, loose, fh, groups) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for table in groups(diff, kinds, loose):
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


def _arrow_groups(diff: Diff, kinds, loose) -> Iterator[Any]:
    """The diff as Arrow tables of `GROUP` rows taken from its columns as they are (the
    manifest rows as their JSON text, as `JSON.to_arrow` writes them; `loose`: passthrough
    columns made whole)."""
    import pyarrow as pa

    start = 0
    for batch in diff.arrow_batches(batch=GROUP):
        made = []
        for name, column in zip(diff.columns, batch, strict=True):
            if name in loose:
                made.append(loose[name].slice(start, len(batch[0])))
            elif isinstance(column, list):  # Python cells of a typed column: as any table
                made.append(kinds[name].to_arrow(column))
            else:
                made.append(_cells(name, column, csv=True))
        yield pa.Table.from_arrays(made, names=diff.columns)
        start += len(batch[0])


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


def _stream_groups(diff: ChangeStream, kinds, loose) -> Iterator[Any]:
    """The rows as Arrow tables of `GROUP` rows, columns typed by `kinds` (as `_groups`)."""
    import pyarrow as pa

    for group in diff.groups(GROUP):
        arrays = [kinds[c].to_arrow([r.get(c) for r in group]) for c in diff.columns]
        yield pa.Table.from_arrays(arrays, names=diff.columns)


class ChangeStream:
    """Change rows that come a chunk at a time (dicts of `CHANGE_COLUMNS`): `write_diff`
    writes them as they come, the same file a frame of them would give (`frame_of`).
    They can be written once.

    Parameters
    ----------
    chunks : iterable of lists of dict
        The rows, a list at a time (of any length).
    """

    def __init__(self, chunks: Iterable[list[Mapping[str, Any]]]):
        self.columns = list(CHANGE_COLUMNS)
        self._chunks = chunks

    def records(self) -> Iterator[Mapping[str, Any]]:
        return chain.from_iterable(self._chunks)

    def groups(self, size: int) -> Iterator[list[Mapping[str, Any]]]:
        """The rows in lists of `size` (the last one shorter)."""
        group: list[Mapping[str, Any]] = []
        for chunk in self._chunks:
            group += chunk
            while len(group) >= size:
                yield group[:size]
                group = group[size:]
        if group:
            yield group


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


write_changes = write_diff  # its public name: every change file is written by it
