"""Loading a manifest into a frame of strings, and telling which form it is written in.

Every cell comes out as text ("" for a missing value), so IDs are never read through float.
Text files remember where each data row starts, so problems can name the file line.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from batchtag.errors import ManifestError, Problem

FORMS = ("long", "wide", "json")
ID_COLUMNS = ("snapshot_id", "project_id", "region_id")
LONG_COLUMNS = ("op", "key", "value")
TAG_PREFIX = "tag:"
EXACT_FLOAT_LIMIT = 2**53  # every integer below this is exact in a float64
SUFFIXES = ".csv, .csv.gz, .parquet, .jsonl, .ndjson"


@dataclass
class Manifest:
    """A manifest read into memory: every column is text, "" where a value is missing."""

    frame: pd.DataFrame
    kind: str  # csv, jsonl, parquet, frame
    problems: list[Problem] = field(default_factory=list)
    # 1-based data row of each frame row; None means 1..len(frame)
    row_numbers: np.ndarray | None = None
    # returns the file line of every data row (index 0 = row 1); None when lines mean nothing
    line_finder: Callable[[], np.ndarray] | None = None
    total_rows: int = 0

    def rows(self) -> np.ndarray:
        if self.row_numbers is None:
            return np.arange(1, len(self.frame) + 1)
        return self.row_numbers

    def with_lines(self, problems: list[Problem]) -> list[Problem]:
        """Fill in `line` for problems that name a row (only computed when there are some)."""
        if self.line_finder is None or not any(
            p.row is not None and p.line is None for p in problems
        ):
            return problems
        lines = self.line_finder()
        out = []
        for p in problems:
            if p.row is not None and p.line is None and 0 < p.row <= len(lines):
                p = Problem(p.message, row=p.row, column=p.column, line=int(lines[p.row - 1]))
            out.append(p)
        return out


def load_manifest(source: Any) -> Manifest:
    """Read a path, "-" (CSV on stdin) or a DataFrame. Raises ManifestError when unreadable."""
    if isinstance(source, pd.DataFrame):
        return load_frame(source)
    if isinstance(source, str) and source == "-":
        return load_csv_bytes(sys.stdin.buffer.read(), "<stdin>")
    if not isinstance(source, (str, Path)):
        raise ManifestError(
            [Problem(f"a manifest is a path, '-' or a DataFrame, not {type(source).__name__}")]
        )
    path = Path(source)
    name = path.name.lower()
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ManifestError([Problem(f"manifest file {str(path)!r} {what}")])
    if name.endswith(".csv"):
        return load_csv(str(path), lambda: pa.input_stream(str(path)), path.read_bytes)
    if name.endswith(".csv.gz"):
        return load_csv(
            str(path),
            lambda: pa.input_stream(str(path), compression="gzip"),
            lambda: _gunzip(path),
        )
    if name.endswith(".parquet"):
        return load_parquet(path)
    if name.endswith((".jsonl", ".ndjson")):
        return load_jsonl(path.read_bytes())
    raise ManifestError([Problem(f"unknown manifest type {path.name!r}: use one of {SUFFIXES}")])


def _gunzip(path: Path) -> bytes:
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise ManifestError([Problem(f"{path.name} is not a readable gzip file: {exc}")]) from None


# --- CSV -----------------------------------------------------------------------------------


def load_csv_bytes(data: bytes, name: str) -> Manifest:
    return load_csv(name, lambda: pa.BufferReader(pa.py_buffer(data)), lambda: data)


def load_csv(name: str, open_stream: Callable[[], Any], read_all: Callable[[], bytes]) -> Manifest:
    """Parse CSV with pyarrow, every column typed as string (no inference, no floats).

    pyarrow streams the file; `read_all` is only used to find lines when something is wrong."""
    try:
        with open_stream() as stream:
            head = stream.read(1 << 20)
    except (OSError, pa.ArrowException, EOFError) as exc:
        raise ManifestError([Problem(f"cannot read {name}: {exc}")]) from None
    header = _csv_header(head)
    if not header:
        raise ManifestError([Problem(f"{name} is empty: a manifest needs a header row", line=1)])
    problems = _header_problems(header)
    if problems:
        raise ManifestError(problems)
    invalid: list[int] = []

    def on_invalid(row: Any) -> str:
        invalid.append(row.actual_columns)
        return "skip"

    try:
        with open_stream() as stream:
            table = pacsv.read_csv(
                stream,
                read_options=pacsv.ReadOptions(column_names=header, skip_rows=1),
                parse_options=pacsv.ParseOptions(
                    newlines_in_values=True, invalid_row_handler=on_invalid
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in header},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
    except (OSError, EOFError, pa.ArrowException) as exc:
        bad_lines = _undecodable_lines(read_all()) if "UTF8" in str(exc) else []
        if bad_lines:
            message = "not valid UTF-8 text (save the file as UTF-8)"
            raise ManifestError([Problem(message, line=n) for n in bad_lines]) from None
        raise ManifestError([Problem(f"cannot parse {name} as CSV: {exc}")]) from None
    frame = table.to_pandas()
    del table
    frame.columns = [c.strip() for c in header]
    manifest = Manifest(frame, "csv", total_rows=len(frame))
    index = LineIndex(read_all)
    manifest.line_finder = index.lines
    if invalid:
        # pyarrow does not say where the ragged rows were: find them with the csv module
        records = index.records()
        manifest.problems, manifest.row_numbers = _ragged(records, len(header))
        manifest.total_rows = len(records)
    return manifest


class LineIndex:
    """Where each CSV data record starts; computed only when a problem needs a line.

    For files the bytes are read again then, so they are not held in memory meanwhile."""

    def __init__(self, read: Callable[[], bytes]):
        self.read = read
        self._records: list[tuple[int, int]] | None = None

    def records(self) -> list[tuple[int, int]]:
        if self._records is None:
            data = self.read()
            if data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            self._records = _csv_records(data)
        return self._records

    def lines(self) -> np.ndarray:
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


def _reader(data: bytes) -> Any:
    csv.field_size_limit(2**31 - 1)
    return csv.reader(io.StringIO(data.decode("utf-8"), newline=""))


def _csv_header(head: bytes) -> list[str]:
    """The first record of the file's first megabyte."""
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if b"\n" not in head[: exc.start]:
            raise ManifestError([Problem("the header is not valid UTF-8 text", line=1)]) from None
        text = head[: exc.start].decode("utf-8")
    csv.field_size_limit(2**31 - 1)
    for record in csv.reader(io.StringIO(text, newline="")):
        if record:
            return record
    return []


