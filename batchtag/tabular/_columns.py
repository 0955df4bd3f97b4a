"""A few columns of a big table read with pyarrow, a batch at a time: no Python object per
row and no cell of the other columns decoded (a resume reads a report's keys this way).

`read_columns` gives the columns asked for, typed, as Arrow record batches, and says where
the file's whole rows end: a crash can leave a torn last line, which the caller drops by
cutting the file there (`Columns.end`). It reads only what pyarrow reads exactly as the
row readers (`batchtag.tabular._readers`) do; anything else — a quoted cell torn by a
crash, a row with the wrong number of cells, a line that is not JSON, text that is not
UTF-8, a cell that is not of its column's type — raises `NotColumnar`, and the caller reads
the file with the row readers instead, which name the line of any damage.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

# Bytes parsed at once (a batch; a longer row is read by the row readers). pyarrow reads
# some dozens of blocks ahead: small blocks keep that small.
BLOCK = 1 << 19
CHUNK = 1 << 23  # bytes checked at once for quotes and UTF-8
TAIL = 1 << 16  # bytes read at once while looking back for the last line end


class NotColumnar(Exception):
    """pyarrow cannot read this file exactly as the row readers would: use them."""


@dataclass
class Columns:
    """What `read_columns` found.

    Attributes
    ----------
    header : list of str or None
        A CSV file's header (every column); None for JSON Lines and Parquet.
    size : int
        The file's size when it was read (0: no file).
    end : int
        Where its whole rows end: the bytes after `end` are a torn last line.
    newline : bool
        JSON Lines: the last row is whole but has no line end; one must be added before
        more rows are appended.
    batches : iterator of pyarrow.RecordBatch
        The columns asked for, in that order, typed; a `NotColumnar` may still come while
        they are read.
    """

    header: list[str] | None
    size: int
    end: int
    newline: bool = False
    batches: Iterator[Any] = field(default_factory=lambda: iter(()))


def read_columns(path: str | os.PathLike, fmt: str, types: dict[str, pa.DataType]) -> Columns:
    """Columns `types` (name -> Arrow type) of the table at `path` in format `fmt` ("csv",
    "jsonl" or "parquet"); a missing file has no rows.

    Raises
    ------
    NotColumnar
        pyarrow cannot read it as the row readers would (see the module docstring).
    """
    path = Path(path)
    if not path.exists():
        return Columns(None, 0, 0)
    reader = {"csv": _csv, "jsonl": _jsonl, "parquet": _parquet}[fmt]
    return reader(path, types)


def _last_line_end(path: Path, size: int) -> int:
    """The offset just past the file's last "\\n" (0 if it has none)."""
    with open(path, "rb") as fh:
        stop = size
        while stop > 0:
            start = max(0, stop - TAIL)
            fh.seek(start)
            at = fh.read(stop - start).rfind(b"\n")
            if at >= 0:
                return start + at + 1
            stop = start
    return 0


def _quotes_and_text(path: Path, end: int) -> int:
    """The number of double quotes in the first `end` bytes, which must be UTF-8 text."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    quotes = 0
    with open(path, "rb") as fh:
        left = end
        while left > 0:
            chunk = fh.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            quotes += chunk.count(b'"')
            if chunk.isascii() and not decoder.getstate()[0]:
                continue  # ASCII is UTF-8 (and no sequence was cut at the last chunk's end)
            try:
                decoder.decode(chunk, final=left <= 0)
            except UnicodeDecodeError:
                raise NotColumnar("not UTF-8 text") from None
    return quotes


def _csv(path: Path, types: dict[str, pa.DataType]) -> Columns:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    size = path.stat().st_size
    # A last line without its line end is torn (the row readers drop it too); a line end
    # inside an open quote means a quoted cell was torn: the row readers find where it began.
    end = size if size == 0 or _ends_line(path, size) else _last_line_end(path, size)
    if _quotes_and_text(path, end) % 2:
        raise NotColumnar("a quoted cell is not closed")
    header = _csv_header(path)
    if header is None:
        return Columns(None, size, end)
    if any(name not in header for name in types) or len(set(header)) != len(header):
        raise NotColumnar("not the expected columns")

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            with pa.OSFile(str(path)) as source:
                reader = pacsv.open_csv(
                    source.get_stream(0, end),
                    read_options=pacsv.ReadOptions(use_threads=False, block_size=BLOCK),
                    parse_options=pacsv.ParseOptions(newlines_in_values=True),
                    convert_options=pacsv.ConvertOptions(
                        include_columns=list(types),
                        column_types={name: pa.string() for name in types},
                        strings_can_be_null=False,
                    ),
                )
                for batch in reader:
                    yield _typed(batch, types, text=True)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise NotColumnar(str(exc)) from None

    return Columns(header, size, end, batches=batches())


def _ends_line(path: Path, size: int) -> bool:
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        return fh.read(1) == b"\n"


def _csv_header(path: Path) -> list[str] | None:
    """The first non-blank record (None: the file has none), as the row readers read it."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        try:
            for record in csv.reader(fh, strict=True):
                if record:
                    return record
        except (csv.Error, UnicodeDecodeError) as exc:
            raise NotColumnar(str(exc)) from None
    return None


def _jsonl(path: Path, types: dict[str, pa.DataType]) -> Columns:
    import pyarrow as pa
    import pyarrow.json as pajson

    size = path.stat().st_size
    end = _last_line_end(path, size)
    last = None
    if end < size:  # no line end after the last row: whole if it reads, else torn
        with open(path, "rb") as fh:
            fh.seek(end)
            try:
                last = json.loads(fh.read())
            except ValueError:
                last = None
        if not isinstance(last, dict):
            last = None
    _quotes_and_text(path, end)
    schema = pa.schema([(name, kind) for name, kind in types.items()])

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            if end:
                with pa.OSFile(str(path)) as source:
                    reader = pajson.open_json(
                        source.get_stream(0, end),
                        read_options=pajson.ReadOptions(use_threads=False, block_size=BLOCK),
                        parse_options=pajson.ParseOptions(
                            explicit_schema=schema, unexpected_field_behavior="ignore"
                        ),
                    )
                    for batch in reader:
                        yield _typed(batch, types, text=False)
            if last is not None:
                row = {name: last.get(name) for name in types}
                yield pa.RecordBatch.from_pylist([row], schema=schema)
        except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
            raise NotColumnar(str(exc)) from None

    return Columns(None, size, size if last is not None else end, last is not None, batches())


def _parquet(path: Path, types: dict[str, pa.DataType]) -> Columns:
    import pyarrow.parquet as pq

    size = path.stat().st_size
    try:
        parquet = pq.ParquetFile(path)
        names = set(parquet.schema_arrow.names)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise NotColumnar(str(exc)) from None
    if any(name not in names for name in types):
        raise NotColumnar("not the expected columns")

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for batch in parquet.iter_batches(columns=list(types), use_threads=False):
                yield _typed(batch, types, text=False)
        except Exception as exc:
            raise NotColumnar(str(exc)) from None

    return Columns(None, size, size, batches=batches())


def _typed(batch: pa.RecordBatch, types: dict[str, pa.DataType], *, text: bool):
    """`batch` with each column cast to its type (CSV cells are text: an empty one is
    null, as the row readers read it)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = []
    for name, kind in types.items():
        column = batch.column(name)
        if text:
            column = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
        if column.type != kind:
            column = column.cast(kind)  # raises ArrowInvalid for a cell of another type
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=list(types))
