"""CSV, JSON Lines and Parquet as objects, chosen by suffix; whole-file reads and writes."""

from __future__ import annotations

import contextvars
import csv
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from batchtag.errors import UsageError
from batchtag.tabular._append import RowAppender, _csv_line, write_all
from batchtag.tabular._kinds import ANY, Kind
from batchtag.tabular._readers import Record

PathLike = str | os.PathLike[str]
STDOUT = "-"  # as an output path: standard output
# What a table written to stdout is: CSV, or JSON Lines where every line printed must be a
# JSON object (the command line's --log-format json sets it for the command).
STDOUT_FORMAT: contextvars.ContextVar[str] = contextvars.ContextVar(
    "batchtag_stdout_format", default="csv"
)
WRITE_BATCH = 4096  # lines encoded and written at once by a whole write

# The csv module's limit is per process (128 KiB by default); a report cell (an API error
# message, a big tag set) may be larger, and a too-long cell must never end a read early.
csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))


def atomic_write(path: PathLike, data: str | bytes | Callable[[BinaryIO], None]) -> None:
    """Replace `path` with new content, atomically and durably.

    The content goes to ``<path>.tmp``, is flushed and fsync'ed, then renamed over `path`;
    the folder is fsync'ed too. A crash leaves either the old file or the new one.

    Parameters
    ----------
    path : str or PathLike
        The file to replace (its folder must exist).
    data : str, bytes or callable
        Text (written as UTF-8), bytes, or a function that writes to a binary file.

    Examples
    --------
    >>> atomic_write("summary.json", "{}\\n")  # doctest: +SKIP
    """
    target = Path(path)
    tmp = target.with_name(f"{target.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some filesystems do not open folders; the rename is done all the same
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class TextFormat:
    """Shared by the line-based formats."""

    name: str
    suffix: str
    appendable = True

    def open_rows(self, path: PathLike, columns: Sequence[str], kinds=None) -> RowAppender:
        """An appender at the end of `path` (created if missing; a CSV header is written
        for a new or empty file)."""
        return RowAppender(self, path, columns, kinds)

    def write(self, path: PathLike, columns: Sequence[str], records, kinds=None, meta=None):
        """Replace `path` with these records (atomically); `meta` is ignored."""
        encoders = self.encoders(list(columns), kinds or {})

        def dump(fh: BinaryIO) -> None:  # a batch of lines at a time: memory stays flat
            lines = [_csv_line(columns)] if self.name == "csv" else []
            for record in records:
                lines.append(self.line(columns, encoders, [record.get(c) for c in columns]))
                if len(lines) >= WRITE_BATCH:
                    fh.write("".join(lines).encode("utf-8"))
                    lines = []
            fh.write("".join(lines).encode("utf-8"))

        write_output(path, dump)

    def read(self, path: PathLike, kinds=None) -> tuple[list[str], list[Record]]:
        """Columns and records, cells converted back with each column's kind; a torn last
        line is dropped, other damage is an error naming the line."""
        columns: dict[str, None] = {}
        records = list(self.scan(path, kinds, columns))
        return list(columns), records

    def scan(self, path: PathLike, kinds=None, columns=None) -> Iterator[Record]:
        """The records one at a time, so memory stays flat; `columns` (a dict used as an
        ordered set) gets the columns as they become known."""
        from batchtag.tabular import _readers as readers

        scan = getattr(readers, f"scan_{self.name}")
        return scan(Path(path), kinds or {}, {} if columns is None else columns)


@dataclass(frozen=True)
class CsvFormat(TextFormat):
    """CSV: a header line, then one line per row; cells are text (`Kind.to_text`)."""

    def encoders(self, columns: Sequence[str], kinds) -> list[Callable[[Any], str]]:
        return [kinds.get(c, ANY).to_text for c in columns]

    def line(self, columns, encoders, values) -> str:
        return _csv_line([enc(v) for enc, v in zip(encoders, values, strict=True)])


@dataclass(frozen=True)
class JsonlFormat(TextFormat):
    """JSON Lines: one object per row; cells are JSON values (`Kind.to_json`)."""

    def encoders(self, columns: Sequence[str], kinds) -> list[Callable[[Any], Any]]:
        return [kinds.get(c, ANY).to_json for c in columns]

    def line(self, columns, encoders, values) -> str:
        from batchtag.model import json_text

        cells = {c: enc(v) for c, enc, v in zip(columns, encoders, values, strict=True)}
        return json_text(cells) + "\n"


@dataclass(frozen=True)
class ParquetFormat:
    """Parquet: typed columns (`Kind.arrow_type`); written whole, or in row groups."""

    name: str
    suffix: str
    appendable = False

    def write(self, path: PathLike, columns: Sequence[str], records, kinds=None, meta=None):
        """Replace `path` with these records (atomically); `meta` (JSON-able) is kept in
        the schema metadata under the key ``batchtag``."""
        table = self.table(columns, records, kinds or {}, meta)
        atomic_write(path, lambda fh: _write_table(table, fh))

    def open_rows(self, path: PathLike, columns: Sequence[str], kinds=None) -> ParquetRows:
        """A writer of row groups; the file appears (atomically) at `close()`."""
        return ParquetRows(self, Path(path), list(columns), kinds or {})

    def table(self, columns: Sequence[str], records, kinds, meta=None):
        import pyarrow as pa

        arrays = [kinds.get(c, ANY).to_arrow([r.get(c) for r in records]) for c in columns]
        table = pa.Table.from_arrays(arrays, names=list(columns))
        if meta is not None:
            table = table.replace_schema_metadata({"batchtag": json.dumps(meta)})
        return table

    read = TextFormat.read
    scan = TextFormat.scan

    def read_meta(self, path: PathLike) -> Any:
        """The ``batchtag`` schema metadata, or None."""
        import pyarrow.parquet as pq

        try:
            raw = (pq.read_schema(path).metadata or {}).get(b"batchtag")
            return json.loads(raw) if raw else None
        except Exception:  # an unreadable file simply has no metadata
            return None


class ParquetRows:
    """Writes a Parquet file in row groups, one per `write_rows` call, to ``<path>.tmp``;
    `close()` renames it into place. The column types come from the kinds (a column
    without one takes the type of the first batch)."""

    def __init__(self, fmt: ParquetFormat, path: Path, columns: list[str], kinds):
        self.format, self.path, self.columns, self.kinds = fmt, path, columns, kinds
        self._tmp = path.with_name(f"{path.name}.tmp")
        self._writer = None

    def write_rows(self, records: Iterable[Record]) -> None:
        """Write one row group."""
        import pyarrow.parquet as pq

        table = self.format.table(self.columns, list(records), self.kinds)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, table.schema)
        self._writer.write_table(table.cast(self._writer.schema))

    def close(self) -> None:
        """Finish the file and move it into place (an empty table if nothing came)."""
        if self._writer is None:
            self.write_rows([])
        self._writer.close()
        with open(self._tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(self._tmp, self.path)
        _fsync_folder(self.path.parent)


def _write_table(table, fh: BinaryIO) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, fh)


