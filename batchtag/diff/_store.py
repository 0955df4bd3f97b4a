"""The plan diff's rows held column by column: Arrow arrays appended a chunk at a time.

A 1M-snapshot plan has a row per changed (snapshot, key): as Python lists of cells that
was ~300 bytes a row (plus the heap fragmentation of building them). `DiffColumns` keeps
the last `CHUNK` rows as small lists, then turns each column into one Arrow array: text
columns and the scope ids dictionary-coded (verdict, field, key, change, old, new), the
snapshot ids as plain strings, the manifest row numbers as a list array. A passthrough
column whose cells are not all text (a DataFrame manifest's ints, dates) stays a Python
list, so its values come back exactly as they went in.

With ``spill``, the chunks go to an unlinked temporary file instead (the page cache holds
them; a plan of a million changes keeps ~100 MB less) and `SpilledDiff` reads them back in
plan order.

`Diff` is the result: the summary, the rows in plan order (`records`, a batch at a time;
`column`), and `frame()`, the pandas DataFrame `batchtag.plan()` returns: a change frame
(`batchtag.record.CHANGE_SCHEMA`, its dtypes).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from batchtag.memory import SpillFile
from batchtag.record import CHANGE_COLUMNS, kind_of
from batchtag.tabular import INT

CHUNK = 16_384  # rows buffered as Python lists before a column becomes an Arrow array
BATCH = 32_768  # rows made into records at a time when reading back
DIFF_COLUMNS = list(CHANGE_COLUMNS)  # then the passthrough columns
INTS = frozenset(c for c in DIFF_COLUMNS if kind_of(c) is INT)
INT_DTYPES = dict.fromkeys(INTS, "Int64")  # as the columns are held; `frame` conforms them
CODED = INTS | {"verdict", "field", "key", "change", "old", "new"}  # repeat a lot
LISTS = frozenset({"rows"})
TEXT = frozenset(DIFF_COLUMNS) - INTS - LISTS  # str or None in every row


class _Column:
    """One column: Arrow chunks while every cell fits its type, else a Python list."""

    def __init__(self, name: str):
        self.name = name
        self.chunks: list[Any] = []  # pyarrow arrays
        self.objects: list[Any] | None = None  # the fallback: every cell as given

    def flush(self, values: list[Any]) -> None:
        self.add(None if self.objects is not None else _arrow(self.name, values), values)

    def add(self, array: Any, values: list[Any]) -> None:
        """Add a chunk: `array` (`_arrow` of `values`, None when they do not fit)."""
        if self.objects is not None:
            self.objects.extend(values)
            return
        if array is None:  # not all text: keep the cells themselves from now on
            self.objects = [v for chunk in self.chunks for v in chunk.to_pylist()]
            self.objects.extend(values)
            self.chunks = []
        else:
            self.chunks.append(array)

    def take(self, positions: np.ndarray) -> list[Any]:
        """The cells at `positions` (row numbers in arrival order), as Python values; each
        chunk takes its own rows (a chunked take would concatenate the whole column)."""
        if self.objects is not None:
            return [self.objects[i] for i in positions.tolist()]
        import pyarrow as pa

        lengths = np.fromiter((len(c) for c in self.chunks), dtype=np.int64)
        starts = np.cumsum(lengths) - lengths
        which = np.searchsorted(starts, positions, side="right") - 1
        out = np.empty(len(positions), dtype=object)
        for k in np.unique(which).tolist():
            chosen = np.flatnonzero(which == k)
            rows = pa.array(positions[chosen] - starts[k])
            out[chosen] = _cells(self.chunks[k].take(rows).to_pylist())
        return out.tolist()

    def arrow(self, picks: _Picks):
        """The cells at some positions (`picks`, made for this column's chunks) as one Arrow
        array of the column's plain type (int64, text, or the manifest rows as
        `list<int64>`); None for a column of Python cells. A coded column gathers its codes
        (`_codes`); the others take each chunk's rows, as in `take`."""
        if self.objects is not None:
            return None
        import pyarrow as pa

        kind = _kind(self.name)
        if not self.chunks:
            return pa.array([], kind)
        if pa.types.is_dictionary(self.chunks[0].type):
            codes, texts = self._codes()
            chosen = codes[picks.indices]
            return texts.take(pa.array(chosen, mask=chosen < 0)).cast(kind)
        parts = [self.chunks[k].take(rows) for k, rows in picks.takes]
        gathered = pa.concat_arrays(parts).cast(kind)
        return gathered if picks.back is None else gathered.take(picks.back)

    def _codes(self):
        """A coded column's codes (-1: null), one per row in arrival order in the smallest
        signed dtype, into its values made one dictionary for every chunk; made once."""
        made = self.__dict__.get("_made")
        if made is None:
            import pyarrow as pa

            unified = pa.chunked_array(self.chunks).unify_dictionaries()
            texts = unified.chunk(0).dictionary
            width = next(
                t for t in (np.int8, np.int16, np.int32, np.int64) if len(texts) < np.iinfo(t).max
            )
            codes = np.concatenate(
                [np.asarray(c.indices.fill_null(-1)).astype(width) for c in unified.chunks]
            )
            made = self.__dict__["_made"] = (codes, texts)
        return made

    def lengths(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.chunks)

    def values(self) -> np.ndarray:
        """Every cell in arrival order, as an object array (ints as int64 for INTS)."""
        if self.objects is not None:
            out = np.empty(len(self.objects), dtype=object)
            out[:] = self.objects
            return out
        if self.name in INTS:
            parts = [c.to_numpy(zero_copy_only=False) for c in self.chunks]
            return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
        out = np.empty(sum(len(c) for c in self.chunks), dtype=object)
        start = 0
        for chunk in self.chunks:  # a chunk at a time: the cells are never held twice
            if self.name in LISTS:
                out[start : start + len(chunk)] = _cells(chunk.to_pylist())
            else:
                out[start : start + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
            start += len(chunk)
        return out


class _Picks:
    """Which rows of which chunk hold some positions (row numbers in arrival order), and
    how to put the rows taken chunk by chunk back in the positions' order (`back`, None
    when they already are): made once per batch for every column (they are chunked
    alike)."""

    def __init__(self, lengths: tuple[int, ...], positions: np.ndarray):
        import pyarrow as pa

        self.indices = positions
        sizes = np.array(lengths, dtype=np.int64)
        starts = np.cumsum(sizes) - sizes
        which = np.searchsorted(starts, positions, side="right") - 1
        order = np.argsort(which, kind="stable")
        sorted_which = which[order]
        edges = np.flatnonzero(np.diff(sorted_which)) + 1
        firsts = np.concatenate([[0], edges]).astype(np.int64)
        self.takes = [
            (int(sorted_which[f]), pa.array(positions[group] - starts[sorted_which[f]]))
            for f, group in zip(firsts.tolist(), np.split(order, edges), strict=True)
            if len(group)
        ]
        in_order = not len(order) or bool((which[1:] >= which[:-1]).all())
        self.back = None
        if not in_order:
            back = np.empty(len(positions), dtype=np.int64)
            back[order] = np.arange(len(positions))
            self.back = pa.array(back)


def _values(name: str, parts: list[Any]) -> np.ndarray:
    """A column's plain Arrow chunks as one array, as `_Column.values` makes it."""
    if name in INTS:
        arrays = [c.to_numpy(zero_copy_only=False) for c in parts]
        return np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int64)
    out = np.empty(sum(len(c) for c in parts), dtype=object)
    start = 0
    for chunk in parts:
        cells = _cells(chunk.to_pylist()) if name in LISTS else chunk.to_numpy(zero_copy_only=False)
        out[start : start + len(chunk)] = cells
        start += len(chunk)
    return out


