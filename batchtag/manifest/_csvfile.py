"""CSV manifests: parsed by pyarrow with every column typed as text (no floats, no inference).

pyarrow streams the file, on one thread (less memory, and no slower on a busy machine); the
csv module only looks at the header, and at the whole file when a problem needs its line
numbers. Blank lines (before the header too) are skipped and
do not count as rows; a header-only file, with or without a final newline, has no rows.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from batchtag.errors import ManifestError, Problem
from batchtag.manifest._cells import column_type
from batchtag.manifest._model import Manifest, header_problems
from batchtag.record import unread_columns

HEAD_BYTES = 1 << 20  # the header must fit in the first megabyte
BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}
SAVE_AS_UTF8 = "save the file as UTF-8"
LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")  # as io.StringIO(newline="") splits


def load_csv_bytes(data: bytes, name: str) -> Manifest:
    """A CSV manifest held in memory (stdin)."""
    return load_csv(name, lambda: pa.BufferReader(pa.py_buffer(data)), lambda: data)


def load_csv(name: str, open_stream: Callable[[], Any], read_all: Callable[[], bytes]) -> Manifest:
    """Read a CSV manifest; `read_all` is only called when line numbers are needed."""
    try:
        with open_stream() as stream:
            head = stream.read(HEAD_BYTES)
    except (OSError, pa.ArrowException, EOFError) as exc:
        raise ManifestError([Problem(f"cannot read {name}: {exc}")]) from None
    header, header_lines, has_rows = _csv_header(head, name)
    named = _named_part(header)
    problems = header_problems(named) or _separator_problems(named)
    if problems:
        raise ManifestError(problems)
    columns = [c.strip() for c in named]
    if not has_rows and len(head) < HEAD_BYTES:
        return Manifest(pd.DataFrame({c: pd.Series([], dtype=str) for c in columns}), "csv")
    spare = [f"\0spare {n}" for n in range(len(named) + 1, len(header) + 1)]
    invalid: list[int] = []
    skip = unread_columns(columns)
    table = _parse(name, open_stream, read_all, [*columns, *spare], header_lines, invalid, skip)
    frame = table.to_pandas()
    del table
    manifest = Manifest(frame, "csv", total_rows=len(frame))
    index = LineIndex(read_all)
    manifest.line_finder = index.lines
    if invalid:
        # pyarrow does not say where the ragged rows were: find them with the csv module
        records = index.records()
        manifest.problems, manifest.row_numbers = _ragged(records, len(header))
        manifest.total_rows = len(records)
    if spare:
        manifest.problems.extend(_filled_spare(manifest, spare))
        manifest.frame = frame.drop(columns=spare)
    return manifest


def _named_part(header: list[str]) -> list[str]:
    """The header up to its last named cell: a spreadsheet often adds empty columns at the
    end ("a,b,,"), which are ignored while their cells are empty too."""
    last = max((i for i, cell in enumerate(header) if cell.strip()), default=len(header) - 1)
    return header[: last + 1]


def _filled_spare(manifest: Manifest, spare: list[str]) -> list[Problem]:
    problems = []
    for column in spare:
        filled = np.flatnonzero((manifest.frame[column] != "").to_numpy())
        if len(filled):
            number = column.rsplit(" ", 1)[1]
            message = f"header cell {number} is empty but this row has a value under it"
            problems.append(Problem(message, row=int(manifest.rows()[filled[0]])))
    return problems


def _parse(name, open_stream, read_all, header, header_lines, invalid, skip=()) -> pa.Table:
    def on_invalid(row: Any) -> str:
        invalid.append(row.actual_columns)
        return "skip"

    try:
        with open_stream() as stream:
            return pacsv.read_csv(
                stream,
                read_options=pacsv.ReadOptions(
                    column_names=header, skip_rows=header_lines, use_threads=False
                ),
                parse_options=pacsv.ParseOptions(
                    newlines_in_values=True, invalid_row_handler=on_invalid
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: column_type(c) for c in header},
                    include_columns=[c for c in header if c not in skip],
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
    except (OSError, EOFError, pa.ArrowException) as exc:
        bad_lines = _undecodable_lines(read_all()) if "UTF8" in str(exc) else []
        if bad_lines:
            message = f"not valid UTF-8 text ({SAVE_AS_UTF8})"
            raise ManifestError([Problem(message, line=n) for n in bad_lines]) from None
        raise ManifestError([Problem(f"cannot parse {name} as CSV: {exc}")]) from None


def _csv_header(head: bytes, name: str) -> tuple[list[str], int, bool]:
    """The first non-blank record of the file's first megabyte, the number of lines up to
    its end (pyarrow skips lines, not records), and whether any record follows it."""
    text = _head_text(head)
    csv.field_size_limit(2**31 - 1)
    reader = csv.reader(_lines(text))
    for record in reader:
        if record:
            lines = reader.line_num
            _check_quotes_closed(text, record)
            return record, lines, any(reader)
    raise ManifestError([Problem(f"{name} is empty: a manifest needs a header row", line=1)])


def _check_quotes_closed(text: str, header: list[str]) -> None:
    """Refuse a header whose quote is never closed: the csv module would read the rest of
    the file into its last cell, and the manifest would have a strange column and no rows."""
    reader = csv.reader(_lines(text), strict=True)
    start = 1
    try:
        for record in reader:
            if record:
                return
            start = reader.line_num + 1
    except csv.Error as error:
        if str(error) != "unexpected end of data":  # another oddity: read as before
            return
    cell = header[-1].splitlines()[0] if header[-1].strip() else header[-1]
    message = (
        f'header cell {len(header)} ("{cell}) opens a quote that is never closed: close it '
        "or remove it (as it is, every line after it is part of the header)"
    )
    raise ManifestError([Problem(message, line=start)])


def _lines(text: str) -> Iterator[str]:
    """The lines of `text` (ended by \\n, \\r\\n or \\r, kept), made one at a time as the csv
    reader asks for them: a StringIO of the whole first megabyte takes 4 bytes a character."""
    return (match.group() for match in LINE.finditer(text))


def _head_text(head: bytes) -> str:
    if head.startswith(UTF16_BOMS) or head.count(b"\x00") > len(head) // 4 > 0:
        raise ManifestError([Problem(f"the file looks like UTF-16 text: {SAVE_AS_UTF8}")])
    if head.startswith(BOM):
        head = head[len(BOM) :]
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if b"\n" not in head[: exc.start]:
            message = f"the header is not valid UTF-8 text ({SAVE_AS_UTF8})"
            raise ManifestError([Problem(message, line=1)]) from None
        return head[: exc.start].decode("utf-8")


def _separator_problems(header: list[str]) -> list[Problem]:
    """A file separated by something other than commas reads as one wide column."""
    if "snapshot_id" in (c.strip() for c in header):
        return []
    for separator, plural in SEPARATORS.items():
        if any(separator in cell for cell in header):
            return [
                Problem(
                    f"the file looks separated by {plural}, not commas: use a comma as the"
                    " separator (in a spreadsheet, save as 'CSV UTF-8 (comma delimited)')",
                    line=1,
                )
            ]
    return []


class LineIndex:
    """Where each CSV data record starts; computed only when a problem needs a line.

    For files the bytes are read again then, so they are not held in memory meanwhile."""

    def __init__(self, read: Callable[[], bytes]):
        self.read = read
        self._records: list[tuple[int, int]] | None = None

    def records(self) -> list[tuple[int, int]]:
        """(first line, field count) of every data record."""
        if self._records is None:
            data = self.read()
            if data.startswith(BOM):
                data = data[len(BOM) :]
            self._records = _csv_records(data)
        return self._records

    def lines(self) -> np.ndarray:
        """The first line of every data record."""
        return np.array([line for line, _ in self.records()], dtype=np.int64)


def _undecodable_lines(data: bytes) -> list[int]:
    try:
        data.decode("utf-8")
        return []
    except UnicodeDecodeError:
        pass
    bad = []
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(number)
    return bad


def _csv_records(data: bytes) -> list[tuple[int, int]]:
    """(first line, field count) of every data record, blank lines skipped like pyarrow does."""
    csv.field_size_limit(2**31 - 1)
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    records = []
    last = 0
    header_seen = False
    for record in reader:
        start = last + 1
        last = reader.line_num
        if not record:
            continue
        if not header_seen:
            header_seen = True
            continue
        records.append((start, len(record)))
    return records


def _ragged(records: list[tuple[int, int]], width: int) -> tuple[list[Problem], np.ndarray]:
    problems = []
    kept = []
    for row, (line, count) in enumerate(records, start=1):
        if count == width:
            kept.append(row)
        else:
            problems.append(
                Problem(f"has {count} fields, the header has {width}", row=row, line=line)
            )
    return problems, np.array(kept, dtype=np.int64)