CSV = CsvFormat("csv", ".csv")
JSONL = JsonlFormat("jsonl", ".jsonl")
PARQUET = ParquetFormat("parquet", ".parquet")
FORMATS = {f.suffix: f for f in (CSV, JSONL, PARQUET)}
NAMED = {f.name: f for f in FORMATS.values()}


def write_output(path: PathLike, dump: Callable[[BinaryIO], None]) -> None:
    """`dump` the content to standard output when `path` is ``-``, else replace the file
    atomically (`atomic_write`)."""
    if is_stdout(path):
        sys.stdout.flush()  # text echoed before stays before the rows
        dump(sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        atomic_write(path, dump)


def is_stdout(path: PathLike | None) -> bool:
    """Whether an output path means standard output (``-``)."""
    return path is not None and os.fspath(path) == STDOUT


def table_format(path: PathLike, what: str = "file") -> CsvFormat | JsonlFormat | ParquetFormat:
    """The format object for `path`'s suffix (case-insensitive).

    Parameters
    ----------
    path : str or PathLike
        A path ending in ``.csv``, ``.jsonl`` or ``.parquet``.
    what : str
        What the file is, for the error message (``"report"``, ``"output"``).

    Returns
    -------
    CsvFormat, JsonlFormat or ParquetFormat

    Raises
    ------
    UsageError
        For any other suffix.

    Examples
    --------
    >>> table_format("inventory.PARQUET").name
    'parquet'
    >>> table_format("-").name  # stdout: CSV (JSON Lines under --log-format json)
    'csv'
    """
    if is_stdout(path):
        return NAMED[STDOUT_FORMAT.get()]
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        names = ", ".join(FORMATS)
        raise UsageError(
            f"{what} {str(path)!r}: unknown format {suffix or '(no extension)'!r}; "
            f"use a path ending in {names.rsplit(', ', 1)[0]} or {names.rsplit(', ', 1)[1]}"
        ) from None


def write_table(path: PathLike, columns: Sequence[str], records, kinds=None, meta=None) -> None:
    """Write a whole table in the format of `path`'s suffix, atomically.

    Parameters
    ----------
    path : str or PathLike
        Target; its suffix picks the format.
    columns : sequence of str
        Column order.
    records : iterable of dict
        Rows; a missing column is an empty cell.
    kinds : mapping of str to Kind, optional
        How each column is stored (default: `ANY`).
    meta : dict, optional
        Kept in a Parquet file's schema metadata; ignored by the text formats.

    Examples
    --------
    >>> write_table("plan.csv", ["snapshot_id"], [{"snapshot_id": "x"}])  # doctest: +SKIP
    """
    table_format(path).write(path, columns, list(records), kinds, meta)


def read_table(path: PathLike, kinds=None) -> tuple[list[str], list[Record]]:
    """Columns and records of a table in the format of `path`'s suffix.

    Raises
    ------
    UsageError
        Naming the line (text formats) of any row that cannot be read, except a torn last
        line, which is dropped (a crash mid-write leaves one).
    """
    return table_format(path).read(path, kinds)


__all__ = [
    "CSV",
    "FORMATS",
    "JSONL",
    "PARQUET",
    "STDOUT",
    "STDOUT_FORMAT",
    "Kind",
    "ParquetRows",
    "is_stdout",
    "write_output",
    "RowAppender",
    "atomic_write",
    "read_table",
    "table_format",
    "write_all",
    "write_table",
]