def _cells(values: list[Any]) -> np.ndarray:
    """An object array holding `values` as they are (lists stay lists, not sub-arrays)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _kind(name: str):
    """The Arrow type a column's cells are held in."""
    import pyarrow as pa

    if name in INTS:
        return pa.int64()
    if name in LISTS:
        return pa.list_(pa.int64())
    return pa.string()


def _arrow(name: str, values: list[Any]):
    """`values` as an Arrow array of the column's type, or None when they do not fit it."""
    import pyarrow as pa

    kind = _kind(name)
    if kind == pa.string() and name not in TEXT:
        if not all(v is None or type(v) is str for v in values):
            return None  # a passthrough column of other cells
    pool = pa.system_memory_pool()  # jemalloc kept ~50% more RSS for these small arrays
    try:
        array = pa.array(values, kind, memory_pool=pool)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return None
    if name not in CODED:
        return array
    import pyarrow.compute as pc

    return pc.dictionary_encode(array, memory_pool=pool)


class DiffColumns:
    """Diff rows appended one at a time (`append`), held columnar (see the module doc).

    Parameters
    ----------
    columns : sequence of str
        The column names, in order (`DIFF_COLUMNS` then the passthrough ones).
    spill : bool
        Put each chunk in a temporary file (`SpilledDiff`) instead of memory, for as long
        as every column's cells fit its type (a column of other cells brings them back).

    Examples
    --------
    >>> rows = DiffColumns(["snapshot_id", "key"])
    >>> rows.append(["s1", "env"], position=1); rows.append(["s0", "team"], position=0)
    >>> [r["snapshot_id"] for r in rows.finish({}).records()]
    ['s0', 's1']
    """

    def __init__(self, columns: Sequence[str], *, spill: bool = False):
        self.columns = list(columns)
        self._store = [_Column(c) for c in self.columns]
        # spill: each chunk goes to a temporary file (`_Chunks`) while every cell is typed
        self._spill: _Chunks | None = _Chunks() if spill else None
        self._pending: list[list[Any]] = [[] for _ in self.columns]  # not yet arrays
        self._positions: list[np.ndarray] = []
        self._pending_positions: list[int] = []
        self._rows = 0

    def append(self, values: Sequence[Any], position: int | None = None) -> None:
        """One row (a cell per column); `position` orders it in the plan."""
        for column, value in zip(self._pending, values, strict=True):
            column.append(value)
        if position is not None:
            self._pending_positions.append(position)
        if len(self._pending[0]) >= CHUNK:
            self._flush()

    def extend(self, columns: Sequence[list[Any]], positions: np.ndarray | None = None) -> None:
        """Many rows, given column by column (a list of cells per column, all as long);
        `positions` orders them in the plan."""
        for pending, values in zip(self._pending, columns, strict=True):
            pending.extend(values)
        if positions is not None:
            self._pending_positions.extend(positions.tolist())
        if len(self._pending[0]) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        pending = len(self._pending[0])
        if pending:
            arrays = [
                None if column.objects is not None else _arrow(column.name, values)
                for column, values in zip(self._store, self._pending, strict=True)
            ]
            if self._spill is not None and all(a is not None for a in arrays):
                self._spill.put(arrays)
            else:
                self._unspill()
                for column, array, values in zip(self._store, arrays, self._pending, strict=True):
                    column.add(array, values)
            self._rows += pending
            self._pending = [[] for _ in self.columns]
        if self._pending_positions:
            self._positions.append(np.asarray(self._pending_positions, dtype=np.int64))
            self._pending_positions = []

    def _unspill(self) -> None:
        """Back to memory (a column has cells other than its type): the chunks spilled so
        far become the columns' chunks, and the rows are held from now on."""
        if self._spill is None:
            return
        spill, self._spill = self._spill, None
        for batch in spill.batches():
            for i, column in enumerate(self._store):
                column.chunks.append(batch.column(i))
        spill.close()

    def __len__(self) -> int:
        return self._rows + len(self._pending[0])

    def finish(self, summary: dict[str, Any]) -> Diff:
        """The rows (sorted into plan order when positions were given) and `summary`."""
        self._flush()
        if self._spill is not None:
            positions = np.concatenate(self._positions) if self._positions else None
            if positions is not None and len(positions) != self._rows:
                raise ValueError("either every row has a plan position or none has")
            self._positions = []
            return SpilledDiff(self.columns, self._spill, positions, self._rows, summary)
        order = None
        if self._positions:
            positions = np.concatenate(self._positions)
            if len(positions) != self._rows:
                raise ValueError("either every row has a plan position or none has")
            order = np.argsort(positions, kind="stable")
            self._positions = []
        return Diff(self.columns, self._store, order, self._rows, summary)


