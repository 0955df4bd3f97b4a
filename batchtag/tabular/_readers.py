"""Reading tables back: every row or a one-line error naming the line.

The one exception is a torn last line, which a crash in the middle of an append leaves;
it is dropped. A spreadsheet's re-save is read as the file it was: a UTF-8 byte order
mark is ignored and CRLF line ends are fine.

Each format has a `scan_*` generator that streams the file a row at a time: memory stays
flat however long the file is.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from batchtag.errors import UsageError
from batchtag.tabular._kinds import ANY, Kind

Record = dict[str, Any]


def read_error(path: str | os.PathLike, line: int | None, problem: object) -> UsageError:
    """The one-line error for an unreadable table."""
    where = f"{path}, line {line}" if line is not None else str(path)
    return UsageError(f"cannot read {where}: {problem}")


ENCODING = "utf-8-sig"  # a byte order mark, if any, is not part of the first column's name
CHUNK = 1 << 20  # bytes decoded at once when checking a file is UTF-8
BATCH = 8192  # Parquet rows converted at once


def _text(path: Path) -> str:
    # newline="": a "\r" inside a quoted cell must reach the csv reader as written.
    try:
        with open(path, encoding=ENCODING, newline="") as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise read_error(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _check_utf8(path: Path) -> bool:
    """Raise the error of `_text` if `path` is not UTF-8 (read in chunks: memory stays flat);
    True when the file ends with a line end."""
    decoder = codecs.getincrementaldecoder(ENCODING)()
    last = b""
    with open(path, "rb") as fh:
        try:
            while chunk := fh.read(CHUNK):
                decoder.decode(chunk)
                last = chunk[-1:]
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            _text(path)  # the whole file, for the message with the byte's position
            raise
    return last == b"\n"


def _csv_rows(path: Path, fh, complete: bool) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of every complete row; the torn last row is left out.

    Each row is held back until the next one parses: only then is it known not to be the
    torn last row (no line end, or an unterminated quote at the end of the file)."""
    reader = csv.reader(fh, strict=True)
    start, held = 1, None
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if "unexpected end of data" not in str(exc) or fh.read() != "":
                raise read_error(path, start, exc) from None
            complete = True  # the torn row was never returned; the held one is whole
            break
        if held is not None:
            yield held
        held = (start, cells) if cells else None
        start = reader.line_num + 1
    if held is not None and complete:
        yield held


def scan_csv(path: Path, kinds: Mapping[str, Kind], columns: dict[str, None]) -> Iterator[Record]:
    """The records of a CSV file, one at a time; `columns` gets the header on the first
    step. A missing or empty file has none."""
    if not path.exists():
        return
    complete = _check_utf8(path)
    with open(path, encoding=ENCODING, newline="") as fh:
        rows = _csv_rows(path, fh, complete)
        first = next(rows, None)
        if first is None:
            return
        header = first[1]
        columns.update(dict.fromkeys(header))
        decoders = [kinds.get(c, ANY).from_text for c in header]
        for line, cells in rows:
            if len(cells) != len(header):
                problem = f"{len(cells)} cells where the header has {len(header)}"
                raise read_error(path, line, problem)
            record: Record = {}
            for column, decode, cell in zip(header, decoders, cells, strict=True):
                try:
                    record[column] = decode(cell)
                except (ValueError, TypeError) as exc:
                    raise read_error(path, line, f"column {column!r}: {exc}") from None
            yield record


def scan_jsonl(path: Path, kinds: Mapping[str, Kind], columns: dict[str, None]) -> Iterator[Record]:
    """The records of a JSON Lines file, one at a time; `columns` grows as they come."""
    if not path.exists():
        return
    _check_utf8(path)
    # JSON text never holds a raw "\n"; other line breaks (U+2028, \x85, "\r") are content.
    with open(path, encoding=ENCODING, newline="\n") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                if not isinstance(raw, dict):
                    raise ValueError("not a JSON object")
                record = {c: kinds.get(c, ANY).from_json(v) for c, v in raw.items()}
            except (ValueError, TypeError) as exc:
                if not line.endswith("\n"):
                    break  # the last line has no line end: torn by a crash
                raise read_error(path, number, exc) from None
            columns.update(dict.fromkeys(record))
            yield record


def scan_parquet(
    path: Path, kinds: Mapping[str, Kind], columns: dict[str, None]
) -> Iterator[Record]:
    """The records of a Parquet file (written whole, so never torn), a batch at a time."""
    import pyarrow.parquet as pq

    if not path.exists():
        return
    try:
        parquet = pq.ParquetFile(path)
        names = list(parquet.schema_arrow.names)
        batches = parquet.iter_batches(batch_size=BATCH) if names else iter(())
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise read_error(path, None, f"not a readable Parquet file ({exc})") from None
    columns.update(dict.fromkeys(names))
    decoders = [kinds.get(c, ANY).from_arrow for c in names]
    while True:
        try:
            batch = next(batches, None)
        except Exception as exc:
            raise read_error(path, None, f"not a readable Parquet file ({exc})") from None
        if batch is None:
            return
        decoded = [
            [decode(v) for v in batch.column(i).to_pylist()] for i, decode in enumerate(decoders)
        ]
        for values in zip(*decoded, strict=True):
            yield dict(zip(names, values, strict=True))