def _header_problems(header: list[str]) -> list[Problem]:
    problems = []
    seen: set[str] = set()
    for number, raw in enumerate(header, start=1):
        name = raw.strip()
        if not name:
            problems.append(
                Problem(f"header cell {number} is empty: every column needs a name", line=1)
            )
        elif name in seen:
            problems.append(Problem("duplicate column name", column=name, line=1))
        seen.add(name)
    return problems


def _csv_records(data: bytes) -> list[tuple[int, int]]:
    """(first line, field count) of every data record, blank lines skipped like pyarrow does."""
    reader = _reader(data)
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


# --- JSON Lines ----------------------------------------------------------------------------


def load_jsonl(data: bytes) -> Manifest:
    """One JSON object a line; blank lines are skipped. `"tags": null` is kept as "null"."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    problems: list[Problem] = []
    records: list[dict[str, str]] = []
    lines: list[int] = []
    rows: list[int] = []
    row = 0
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        row += 1
        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            problems.append(Problem("not valid UTF-8 text", row=row, line=number))
            continue
        except json.JSONDecodeError as exc:
            problems.append(Problem(f"invalid JSON: {exc.msg}", row=row, line=number))
            continue
        if not isinstance(value, dict):
            problems.append(Problem("a JSON Lines record must be an object", row=row, line=number))
            continue
        records.append({str(k): _json_cell(str(k), v) for k, v in value.items()})
        lines.append(number)
        rows.append(row)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    frame = frame.fillna("").astype(str) if len(frame.columns) else frame
    all_lines = np.zeros(row, dtype=np.int64)
    all_lines[np.array(rows, dtype=np.int64) - 1] = lines
    for p in problems:
        all_lines[p.row - 1] = p.line
    return Manifest(
        frame,
        "jsonl",
        problems=problems,
        row_numbers=np.array(rows, dtype=np.int64),
        line_finder=lambda: all_lines,
        total_rows=row,
    )


def _json_cell(column: str, value: Any) -> str:
    if value is None:
        return "null" if column == "tags" else ""  # JSON null in `tags` clears them
    return python_cell(value)


def python_cell(value: Any) -> str:
    """Text for one Python value: ints exactly, whole floats below 2**53 as ints."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        value = float(value)
        if math.isnan(value):
            return ""
        if value.is_integer() and abs(value) < EXACT_FLOAT_LIMIT:
            return str(int(value))
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    return str(value)


# --- Parquet and DataFrames ----------------------------------------------------------------


def load_parquet(path: Path) -> Manifest:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ManifestError([Problem(f"cannot read {path.name} as Parquet: {exc}")]) from None
    names = list(table.column_names)
    problems = _header_problems(names)
    columns = {}
    for i, name in enumerate(names):
        columns[name.strip()] = text_column(name.strip(), table.column(i), problems)
    return _from_columns(columns, len(table), "parquet", problems)


def load_frame(df: pd.DataFrame) -> Manifest:
    """Rows are numbered by position (1-based), not by the DataFrame index."""
    names = [str(c) for c in df.columns]
    problems = _header_problems(names)
    columns = {}
    for i, name in enumerate(names):
        columns[name.strip()] = series_column(name.strip(), df.iloc[:, i], problems)
    return _from_columns(columns, len(df), "frame", problems)


