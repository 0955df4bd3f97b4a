"""The per-snapshot results report: written row by row as results complete, resumable.

Formats by extension: `.csv`, `.jsonl`, `.parquet`.

- CSV and JSON Lines are appended to in place, one flushed write per result, so a
  `kill -9` loses nothing that `write()` returned for.
- Parquet cannot be appended to, so results go to a journal beside it
  (`<path>.journal.jsonl`); `close()` (or a later resume) folds journal + existing
  Parquet into a new Parquet file (temp file, then `os.replace`) and deletes the journal.
- A sidecar `<path>.meta.json` holds the plan fingerprint and a little metadata, so the
  CSV stays a plain CSV. A resumed run must have the same fingerprint.
- Rows for one snapshot may appear more than once while a resumed run is going; every
  reader here keeps the latest row per snapshot, in the position of its first row.
  `close()` compacts the file to exactly one row per snapshot.

Memory: loading and compacting hold the whole report in memory (a few hundred bytes to
a few KB a row); writing does not.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from batchtag import __version__
from batchtag.errors import UsageError
from batchtag.result import DONE_STATUSES, REPORT_COLUMNS, Result, json_text

log = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
BODY_COLUMN = "request_body"
BASE_COLUMNS = [*REPORT_COLUMNS, BODY_COLUMN]
KEY_COLUMNS = ("project_id", "region_id", "snapshot_id")
INT_COLUMNS = frozenset({"project_id", "region_id", "http_status", "attempts"})
FLOAT_COLUMNS = frozenset({"elapsed_ms"})
JSON_COLUMNS = frozenset({"tags_before", "tags_after", "rows", BODY_COLUMN})
STR_COLUMNS = frozenset(BASE_COLUMNS) - INT_COLUMNS - FLOAT_COLUMNS - JSON_COLUMNS
# pandas 3 has a real default string dtype; pandas 2 keeps strings as objects.
STR_DTYPE = "str" if int(pd.__version__.split(".")[0]) >= 3 else object

Record = dict[str, Any]
Key = tuple[int, int, str]


# ---------------------------------------------------------------- paths and metadata


def report_format(path: str | os.PathLike[str]) -> str:
    """'csv', 'jsonl' or 'parquet', from the file extension."""
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        raise UsageError(
            f"report {str(path)!r}: unknown format {suffix or '(no extension)'!r}; "
            "use a path ending in .csv, .jsonl or .parquet"
        ) from None


def journal_path(path: str | os.PathLike[str]) -> Path:
    return Path(f"{path}.journal.jsonl")


def meta_path(path: str | os.PathLike[str]) -> Path:
    return Path(f"{path}.meta.json")


def default_report_path(now: datetime | None = None) -> Path:
    """`reports/batchtag-YYYYmmdd-HHMMSS.csv` under the current directory (created).

    Two runs started in the same second get `-2`, `-3`, ... rather than one overwriting
    the other."""
    now = now or datetime.now()
    folder = Path("reports")
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"batchtag-{now:%Y%m%d-%H%M%S}"
    path = folder / f"{stem}.csv"
    n = 1
    while path.exists() or meta_path(path).exists():
        n += 1
        path = folder / f"{stem}-{n}.csv"
    return path


def report_columns(passthrough: Iterable[str]) -> list[str]:
    """The report's columns: the fixed ones, then the passthrough columns."""
    return [*BASE_COLUMNS, *(_passthrough_name(c) for c in passthrough)]