class Diff:
    """A finished plan diff: `summary` (`PlanSummary.as_dict()` and more) and the rows,
    one per (snapshot, change), in plan order, held columnar."""

    def __init__(self, columns, store, order, rows: int, summary: dict[str, Any]):
        self.columns = list(columns)
        self.summary = summary
        self._store = {c.name: c for c in store}
        self._order = order
        self._rows = rows

    def __len__(self) -> int:
        return self._rows

    def _slices(self, batch: int) -> Iterator[np.ndarray]:
        for start in range(0, self._rows, batch):
            if self._order is None:
                yield np.arange(start, min(start + batch, self._rows), dtype=np.int64)
            else:
                yield self._order[start : start + batch]

    def column(self, name: str, *, batch: int = BATCH) -> Iterator[list[Any]]:
        """The cells of one column in plan order, a batch (list) at a time."""
        for positions in self._slices(batch):
            yield self._store[name].take(positions)

    def held(self, name: str) -> bool:
        """Whether column `name` holds Python cells (not all text: see `_Column`)."""
        return self._store[name].objects is not None

    def arrow_batches(self, *, batch: int = BATCH) -> Iterator[list[Any]]:
        """The rows in plan order a batch at a time, as one Arrow array per column (see
        `_Column.arrow`), or, for a column of Python cells, a list of them."""
        for positions in self._slices(batch):
            picks: dict[tuple[int, ...], _Picks] = {}  # by chunk lengths: one for all columns
            out = []
            for name in self.columns:
                column = self._store[name]
                if column.objects is not None:
                    out.append(column.take(positions))
                    continue
                lengths = column.lengths()
                if lengths not in picks:
                    picks[lengths] = _Picks(lengths, positions)
                out.append(column.arrow(picks[lengths]))
            yield out

    def records(self, columns: Sequence[str] | None = None, *, batch: int = BATCH):
        """The rows in plan order as dicts, made a batch at a time.

        Parameters
        ----------
        columns : sequence of str, optional
            Only these columns (default: all).
        batch : int
            Rows made at a time (memory stays at one batch).

        Returns
        -------
        iterator of dict
        """
        names = self.columns if columns is None else list(columns)
        for positions in self._slices(batch):
            cells = [self._store[c].take(positions) for c in names]
            for values in zip(*cells, strict=True):
                yield dict(zip(names, values, strict=True))

    def runs(self, name: str = "snapshot_id") -> int:
        """How many runs of equal consecutive cells `name` has (snapshots shown)."""
        count, last = 0, object()
        for cells in self.column(name):
            if not cells:
                continue
            array = _cells(cells)
            count += int(np.count_nonzero(array[1:] != array[:-1])) + (cells[0] != last)
            last = cells[-1]
        return count

    def frame(self):
        """The diff as a pandas DataFrame, each column in its dtype of the contract
        (`batchtag.record.kind_of`: ids and texts strings, scope ids Int64, rows lists);
        ``attrs["summary"]`` the summary. Columns are made one at a time."""
        import pandas as pd

        data = {}
        for name in self.columns:
            values = self._frame_values(name)
            data[name] = kind_of(name).conform(
                pd.Series(values, dtype=INT_DTYPES.get(name, object))
            )
            del values
        frame = pd.DataFrame(data, columns=self.columns)
        frame.attrs["summary"] = self.summary
        return frame

    def _frame_values(self, name: str) -> np.ndarray:
        """One column's values in plan order, for `frame`."""
        values = self._store[name].values()
        return values if self._order is None else values[self._order]