def _from_columns(
    columns: dict[str, pa.ChunkedArray | pa.Array], length: int, kind: str, problems: list
) -> Manifest:
    frame = pa.table(columns).to_pandas() if columns else pd.DataFrame(index=range(length))
    if problems:
        raise ManifestError(problems)
    return Manifest(frame, kind, total_rows=length)


def series_column(name: str, series: pd.Series, problems: list[Problem]) -> pa.Array:
    if series.dtype == object:
        kind = pd.api.types.infer_dtype(series, skipna=True)
        if kind not in ("string", "empty"):
            values = [python_cell(v) if not _is_na(v) else "" for v in series]
            return pa.array(values, type=pa.string())
    try:
        array = pa.array(series, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        values = [python_cell(v) if not _is_na(v) else "" for v in series]
        return pa.array(values, type=pa.string())
    return text_column(name, array, problems)


def _is_na(value: Any) -> bool:
    if isinstance(value, dict | list | np.ndarray):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def text_column(name: str, array: Any, problems: list[Problem]) -> pa.Array:
    """Any Arrow column as non-null strings, without passing integers through float."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    kind = array.type
    if pa.types.is_dictionary(kind):
        array = array.dictionary_decode()
        kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = array
    elif pa.types.is_null(kind):
        text = pa.array([""] * len(array), type=pa.string())
    elif pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        text = pc.cast(array, pa.string())
    elif pa.types.is_floating(kind):
        text = _float_text(name, array, problems)
    elif pa.types.is_struct(kind) and name == "tags":
        problems.append(
            Problem(
                "a struct column cannot say which keys are meant (missing keys become null);"
                " store tags as JSON text or as a map column",
                column=name,
            )
        )
        text = pa.array([""] * len(array), type=pa.string())
    elif pa.types.is_map(kind):
        values = [
            None if v is None else json.dumps(dict(v), ensure_ascii=False)
            for v in array.to_pylist()
        ]
        text = pa.array(values, type=pa.string())
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        try:
            text = pc.cast(array, pa.string())
        except pa.ArrowInvalid:
            problems.append(Problem("binary column is not valid UTF-8 text", column=name))
            text = pa.array([""] * len(array), type=pa.string())
    else:
        text = pa.array(
            [None if v is None else python_cell(v) for v in array.to_pylist()], type=pa.string()
        )
    return pc.fill_null(text.cast(pa.string()), "")


def _float_text(name: str, array: pa.Array, problems: list[Problem]) -> pa.Array:
    """Whole floats below 2**53 become integer text; an ID column holding any other float is
    an error, since a large ID stored as float may already be rounded."""
    array = pc.cast(array, pa.float64())
    exact = pc.and_kleene(
        pc.equal(pc.floor(array), array), pc.less(pc.abs(array), float(EXACT_FLOAT_LIMIT))
    )
    exact = pc.fill_null(exact, True)
    if name in ID_COLUMNS and not pc.all(exact).as_py():
        problems.append(
            Problem(
                "holds floating-point numbers that are not exact integers (an integer column with"
                " blanks becomes float and rounds IDs above 2**53): store IDs as text or as a"
                " nullable integer (Int64) column",
                column=name,
            )
        )
    whole = pc.cast(pc.cast(pc.if_else(exact, array, 0.0), pa.int64()), pa.string())
    other = pc.cast(array, pa.string())
    return pc.if_else(exact, whole, other)


# --- Forms ---------------------------------------------------------------------------------


def detect_form(columns: list[str], form: str | None) -> tuple[str | None, list[Problem]]:
    """The form named by `form`, else the one whose columns are present."""
    if form is not None:
        if form not in FORMS:
            return None, [Problem(f"unknown form {form!r}: --form takes long, wide or json")]
        return form, []
    found = []
    if any(c in LONG_COLUMNS for c in columns):
        found.append("long")
    if any(c.startswith(TAG_PREFIX) for c in columns):
        found.append("wide")
    if "tags" in columns:
        found.append("json")
    if len(found) == 1:
        return found[0], []
    if not found and "name" in columns:
        return "wide", []  # only names change: a wide manifest without tag columns
    if not found:
        return None, [
            Problem(
                "cannot tell the manifest form: expected op/key/value columns (long), tag:<key>"
                " columns (wide) or a tags column (json); name the form with --form"
            )
        ]
    return None, [
        Problem(
            f"ambiguous manifest form: it has columns of the {' and '.join(found)} forms;"
            " choose one with --form"
        )
    ]


def form_columns(form: str, columns: list[str]) -> set[str]:
    """Columns a form reads; the rest are passthrough."""
    used = set(ID_COLUMNS)
    if form == "long":
        used.update(LONG_COLUMNS)
    elif form == "wide":
        used.update(c for c in columns if c.startswith(TAG_PREFIX))
        used.add("name")
    else:
        used.update(("tags", "name"))
    return used
