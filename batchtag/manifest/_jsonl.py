"""JSON Lines manifests: one object a line; blank lines are skipped.

An object that names a key twice (`tags` twice, or one tag twice inside `tags`) is refused
as ambiguous, naming its line: JSON parsers disagree on which copy wins.
"""

from __future__ import annotations

import io
import json
from array import array
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from batchtag.errors import ManifestError, Problem
from batchtag.manifest._cells import held_column, python_cell
from batchtag.manifest._csvfile import BOM, SAVE_AS_UTF8, UTF16_BOMS
from batchtag.manifest._model import Manifest
from batchtag.model import TAGS_COLUMN
from batchtag.record import unread_columns


class DuplicateKey(ValueError):
    """An object names the same key twice."""


CHUNK_ROWS = 65_536  # records held as Python objects at once; then they become columns


def load_jsonl(data: bytes | BinaryIO) -> Manifest:
    """Read JSON Lines (bytes, or a binary file read a line at a time); `"tags": null` is
    kept as "null" (it clears the tags).

    Records become Arrow columns a chunk at a time, so only one chunk of them is ever held
    as Python objects."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    problems: list[Problem] = []
    columns = _Columns()
    lines, rows = array("q"), array("q")  # of the good records, 8 bytes each
    row, first = 0, b""
    for number, raw in enumerate(_lines(stream), start=1):
        if number == 1:
            raw = _first_line(raw)
        if not raw.strip():
            continue
        row += 1
        first = first or raw.lstrip()[:1]
        value, problem = _parse(raw)
        if problem is not None:
            problems.append(Problem(problem, row=row, line=number))
            continue
        skip = unread_columns(map(str, value))
        columns.add({str(k): _json_cell(str(k), v) for k, v in value.items() if str(k) not in skip})
        lines.append(number)
        rows.append(row)
    if problems and not len(rows):  # nothing readable: the column checks would only add noise
        if first in (b"[", b"{") and len(problems) > 1:
            message = "the file is one JSON document, not JSON Lines (one object a line)"
            raise ManifestError([Problem(message, line=1)])
        raise ManifestError(problems)
    good = np.frombuffer(rows, dtype=np.int64) if len(rows) else np.zeros(0, dtype=np.int64)
    all_lines = np.zeros(row, dtype=np.int64)
    all_lines[good - 1] = np.frombuffer(lines, dtype=np.int64) if len(lines) else []
    for p in problems:
        all_lines[p.row - 1] = p.line
    return Manifest(
        columns.frame(),
        "jsonl",
        problems=problems,
        row_numbers=good.copy(),
        line_finder=lambda: all_lines,
        total_rows=row,
    )


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    """The lines of a binary stream, without their ends, split like bytes.splitlines()
    (at \\n, \\r\\n and a lone \\r), one at a time."""
    for piece in stream:
        yield from piece.splitlines() or [b""]


def _first_line(raw: bytes) -> bytes:
    if raw.startswith(UTF16_BOMS):
        raise ManifestError([Problem(f"the file looks like UTF-16 text: {SAVE_AS_UTF8}")])
    return raw[len(BOM) :] if raw.startswith(BOM) else raw


class _Columns:
    """Text columns in first-seen order, made from records a chunk at a time; a record
    without a column has "" in it."""

    def __init__(self) -> None:
        self.chunks: dict[str, list[pa.Array]] = {}
        self.rows = 0
        self.pending: list[dict[str, str]] = []

    def add(self, record: dict[str, str]) -> None:
        self.pending.append(record)
        if len(self.pending) >= CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        for record in self.pending:
            for name in record:
                if name not in self.chunks:  # earlier rows did not have it: blank there
                    self.chunks[name] = [_blank(name, self.rows)] if self.rows else []
        for name, chunks in self.chunks.items():
            cells = pa.array([record.get(name, "") for record in self.pending], pa.string())
            chunks.append(held_column(name, cells))
        self.rows += len(self.pending)
        self.pending = []

    def frame(self) -> pd.DataFrame:
        self._flush()
        if not self.chunks:
            return pd.DataFrame()
        table = pa.table({name: pa.chunked_array(chunks) for name, chunks in self.chunks.items()})
        self.chunks = {}
        return table.to_pandas()


def _blank(name: str, rows: int) -> pa.Array:
    return held_column(name, pc.fill_null(pa.nulls(rows, pa.string()), ""))


def _parse(raw: bytes) -> tuple[Any, str | None]:
    """The object on one line, or why there is none."""
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys)
    except UnicodeDecodeError:
        return None, f"not valid UTF-8 text ({SAVE_AS_UTF8})"
    except DuplicateKey as exc:
        return None, f"the key {exc} appears twice in one object: which one is meant is ambiguous"
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg}"
    if not isinstance(value, dict):
        return None, "a JSON Lines record must be an object"
    return value, None


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` for json.loads: a dict, or DuplicateKey if a key repeats."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(repr(key))
        result[key] = value
    return result


def _json_cell(column: str, value: Any) -> str:
    if value is None:
        return "null" if column == TAGS_COLUMN else ""  # JSON null in `tags` clears them
    return python_cell(value)
