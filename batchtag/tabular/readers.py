"""Reading tables back: every row or a one-line error naming the line.

The one exception is a torn last line, which a crash in the middle of an append leaves;
it is dropped. A spreadsheet's re-save is read as the file it was: a UTF-8 byte order
mark is ignored and CRLF line ends are fine.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from batchtag.tabular import Record, read_error
from batchtag.tabular.kinds import ANY, Kind

ENCODING = "utf-8-sig"  # a byte order mark, if any, is not part of the first column's name


def _text(path: Path) -> str:
    # newline="": a "\r" inside a quoted cell must reach the csv reader as written.
    try:
        with open(path, encoding=ENCODING, newline="") as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise read_error(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of every complete row; the torn last row is left out.

    Each row is held back until the next one parses: only then is it known not to be the
    torn last row (no line end, or an unterminated quote at the end of the file)."""
    lines = io.StringIO(text, newline="")
    reader = csv.reader(lines, strict=True)
    start, held = 1, None
    complete = text.endswith("\n")
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if "unexpected end of data" not in str(exc) or lines.read() != "":
                raise read_error(path, start, exc) from None
            complete = True  # the torn row was never returned; the held one is whole
            break
        if held is not None:
            yield held
        held = (start, cells) if cells else None
        start = reader.line_num + 1
    if held is not None and complete:
        yield held


def read_csv(path: Path, kinds: Mapping[str, Kind]) -> tuple[list[str], list[Record]]:
    """Header and records of a CSV file; a missing or empty file has none."""
    if not path.exists():
        return [], []
    rows = _csv_rows(path, _text(path))
    first = next(rows, None)
    if first is None:
        return [], []
    header = first[1]
    decoders = [kinds.get(c, ANY).from_text for c in header]
    records: list[Record] = []
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
        records.append(record)
    return header, records


def read_jsonl(path: Path, kinds: Mapping[str, Kind]) -> tuple[list[str], list[Record]]:
    """Columns (in order of first appearance) and records of a JSON Lines file."""
    if not path.exists():
        return [], []
    text = _text(path)
    # JSON text never holds a raw "\n"; other line breaks (U+2028, \x85) are cell content.
    lines = text.split("\n")
    columns: dict[str, None] = {}
    records: list[Record] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            record = {c: kinds.get(c, ANY).from_json(v) for c, v in raw.items()}
        except (ValueError, TypeError) as exc:
            if number == len(lines):
                break  # the last line has no line end: torn by a crash
            raise read_error(path, number, exc) from None
        columns.update(dict.fromkeys(record))
        records.append(record)
    return list(columns), records


def read_parquet(path: Path, kinds: Mapping[str, Kind]) -> tuple[list[str], list[Record]]:
    """Columns and records of a Parquet file (written whole, so never torn)."""
    import pyarrow.parquet as pq

    if not path.exists():
        return [], []
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise read_error(path, None, f"not a readable Parquet file ({exc})") from None
    columns = list(table.column_names)
    decoded: dict[str, list[Any]] = {}
    for column in columns:
        decode = kinds.get(column, ANY).from_arrow
        decoded[column] = [decode(v) for v in table.column(column).to_pylist()]
    records = [
        dict(zip(columns, values, strict=True)) for values in zip(*decoded.values(), strict=True)
    ]
    if not columns:
        records = []
    return columns, records