class _Chunks:
    """Record batches (a chunk of every column, as `_arrow` makes them) in an unlinked
    temporary file (`batchtag.memory.SpillFile`), each its own Arrow IPC stream (its
    dictionaries with it), read back in the order they were put: the rows of a large diff
    stay in the page cache, not in the process's memory."""

    def __init__(self):
        self._file = SpillFile("the plan's diff rows")
        self._where: list[tuple[int, int]] = []  # (offset, size) of each batch

    def put(self, arrays: Sequence[Any]) -> None:
        import pyarrow as pa

        batch = pa.RecordBatch.from_arrays(list(arrays), names=[str(i) for i in range(len(arrays))])
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        data = memoryview(sink.getvalue())
        self._where.append((self._file.write(data), len(data)))

    def __len__(self) -> int:
        return len(self._where)

    def get(self, k: int):
        """The `k`-th batch put."""
        import pyarrow as pa

        offset, size = self._where[k]
        with pa.ipc.open_stream(pa.py_buffer(self._file.read(offset, size))) as reader:
            return reader.read_next_batch()

    def batches(self) -> Iterator[Any]:
        return (self.get(k) for k in range(len(self._where)))

    def close(self) -> None:
        self._file.close()
        self._where = []


def _plain(array, kind):
    """A spilled column chunk in its plain type (a coded one decoded)."""
    import pyarrow as pa

    if pa.types.is_dictionary(array.type):
        array = array.dictionary.take(array.indices)
    return array if array.type == kind else array.cast(kind)


