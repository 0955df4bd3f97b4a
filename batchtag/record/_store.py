"""Reports at rest: paths, metadata, reading (uncompacted records, frames) and whole writes.

Formats by extension: `.csv`, `.jsonl`, `.parquet`. Parquet cannot be appended to, so a
running report's rows go to a JSON Lines journal beside it (`<path>.journal.jsonl`),
folded into the Parquet file when the run closes or resumes. A sidecar `<path>.meta.json`
holds the plan fingerprint; Parquet keeps a copy in its schema metadata.

Rows for one snapshot may appear more than once while a resumed run is going; every
reader keeps the latest row per snapshot, at the position of its first row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from batchtag.errors import UsageError, option
from batchtag.model import DONE_STATUSES, Result
from batchtag.record._report_keys import KeyColumns, KeySet
from batchtag.record._schema import (
    KINDS,
    Key,
    Record,
    record_key,
    report_columns,
    result_record,
    union_columns,
)
from batchtag.tabular import ANY, JSONL, PARQUET, atomic_write, table_format

if TYPE_CHECKING:
    import pandas as pd

PathLike = str | os.PathLike[str]


def report_format(path: PathLike):
    """The `batchtag.tabular` format object of a report path (UsageError if unknown)."""
    return table_format(path, "report")


def journal_path(path: PathLike) -> Path:
    return Path(f"{path}.journal.jsonl")


def meta_path(path: PathLike) -> Path:
    return Path(f"{path}.meta.json")


def default_report_path(now: datetime | None = None) -> Path:
    """`reports/batchtag-YYYYmmdd-HHMMSS.csv` under the current directory (created).

    Two runs started in the same second get `-2`, `-3`, ... rather than one overwriting
    the other."""
    now = now or datetime.now()
    folder = Path("reports")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the report folder {folder.resolve()}: {exc.strerror or exc}; "
            f"name a report with {option('report')}"
        ) from None
    stem = f"batchtag-{now:%Y%m%d-%H%M%S}"
    path = folder / f"{stem}.csv"
    n = 1
    while path.exists() or meta_path(path).exists():
        n += 1
        path = folder / f"{stem}-{n}.csv"
    return path


def read_meta(path: PathLike) -> dict[str, Any] | None:
    """The report's metadata record, or None when there is none."""
    try:
        meta = json.loads(meta_path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        meta = None
        if report_format(path) is PARQUET and Path(path).exists():
            meta = PARQUET.read_meta(path)  # a copy of it lives in the Parquet schema
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read report metadata {meta_path(path)}: {exc}") from None
    if meta is not None and not isinstance(meta, dict):
        raise UsageError(f"cannot read report metadata {meta_path(path)}: not a JSON object")
    return meta


def write_meta(path: PathLike, meta: dict[str, Any]) -> None:
    atomic_write(meta_path(path), json.dumps(meta, indent=2) + "\n")


def scan_records(path: PathLike, columns: dict[str, None] | None = None) -> Iterator[Record]:
    """Every row of the report (and of its Parquet journal), in file order, uncompacted, one
    at a time; `columns` (a dict used as an ordered set) gets the columns as they come.

    Raises UsageError naming the line of any row that cannot be read (a torn last line
    is dropped: a crash leaves one)."""
    fmt = report_format(path)
    columns = {} if columns is None else columns
    rows = fmt.scan(path, KINDS, columns)
    if fmt is PARQUET:
        rows = chain(rows, JSONL.scan(journal_path(path), KINDS, columns))
    for number, record in enumerate(rows, start=1):
        try:
            record_key(record)
        except (KeyError, ValueError, TypeError):
            raise UsageError(
                f"cannot read {path}: row {number} has no project_id, region_id and "
                "snapshot_id (is this a batchtag report?)"
            ) from None
        yield record


def read_records(path: PathLike) -> tuple[list[str], list[Record]]:
    """Every row of the report (and of its Parquet journal), in file order, uncompacted.

    Raises UsageError naming the line of any row that cannot be read (a torn last line
    is dropped: a crash leaves one)."""
    found: dict[str, None] = {}
    records = list(scan_records(path, found))
    columns = list(found)
    return (union_columns(columns) if report_format(path) is PARQUET else columns), records


def key_columns(path: PathLike, columns: dict[str, None] | None = None) -> KeyColumns:
    """The key and status of every row of the report, in file order (see `scan_records`)."""
    log = KeyColumns()
    for record in scan_records(path, columns):
        log.add(record_key(record), record.get("status"))
    return log


def compact_report(path: PathLike, columns: Iterable[str], meta: dict[str, Any]):
    """Rewrite the report with one row per snapshot (its latest, at the position of its
    first), its journal folded in, streaming: only rows that a later one replaces are held.

    Returns
    -------
    tuple of (list of str, KeyColumns, numpy.ndarray)
        The report's columns (`columns` added), the keys of all rows read, and the
        positions of the rows kept.
    """
    found: dict[str, None] = {}
    log = key_columns(path, found)
    columns = union_columns(found, columns)
    first, last = log.positions()
    slot = np.full(len(log), -1, dtype=np.int64)
    slot[first] = last
    later = np.zeros(len(log), dtype=bool)
    later[last[first != last]] = True
    held = {i: r for i, r in enumerate(scan_records(path)) if later[i]} if later.any() else {}

    def kept() -> Iterator[Record]:
        for i, record in enumerate(scan_records(path)):
            j = slot[i]
            if j == i:
                yield record
            elif j >= 0:
                yield held.pop(int(j))

    fmt = report_format(path)
    fmt.write(path, columns, list(kept()) if fmt is PARQUET else kept(), KINDS, meta)
    journal_path(path).unlink(missing_ok=True)
    return columns, log, last


def compact(records: Iterable[Record]) -> list[Record]:
    """One record per snapshot: the latest one, at the position of the first one."""
    latest: dict[Key, Record] = {}
    for record in records:
        latest[record_key(record)] = record  # a dict keeps the first insertion's position
    return list(latest.values())


def report_exists(path: PathLike) -> bool:
    path = Path(path)
    return path.exists() or (report_format(path) is PARQUET and journal_path(path).exists())


def _existing_records(path: Path) -> tuple[list[str], list[Record]]:
    if not report_exists(path):
        raise UsageError(f"no report at {path}")
    columns, records = read_records(path)
    return union_columns(columns), compact(records)


def read_report(path: PathLike) -> pd.DataFrame:
    """Read a report: the same DataFrame `apply` returned, dtypes included.

    One row per snapshot (its latest). Columns: `REPORT_SCHEMA`, then the passthrough
    columns. ids and texts are strings, `project_id`, `region_id`, `http_status` and
    `attempts` are Int64, `started_at`/`finished_at` are UTC datetimes, `elapsed_ms` is
    float, `tags_before`/`tags_after`/`ro_tags` are dicts, `rows` a list, `request_body`
    the JSON text that was sent. A report from before `name_before`/`name_after`/`ro_tags`
    existed reads with those columns empty. Also reads a Parquet file that pandas wrote
    from such a frame (`frame.to_parquet(path)`).

    Parameters
    ----------
    path : str or PathLike
        A report (``.csv``, ``.jsonl`` or ``.parquet``).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    UsageError
        No report there, or a row that cannot be read (named by its line).

    Examples
    --------
    >>> frame = batchtag.read_report("reports/run1.csv")  # doctest: +SKIP
    >>> frame[frame.status == "failed"][["snapshot_id", "error"]]  # doctest: +SKIP
    """
    columns, records = _existing_records(Path(path))
    return records_frame(records, columns)


def write_report(frame: pd.DataFrame, path: PathLike) -> None:
    """Save a report frame (from `apply` or `read_report`) so `read_report` gives it back.

    Parameters
    ----------
    frame : pandas.DataFrame
        A report frame.
    path : str or PathLike
        Target; ``.csv``, ``.jsonl`` or ``.parquet`` (tags as ``map<string, string>``).

    Examples
    --------
    >>> batchtag.write_report(frame, "failures.parquet")  # doctest: +SKIP
    """
    columns = union_columns(frame.columns)
    decoders = [KINDS.get(c, ANY).from_frame for c in columns]
    records = [
        {c: decode(row.get(c)) for c, decode in zip(columns, decoders, strict=True)}
        for row in frame.to_dict("records")
    ]
    report_format(path).write(path, columns, records, KINDS)


def done_keys(path: PathLike) -> KeySet:
    """(project_id, region_id, snapshot_id) of every snapshot already `ok` or `noop`, as a
    read-only set that holds no Python object per snapshot (the report is streamed)."""
    if not report_exists(path):
        raise UsageError(f"no report at {path}")
    log = key_columns(path)
    _, last = log.positions()
    return log.keyset(last[log.status_in(last, DONE_STATUSES)])


def results_frame(results: Iterable[Result], passthrough: Iterable[str] = ()) -> pd.DataFrame:
    """Results as a report DataFrame (the dtypes of `read_report`)."""
    passthrough = list(passthrough)
    records = [result_record(r, passthrough) for r in results]
    return records_frame(records, report_columns(passthrough))


def records_frame(records: list[Record], columns: list[str]) -> pd.DataFrame:
    """Records as a report DataFrame (the dtypes of `read_report`)."""
    import pandas as pd  # lazy: writing a report (the apply path) needs no pandas

    data = {c: KINDS.get(c, ANY).to_series([r.get(c) for r in records]) for c in columns}
    return pd.DataFrame(data, columns=columns)


def check_resumable(path: PathLike, fingerprint: str) -> dict[str, Any]:
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
            f"started with, or start a new report without {option('resume')}"
        )
    return meta