def _passthrough_name(column: str) -> str:
    # A manifest column named like a report column (say `status`) must not overwrite it.
    return f"manifest_{column}" if column in BASE_COLUMNS else column


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The report's metadata record, or None when there is none."""
    try:
        return json.loads(meta_path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read report metadata {meta_path(path)}: {exc}") from exc
    if report_format(path) == "parquet" and Path(path).exists():
        return _parquet_meta(Path(path))  # a copy of it lives in the Parquet schema too
    return None


def _parquet_meta(path: Path) -> dict[str, Any] | None:
    import pyarrow.parquet as pq

    try:
        raw = (pq.read_schema(path).metadata or {}).get(b"batchtag")
    except Exception:  # an unreadable file simply has no metadata
        return None
    return json.loads(raw) if raw else None


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    _atomic_write_text(meta_path(path), json.dumps(meta, indent=2) + "\n")


def _atomic_write_text(target: Path, text: str) -> None:
    tmp = Path(f"{target}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------- records


def result_record(result: Result, passthrough: Iterable[str]) -> Record:
    """One report row as plain Python values (JSON columns as dicts/lists)."""
    record: Record = {
        "project_id": result.project_id,
        "region_id": result.region_id,
        "snapshot_id": result.snapshot_id,
        "status": result.status,
        "http_status": result.http_status,
        "attempts": result.attempts,
        "error_class": result.error_class,
        "error": result.error,
        "request_id": result.request_id,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "elapsed_ms": result.elapsed_ms,
        "tags_before": result.tags_before,
        "tags_after": result.tags_after,
        "rows": list(result.rows),
        BODY_COLUMN: result.body,
    }
    for column in passthrough:
        record[_passthrough_name(column)] = _plain(result.extra.get(column))
    return record


def _plain(value: Any) -> Any:
    """A passthrough cell as a JSON-able scalar: numpy scalars unwrapped, NA to None."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if hasattr(value, "item") and not isinstance(value, list | dict):
        try:
            return _plain(value.item())  # numpy scalar
        except (TypeError, ValueError):
            pass
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, list | dict):
        return value
    return str(value)


def _key(record: Record) -> Key:
    return (int(record["project_id"]), int(record["region_id"]), str(record["snapshot_id"]))


def compact(records: Iterable[Record]) -> list[Record]:
    """One record per snapshot: the latest one, at the position of the first one."""
    latest: dict[Key, Record] = {}
    for record in records:
        latest[_key(record)] = record  # a dict keeps the first insertion's position
    return list(latest.values())


def _csv_cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    kind = type(value)
    if kind is str and column not in JSON_COLUMNS:  # most cells: ids, timestamps, passthrough
        return value
    if kind is int:
        return str(value)
    if column == "rows":
        return _rows_text(value)
    if column in JSON_COLUMNS or isinstance(value, list | dict):
        return json_text(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _csv_line(columns: list[str], record: Record) -> str:
    return _csv_text([_csv_cell(c, record.get(c)) for c in columns])


def _result_cells(result: Result) -> list[str]:
    """The BASE_COLUMNS cells of `result`, as _csv_cell would write them, built straight
    from the Result: the per-result hot path, cheaper than going through a record."""
    return [
        str(result.project_id),
        str(result.region_id),
        result.snapshot_id,
        result.status,
        "" if result.http_status is None else str(result.http_status),
        str(result.attempts),
        result.error_class or "",
        result.error or "",
        result.request_id or "",
        result.started_at or "",
        result.finished_at or "",
        "" if result.elapsed_ms is None else repr(result.elapsed_ms),
        "" if result.tags_before is None else json_text(result.tags_before),
        "" if result.tags_after is None else json_text(result.tags_after),
        _rows_text(result.rows),
        _body_text(result),
    ]


def _rows_text(rows: list) -> str:
    """Manifest rows: ints (file rows) without the encoder's overhead; a DataFrame's index
    labels (any type) through it."""
    if all(type(r) is int for r in rows):
        return f"[{','.join(map(str, rows))}]"
    return json_text(rows)


def _body_text(result: Result) -> str:
    if result.body_json is not None:
        return result.body_json  # the text that was sent
    return "" if result.body is None else json_text(result.body)


class _LastLine:
    """A file-like that keeps the one line csv.writer hands it (cheaper than a StringIO
    and a new writer per row, which this hot path would otherwise pay)."""

    text = ""

    def write(self, text: str) -> None:
        self.text = text


_last_line = _LastLine()
# The writer quotes a cell only for characters of its line terminator: with "\n" alone, a
# bare "\r" would go out unquoted and split the row for every reader. So it ends lines
# with "\r\n", and the report keeps plain "\n" line ends.
_line_writer = csv.writer(_last_line, lineterminator="\r\n")


def _csv_text(cells: list[str]) -> str:
    _line_writer.writerow(cells)
    return _last_line.text[:-2] + "\n"


def _jsonl_line(columns: list[str], record: Record) -> str:
    return json_text({c: record.get(c) for c in columns}) + "\n"


def _from_text(column: str, text: str) -> Any:
    """A CSV cell back to its value; raises ValueError on a damaged cell."""
    if text == "":
        return None
    if column in INT_COLUMNS:
        return int(text)
    if column in FLOAT_COLUMNS:
        return float(text)
    if column in JSON_COLUMNS:
        return json.loads(text)
    return text


# ---------------------------------------------------------------- reading


def _read_csv(path: Path) -> tuple[list[str], list[Record]]:
    if not path.exists():
        return [], []
    # newline="": a "\r" inside a quoted cell (an API error message, say) must reach the
    # csv reader as it was written; universal newlines would break or change the row.
    with open(path, encoding="utf-8", newline="") as fh:
        text = fh.read()
    if not text:
        return [], []
    complete = text.endswith("\n")  # a crash mid-write leaves the last row unfinished
    rows = _csv_rows(text)
    if not rows:
        return [], []
    header, body = rows[0], rows[1:]
    if body and not complete:
        body = body[:-1]
    records: list[Record] = []
    for number, cells in enumerate(body, start=2):
        if len(cells) != len(header):
            log.warning("%s: skipping damaged row %d (wrong number of cells)", path, number)
            continue
        try:
            record = {c: _from_text(c, t) for c, t in zip(header, cells, strict=True)}
            _key(record)
        except (ValueError, TypeError, KeyError):
            log.warning("%s: skipping damaged row %d", path, number)
            continue
        records.append(record)
    return header, records


def _csv_rows(text: str) -> list[list[str]]:
    rows: list[list[str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for cells in reader:
            if cells:
                rows.append(cells)
    except csv.Error:
        pass  # an unterminated quote: only the last, partly written row can cause that
    return rows


def _read_jsonl(path: Path) -> tuple[list[str], list[Record]]:
    columns: dict[str, None] = {}
    records: list[Record] = []
    if not path.exists():
        return [], []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
                _key(record)
            except (ValueError, TypeError, KeyError):
                # A crash mid-write leaves the last line unfinished; anything else is damage.
                log.warning("%s: skipping damaged line %d", path, number)
                continue
            columns.update(dict.fromkeys(record))
            records.append(record)
    return list(columns), records


def _read_parquet(path: Path) -> tuple[list[str], list[Record]]:
    import pyarrow.parquet as pq

    if not path.exists():
        return [], []
    table = pq.read_table(path)
    records = table.to_pylist()
    for record in records:
        for column in JSON_COLUMNS:
            if isinstance(record.get(column), str):
                record[column] = json.loads(record[column])
    return list(table.column_names), records


def read_records(path: str | os.PathLike[str]) -> tuple[list[str], list[Record]]:
    """Every row of the report (and of its Parquet journal), in file order, uncompacted."""
    path = Path(path)
    fmt = report_format(path)
    if fmt == "csv":
        return _read_csv(path)
    if fmt == "jsonl":
        return _read_jsonl(path)
    columns, records = _read_parquet(path)
    more_columns, more = _read_jsonl(journal_path(path))
    return _union(columns, more_columns), records + more


def _union(*column_lists: Iterable[str]) -> list[str]:
    merged: dict[str, None] = dict.fromkeys(BASE_COLUMNS)
    for columns in column_lists:
        merged.update(dict.fromkeys(columns))
    return list(merged)


def report_exists(path: str | os.PathLike[str]) -> bool:
    path = Path(path)
    return path.exists() or (report_format(path) == "parquet" and journal_path(path).exists())


def _existing_records(path: Path) -> tuple[list[str], list[Record]]:
    if not report_exists(path):
        raise UsageError(f"no report at {path}")
    columns, records = read_records(path)
    return _union(columns), compact(records)


def load_report(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The report as a DataFrame: one row per snapshot (its latest), JSON cells parsed."""
    columns, records = _existing_records(Path(path))
    return _frame(records, columns)


def done_keys(path: str | os.PathLike[str]) -> set[Key]:
    """(project_id, region_id, snapshot_id) of every snapshot already `ok` or `noop`."""
    _, records = _existing_records(Path(path))
    return {_key(r) for r in records if r.get("status") in DONE_STATUSES}


def results_frame(results: Iterable[Result], passthrough: Iterable[str] = ()) -> pd.DataFrame:
    """Results as a DataFrame with the same columns and dtypes as `load_report`."""
    passthrough = list(passthrough)
    records = [result_record(r, passthrough) for r in results]
    return _frame(records, report_columns(passthrough))


def _frame(records: list[Record], columns: list[str]) -> pd.DataFrame:
    data: dict[str, pd.Series] = {}
    for column in columns:
        values = [r.get(column) for r in records]
        if column in INT_COLUMNS:
            series = pd.Series(values, dtype="Int64")
        elif column in FLOAT_COLUMNS:
            series = pd.Series([math.nan if v is None else v for v in values], dtype="float64")
        elif column in STR_COLUMNS:
            series = pd.Series(values, dtype=STR_DTYPE)
        elif column in JSON_COLUMNS:
            series = pd.Series(values, dtype=object)
        else:
            series = pd.Series(values) if values else pd.Series(values, dtype=object)
        data[column] = series
    return pd.DataFrame(data, columns=columns)


# ---------------------------------------------------------------- writing whole files


def _write_csv(path: Path, columns: list[str], records: list[Record]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(_csv_text(columns))
        for record in records:
            fh.write(_csv_line(columns, record))
        fh.flush()
        os.fsync(fh.fileno())


def _write_jsonl(path: Path, columns: list[str], records: list[Record]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        for record in records:
            fh.write(_jsonl_line(columns, record))
        fh.flush()
        os.fsync(fh.fileno())


def _write_parquet(
    path: Path, columns: list[str], records: list[Record], meta: dict[str, Any] | None
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = [_arrow_column(c, [r.get(c) for r in records]) for c in columns]
    table = pa.Table.from_arrays(arrays, names=columns)
    if meta is not None:
        table = table.replace_schema_metadata({"batchtag": json.dumps(meta)})
    pq.write_table(table, path)


def _arrow_column(column: str, values: list[Any]):
    import pyarrow as pa

    if column in INT_COLUMNS:
        return pa.array(values, type=pa.int64())
    if column in FLOAT_COLUMNS:
        return pa.array(values, type=pa.float64())
    if column in JSON_COLUMNS:
        return pa.array([None if v is None else json_text(v) for v in values], type=pa.string())
    if column in STR_COLUMNS:
        return pa.array(values, type=pa.string())
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        array = None
    if array is None or pa.types.is_null(array.type) or pa.types.is_nested(array.type):
        # Mixed or empty passthrough columns are stored as text.
        texts = [None if v is None else v if isinstance(v, str) else json_text(v) for v in values]
        array = pa.array(texts, type=pa.string())
    return array


def _write_report(
    path: Path, columns: list[str], records: list[Record], meta: dict[str, Any] | None
) -> None:
    """Replace the whole report atomically: a crash leaves the old file or the new one."""
    fmt = report_format(path)
    tmp = path.with_name(f"{path.name}.tmp{path.suffix}")
    if fmt == "csv":
        _write_csv(tmp, columns, records)
    elif fmt == "jsonl":
        _write_jsonl(tmp, columns, records)
    else:
        _write_parquet(tmp, columns, records, meta)
    os.replace(tmp, path)


# ---------------------------------------------------------------- the writer


def check_resumable(path: Path, fingerprint: str) -> dict[str, Any]:
    """The report's metadata, if `path` can be resumed with a plan of `fingerprint`."""
    if not report_exists(path):
        raise UsageError(f"cannot resume: no report at {path}")
    meta = read_meta(path)
    if meta is None:
        raise UsageError(
            f"cannot resume {path}: its metadata file {meta_path(path)} is "
            "missing, so it cannot be checked against this manifest; "
            "start a new report instead"
        )
    old = meta.get("fingerprint")
    if old != fingerprint:
        raise UsageError(
            f"{path} was written for a different manifest (fingerprint {old}, "
            f"this manifest has {fingerprint}); resume it with the manifest it was "
            "started with, or start a new report without --resume"
        )
    return meta


class ReportWriter:
    """Records results as they complete.

    Without `resume`, an existing report at `path` (and its journal and metadata) is
    replaced. With `resume=True` the report must exist and have been written for the same
    plan fingerprint; its rows are kept, `done_keys` lists the snapshots already `ok` /
    `noop`, and new results supersede older rows for the same snapshot.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        passthrough: Iterable[str] = (),
        fingerprint: str,
        resume: bool = False,
        manifest: str | None = None,
    ):
        self.path = Path(path)
        self.format = report_format(self.path)
        self.passthrough = list(passthrough)
        self.fingerprint = fingerprint
        self.resume = resume
        self.columns = report_columns(self.passthrough)
        self.done_keys: set[Key] = set()
        self.previous_rows = 0  # snapshots already in a resumed report
        self.written = 0
        self._keys: set[Key] = set()
        self._duplicates = False
        self._extras: list[tuple[str, str | None]] = []
        self._closed = False
        self._fh: io.TextIOWrapper | None = None
        if resume:
            self.meta = self._check_resumable(manifest)
            self._start_resumed()
        else:
            self.meta = {
                "batchtag_version": __version__,
                "fingerprint": fingerprint,
                "created_at": _now_iso(),
                "manifest": manifest,
                "format": self.format,
                "resumed_at": [],
            }
            self._start_fresh()

    # -- opening

    def _check_resumable(self, manifest: str | None) -> dict[str, Any]:
        meta = check_resumable(self.path, self.fingerprint)
        meta.setdefault("resumed_at", []).append(_now_iso())
        if manifest and not meta.get("manifest"):
            meta["manifest"] = manifest
        return meta

    def _start_fresh(self) -> None:
        for stale in (self.path, journal_path(self.path)):
            stale.unlink(missing_ok=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _write_meta(self.path, self.meta)
        if self.format == "csv":
            _write_csv(self.path, self.columns, [])
        elif self.format == "jsonl":
            _write_jsonl(self.path, self.columns, [])
        self._open_append()

    def _start_resumed(self) -> None:
        # Compact first: it drops a row cut short by a crash, merges a leftover Parquet
        # journal, and widens the header if the passthrough columns changed.
        columns, records = read_records(self.path)
        records = compact(records)
        self.columns = _union(columns, self.columns)
        _write_report(self.path, self.columns, records, self.meta)
        journal_path(self.path).unlink(missing_ok=True)
        _write_meta(self.path, self.meta)
        self._keys = {_key(r) for r in records}
        self.done_keys = {_key(r) for r in records if r.get("status") in DONE_STATUSES}
        self.previous_rows = len(records)
        self._open_append()

    def _csv_cells(self, result: Result) -> list[str]:
        cells = _result_cells(result)  # every report's columns start with BASE_COLUMNS
        for name, column in self._extras:
            value = None if column is None else _plain(result.extra.get(column))
            cells.append(_csv_cell(name, value))
        return cells

    def _open_append(self) -> None:
        # Each passthrough column of the report, with the manifest column behind it (None
        # for a column that only an earlier run had).
        names = {_passthrough_name(c): c for c in self.passthrough}
        self._extras = [(c, names.get(c)) for c in self.columns[len(BASE_COLUMNS) :]]
        target = journal_path(self.path) if self.format == "parquet" else self.path
        self._fh = open(target, "a", encoding="utf-8", newline="")

    # -- writing

    def write(self, result: Result) -> None:
        """Record one result; it is handed to the OS before this returns."""
        if self._closed or self._fh is None:
            raise ValueError(f"report {self.path} is closed")
        if self.format == "csv":
            line = _csv_text(self._csv_cells(result))
        else:
            line = _jsonl_line(self.columns, result_record(result, self.passthrough))
        self._fh.write(line)
        self._fh.flush()
        key = result.key
        if key in self._keys:
            self._duplicates = True
        self._keys.add(key)
        self.written += 1

    def close(self) -> None:
        """Finish the report: one row per snapshot; for Parquet, build the file."""
        if self._closed:
            return
        self._closed = True
        if self._fh is not None:
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
        if self.format == "parquet" or self._duplicates:
            columns, records = read_records(self.path)
            _write_report(self.path, _union(columns, self.columns), compact(records), self.meta)
            journal_path(self.path).unlink(missing_ok=True)

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
