"""What a resume reads of its report, in one pass: which snapshots of the plan are done, and
the key and status of every row for the writer's status log.

Only the key columns are read (project_id, region_id, snapshot_id, status), with pyarrow a
batch at a time (`batchtag.tabular.read_columns`); the ids become keys without a Python
string each (`batchtag.model.arrow_keys`). A report pyarrow cannot read exactly as the row
readers do (a quoted cell torn by a crash, a damaged line) is read with the row readers
instead, which also name the line of any damage; the writer then rewrites it (compaction)
as it always did. Otherwise the report is left as it is but for a torn last line, cut off
in place (`ReportScan.repair`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from batchtag.errors import UsageError
from batchtag.model import DONE_STATUSES, PlanIndex, arrow_keys
from batchtag.record._report_keys import CHUNK, key_hashes
from batchtag.record._schema import KEY_COLUMNS, Record
from batchtag.record._store import journal_path, report_exists, report_format, scan_records
from batchtag.tabular import CSV, PARQUET, NotColumnar, read_columns

if TYPE_CHECKING:
    import pyarrow as pa

PathLike = str | os.PathLike[str]
STATUS = "status"
MARK_ROWS = 1 << 16  # rows looked up in the plan index at once (it searches many faster)


@dataclass
class ReportScan:
    """The key columns of a report, read once (see the module docstring).

    Attributes
    ----------
    path : Path
        The report.
    columnar : bool
        Read by pyarrow; False: by the row readers (the writer then rewrites the report).
    header : list of str or None
        A CSV report's columns.
    hashes : numpy.ndarray
        Every row's `key_hash`, in file order (int64).
    codes : numpy.ndarray
        Every row's status, an index into `statuses` (uint8).
    statuses : list
        The statuses met (None: an empty cell).
    done : numpy.ndarray or None
        With a plan index: a mask over its positions, the snapshots whose latest row is
        `ok` or `noop`.
    text : Path
        The file rows are appended to (the report; a Parquet report's journal).
    end : int
        Where the whole rows of `text` end (a torn last line after).
    newline : bool
        The last row of `text` is whole but lacks its line end.
    stamp : tuple
        Size and modification time of the report and its journal when read: the writer
        reads it again if they changed since (`unchanged`).
    """

    path: Path
    columnar: bool
    header: list[str] | None
    hashes: np.ndarray
    codes: np.ndarray
    statuses: list[str | None]
    done: np.ndarray | None
    text: Path
    end: int
    newline: bool
    stamp: tuple

    def unchanged(self) -> bool:
        """Whether the report (and journal) are still as they were read."""
        return _stamp(self.path) == self.stamp

    def repair(self) -> None:
        """Make `text` ready for appending, in place: cut off a torn last line, or end the
        last line."""
        if not self.text.exists():
            return
        size = self.text.stat().st_size
        if self.newline:
            with open(self.text, "ab") as fh:
                fh.write(b"\n")
        elif self.end < size:
            os.truncate(self.text, self.end)


def scan_report(path: PathLike, index: PlanIndex | None = None) -> ReportScan:
    """Read the key columns of the report at `path`; with `index`, mark the plan's done
    positions.

    Raises
    ------
    UsageError
        No report there, or a row that cannot be read (named by its line).
    """
    path = Path(path)
    if not report_exists(path):
        raise UsageError(f"no report at {path}")
    stamp = _stamp(path)
    try:
        return _columnar(path, index, stamp)
    except NotColumnar:
        return _by_rows(path, index, stamp)


def done_mask(path: PathLike, index: PlanIndex) -> np.ndarray:
    """A mask over a plan's positions: the snapshots whose latest row in the report is `ok`
    or `noop` (rows of snapshots not in the plan are ignored). Reads reports of every
    earlier version (the key columns never changed).

    Parameters
    ----------
    path : str or PathLike
        The report to resume.
    index : PlanIndex
        The positions of the plan's entries.

    Returns
    -------
    numpy.ndarray of bool
    """
    done = scan_report(path, index).done
    assert done is not None
    return done


def _stamp(path: Path) -> tuple:
    """Size and modification time of the report and its journal (None: missing)."""
    out: list[Any] = []
    for part in (path, journal_path(path)):
        try:
            info = part.stat()
            out.append((info.st_size, info.st_mtime_ns))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


def _key_types() -> dict[str, pa.DataType]:
    import pyarrow as pa

    return {
        "project_id": pa.int64(),
        "region_id": pa.int64(),
        "snapshot_id": pa.string(),
        STATUS: pa.string(),
    }


def _columnar(path: Path, index: PlanIndex | None, stamp: tuple) -> ReportScan:
    fmt = report_format(path)
    types = _key_types()
    parts = [read_columns(path, fmt.name, types)]
    text = path
    if fmt is PARQUET:
        text = journal_path(path)
        parts.append(read_columns(text, "jsonl", types))
    keys = _Keys(index)
    for part in parts:
        for batch in part.batches:
            columns = [batch.column(name) for name in KEY_COLUMNS]
            if any(column.null_count for column in columns):
                raise NotColumnar("a row without its key")
            project, region, ids = columns
            keys.add(project.to_numpy(), region.to_numpy(), ids, batch.column(STATUS))
    tail = parts[-1]
    header = parts[0].header if fmt is CSV else None
    return keys.scan(path, True, header, text, tail.end, tail.newline, stamp)


def _by_rows(path: Path, index: PlanIndex | None, stamp: tuple) -> ReportScan:
    """The row readers' way: every row decoded (slow, but reads any report they can)."""
    import pyarrow as pa

    keys = _Keys(index)
    chunk: list[Record] = []

    def add() -> None:
        project = np.fromiter((int(r["project_id"]) for r in chunk), np.int64, len(chunk))
        region = np.fromiter((int(r["region_id"]) for r in chunk), np.int64, len(chunk))
        ids = pa.array([str(r["snapshot_id"]) for r in chunk], pa.string())
        statuses = [r.get(STATUS) for r in chunk]
        texts = [s if s is None or isinstance(s, str) else str(s) for s in statuses]
        keys.add(project, region, ids, pa.array(texts, pa.string()))
        chunk.clear()

    for record in scan_records(path):
        chunk.append(record)
        if len(chunk) >= CHUNK:
            add()
    if chunk:
        add()
    text = journal_path(path) if report_format(path) is PARQUET else path
    size = text.stat().st_size if text.exists() else 0
    return keys.scan(path, False, None, text, size, False, stamp)


class _Keys:
    """Rows' keys and statuses gathered batch by batch, in file order."""

    def __init__(self, index: PlanIndex | None):
        self.index = index
        self.done = None if index is None else np.zeros(len(index), dtype=bool)
        self.hashes: list[np.ndarray] = []
        self.codes: list[np.ndarray] = []
        self.statuses: dict[str | None, int] = {}
        self._unmarked: list[tuple[np.ndarray, ...]] = []  # batches not yet looked up
        self._unmarked_rows = 0

    def add(self, project: np.ndarray, region: np.ndarray, ids, statuses) -> None:
        import pyarrow.compute as pc

        keys = arrow_keys(ids)
        self.hashes.append(key_hashes(project, region, keys))
        encoded = pc.dictionary_encode(statuses, null_encoding="encode")
        texts = encoded.dictionary.to_pylist()
        mine = np.array([self.statuses.setdefault(s, len(self.statuses)) for s in texts])
        codes = mine.astype(np.uint8)[np.asarray(encoded.indices, dtype=np.int64)]
        self.codes.append(codes)
        if self.done is not None:
            self._unmarked.append((project, region, keys, codes))
            self._unmarked_rows += len(keys)
            if self._unmarked_rows >= MARK_ROWS:
                self._mark()

    def _mark(self) -> None:
        """Set or clear `done` at the plan positions of the rows not looked up yet (the last
        row of a snapshot wins: rows come in file order)."""
        assert self.index is not None and self.done is not None
        if not self._unmarked:
            return
        project, region, keys, codes = (
            np.concatenate(c) for c in zip(*self._unmarked, strict=True)
        )
        self._unmarked, self._unmarked_rows = [], 0
        positions = np.full(len(keys), -1, dtype=np.int64)
        if len(keys) and (project == project[0]).all() and (region == region[0]).all():
            positions[:] = self.index.positions((int(project[0]), int(region[0])), keys)
        elif len(keys):
            scopes, which = np.unique(np.stack([project, region], 1), axis=0, return_inverse=True)
            for k, (p, r) in enumerate(scopes.tolist()):
                at = np.flatnonzero(which.ravel() == k)
                positions[at] = self.index.positions((p, r), keys[at])
        done_codes = [c for s, c in self.statuses.items() if s in DONE_STATUSES]
        finished = np.isin(codes, done_codes)
        known = positions >= 0
        latest_first = positions[known][::-1]
        distinct, last = np.unique(latest_first, return_index=True)
        self.done[distinct] = finished[known][::-1][last]

    def scan(self, path, columnar, header, text, end, newline, stamp) -> ReportScan:
        if self.done is not None:
            self._mark()
        empty = np.zeros(0, dtype=np.int64)
        return ReportScan(
            path=path,
            columnar=columnar,
            header=header,
            hashes=np.concatenate(self.hashes) if self.hashes else empty,
            codes=np.concatenate(self.codes) if self.codes else empty.astype(np.uint8),
            statuses=list(self.statuses),
            done=self.done,
            text=text,
            end=end,
            newline=newline,
            stamp=stamp,
        )
