"""Recording results as they complete: `ReportWriter`.

CSV and JSON Lines are appended to in place. Parquet results go to the JSON Lines journal
and are folded into the Parquet file by `close()` (or a later resume).

When to the OS: without a running event loop, before `write()` returns. Inside one (a
run), the rows of one event-loop iteration are handed over together, in one write, by a
callback at the start of the next iteration (`loop.call_soon`): a `kill -9` loses only the
results finished since that last hand-over (at most one per worker: a worker finishes at
most one request per iteration, and yields to the loop after a result that needed no
request), besides the requests in flight; past `FLUSH_ROWS` rows they are handed over at once.

A write that fails (a full disk) raises `ReportWriteError` and every later write raises
it again: the caller must stop sending, since nothing more can be recorded. A failure in
the deferred hand-over is reported to `on_failure` at once.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchtag import __version__
from batchtag.errors import ReportWriteError
from batchtag.model import Result
from batchtag.record._lock import cannot_write
from batchtag.record._report_keys import StatusLog
from batchtag.record._resume import ReportScan, scan_report
from batchtag.record._schema import (
    BASE_COLUMNS,
    KINDS,
    passthrough_name,
    report_columns,
    result_values,
)
from batchtag.record._store import (
    check_resumable,
    compact_report,
    journal_path,
    report_format,
    write_meta,
)
from batchtag.tabular import CSV, JSONL, PARQUET, RowAppender

FLUSH_ROWS = 1024  # rows held for one hand-over to the OS, at most


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ReportWriter:
    """Records results as they complete.

    Without `resume`, an existing report at `path` (and its journal and metadata) is
    replaced. With `resume=True` the report must exist and have been written for the same
    plan fingerprint; its rows are kept and new results supersede older rows for the same
    snapshot. A resumed report is appended to as it is (a torn last line cut off); it is
    rewritten first only when it must be: a CSV header without this run's columns, or a
    file only the row readers can read (see `batchtag.record._resume`). `scan` is the
    report's `scan_report` when the caller has it already (the run's done mask). The metadata keeps
    `before_state`: ``read`` (the run read every snapshot first: it can be undone),
    ``blind`` (it wrote blind) or None (a dry run); a resume keeps the first run's.

    Raises UsageError (exit 2) when the report cannot be started: nothing was sent yet.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        passthrough: Iterable[str] = (),
        fingerprint: str,
        resume: bool = False,
        manifest: str | None = None,
        scan: ReportScan | None = None,
        before_state: str | None = None,
    ):
        self.path = Path(path)
        self.format = report_format(self.path)
        self.passthrough = list(passthrough)
        self.fingerprint = fingerprint
        self.columns = report_columns(self.passthrough)
        self.written = 0
        self.failure: ReportWriteError | None = None
        self._status = StatusLog()  # latest status per snapshot, whole report
        self._extras: list[str | None] = []
        self._out: RowAppender | None = None
        self._closed = False
        self._rows: list[list[Any]] = []  # recorded, not yet handed to the OS
        self._flush_due = False  # a hand-over is scheduled on the running loop
        self.on_failure: Callable[[ReportWriteError], None] = lambda error: None
        if resume:
            self.meta = check_resumable(self.path, fingerprint)
            self.meta.setdefault("resumed_at", []).append(_now_iso())
            if manifest and not self.meta.get("manifest"):
                self.meta["manifest"] = manifest
        else:
            self.meta = {
                "batchtag_version": __version__,
                "fingerprint": fingerprint,
                "created_at": _now_iso(),
                "manifest": manifest,
                "format": self.format.name,
                "resumed_at": [],
                "before_state": before_state,
            }
        try:
            self._start_resumed(scan) if resume else self._start_fresh()
        except OSError as exc:
            raise cannot_write(self.path, exc) from None

    # -- opening

    def _start_fresh(self) -> None:
        for stale in (self.path, journal_path(self.path)):
            stale.unlink(missing_ok=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_meta(self.path, self.meta)
        self._open_append()

    def _start_resumed(self, scan: ReportScan | None) -> None:
        if scan is None or not scan.unchanged():
            scan = scan_report(self.path)
        header = scan.header
        if scan.columnar and (self.format is not CSV or self._can_append(header)):
            scan.repair()  # a torn last line cut off, in place
            if header is not None:
                self.columns = header
        else:  # rewritten: drops a row cut short by a crash, widens the header
            self.columns, _, _ = compact_report(self.path, self.columns, self.meta)
            scan = scan_report(self.path)
        write_meta(self.path, self.meta)
        self._status.extend(scan.hashes, scan.codes, scan.statuses)
        self._open_append()

    def _can_append(self, header: list[str] | None) -> bool:
        """Whether rows of this run fit a CSV report's header as it is: the fixed columns
        first, and every passthrough column of this run somewhere after them."""
        if not header or header[: len(BASE_COLUMNS)] != list(BASE_COLUMNS):
            return False
        return set(self.columns) <= set(header)

    def _open_append(self) -> None:
        # Each passthrough column of the report, with the manifest column behind it (None
        # for a column that only an earlier run had).
        names = {passthrough_name(c): c for c in self.passthrough}
        self._extras = [names.get(c) for c in self.columns[len(BASE_COLUMNS) :]]
        if self.format is PARQUET:
            self._out = JSONL.open_rows(journal_path(self.path), self.columns, KINDS)
        else:
            self._out = self.format.open_rows(self.path, self.columns, KINDS)

    # -- writing

    def write(self, result: Result) -> None:
        """Record one result. It is handed to the OS before this returns, or, inside a
        running event loop, with the other rows of this loop iteration at the start of the
        next one (see the module's docstring).

        Raises
        ------
        ReportWriteError
            The write failed (e.g. no space left on device), now or earlier in the run.
        """
        if self.failure is not None:
            raise self.failure
        if self._closed or self._out is None:
            raise ValueError(f"report {self.path} is closed")
        self._rows.append(result_values(result, self._extras))
        self._status.add(result.key, result.status)
        self.written += 1
        if len(self._rows) >= FLUSH_ROWS:  # many in one iteration: no pile-up in memory
            self.flush()
            return
        if self._flush_due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: now
            self.flush()
        else:
            self._flush_due = True
            loop.call_soon(self._flush_soon)

    def flush(self) -> None:
        """Hand the rows recorded so far to the OS (one write).

        Raises
        ------
        ReportWriteError
            The write failed; `on_failure` was called with it.
        """
        rows, self._rows = self._rows, []
        self._flush_due = False
        if not rows or self.failure is not None or self._out is None:
            return
        try:
            self._out.write_cells(rows)
        except OSError as exc:
            self.failure = ReportWriteError.from_os_error(self.path, exc)
            self.on_failure(self.failure)
            raise self.failure from None

    def _flush_soon(self) -> None:
        try:
            self.flush()
        except ReportWriteError:
            pass  # on_failure was told; the next write() or close() raises it

    def status_counts(self) -> Counter[str]:
        """Snapshots by status over the whole report (earlier runs' rows included)."""
        return self._status.counts()

    def close(self) -> None:
        """Finish the report: one row per snapshot; for Parquet, build the file.

        After a write failure only the file is closed: the rows recorded so far stay as
        they are (a resume compacts them)."""
        if self._closed:
            return
        try:
            self.flush()
        except ReportWriteError:
            pass  # raised below, after the file is closed
        self._closed = True
        out, self._out = self._out, None
        if out is not None:
            try:
                out.close(sync=self.failure is None)
            except OSError as exc:
                self.failure = self.failure or ReportWriteError.from_os_error(self.path, exc)
        if self.failure is not None:
            raise self.failure
        if self.format is PARQUET or self._status.has_repeats():
            self._compact()

    def _compact(self) -> None:
        try:
            compact_report(self.path, self.columns, self.meta)
        except OSError as exc:
            self.failure = ReportWriteError.from_os_error(self.path, exc)
            raise self.failure from None

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