class SpilledDiff(Diff):
    """A `Diff` whose rows are in a temporary file (`DiffColumns(spill=True)`): read back a
    chunk at a time, in plan order, every time they are read.

    Rows that arrived out of plan order are first sorted into buckets of `BATCH` plan
    positions (one pass over the chunks, each bucket's pieces written to a second file);
    reading a bucket then gathers its pieces and puts them in order."""

    def __init__(self, columns, chunks: _Chunks, positions, rows: int, summary: dict[str, Any]):
        self.columns = list(columns)
        self.summary = summary
        self._rows = rows
        self._kinds = [_kind(c) for c in self.columns]
        self._chunks = chunks
        self._buckets: list[list[int]] | None = None  # piece numbers, per bucket of BATCH
        if positions is not None and len(positions) > 1:
            if not bool((positions[1:] >= positions[:-1]).all()):
                self._sort(positions)

    def _sort(self, positions: np.ndarray) -> None:
        import pyarrow as pa

        order = np.argsort(positions, kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order), dtype=np.int64)
        del order
        pieces = _Chunks()
        buckets: list[list[int]] = [[] for _ in range(-(-len(rank) // BATCH))]
        start = 0
        for batch in self._chunks.batches():
            ranks = rank[start : start + batch.num_rows]
            start += batch.num_rows
            which = ranks // BATCH
            grouped = np.argsort(which, kind="stable")
            edges = np.flatnonzero(np.diff(which[grouped])) + 1
            for group in np.split(grouped, edges):
                if len(group):
                    taken = batch.take(pa.array(group))
                    pieces.put([*taken.columns, pa.array(ranks[group])])
                    buckets[int(which[group[0]])].append(len(pieces) - 1)
        self._chunks.close()
        self._chunks, self._buckets = pieces, buckets

    def _batches(self, names: Sequence[str] | None = None) -> Iterator[list[Any]]:
        """The rows in plan order, a chunk at a time, as one plain Arrow array per column
        (of `names`, default all)."""
        import pyarrow as pa

        wanted = [self.columns.index(c) for c in (names or self.columns)]
        if self._buckets is None:
            for batch in self._chunks.batches():
                yield [_plain(batch.column(i), self._kinds[i]) for i in wanted]
            return
        for bucket in self._buckets:
            batches = [self._chunks.get(k) for k in bucket]
            if not batches:
                continue
            ranks = np.concatenate([b.column(len(self.columns)).to_numpy() for b in batches])
            order = pa.array(np.argsort(ranks, kind="stable"))
            yield [
                pa.concat_arrays([_plain(b.column(i), self._kinds[i]) for b in batches]).take(order)
                for i in wanted
            ]

    def _sized(self, names: Sequence[str] | None, batch: int) -> Iterator[list[Any]]:
        """`_batches` cut into `batch` rows each (the last one shorter), as `Diff` gives
        them: Parquet row groups are the same."""
        import pyarrow as pa

        carry = None
        for arrays in self._batches(names):
            if carry is not None:
                arrays = [pa.concat_arrays([c, a]) for c, a in zip(carry, arrays, strict=True)]
            size, start, carry = len(arrays[0]), 0, None
            while size - start >= batch:
                yield [a.slice(start, batch) for a in arrays]
                start += batch
            if start < size:
                carry = [a.slice(start) for a in arrays]
        if carry is not None:
            yield carry

    def column(self, name: str, *, batch: int = BATCH) -> Iterator[list[Any]]:
        for (array,) in self._sized([name], batch):
            yield array.to_pylist()

    def held(self, name: str) -> bool:
        return False

    def arrow_batches(self, *, batch: int = BATCH) -> Iterator[list[Any]]:
        return self._sized(None, batch)

    def records(self, columns: Sequence[str] | None = None, *, batch: int = BATCH):
        names = self.columns if columns is None else list(columns)
        for arrays in self._sized(names, batch):
            cells = [a.to_pylist() for a in arrays]
            for values in zip(*cells, strict=True):
                yield dict(zip(names, values, strict=True))

    def _frame_values(self, name: str) -> np.ndarray:
        return _values(name, [a for (a,) in self._batches([name])])
