"""The per-snapshot results report: schema, reading, writing, locking.

Public: `read_report` (also `batchtag.read_report`), `write_report`, `ReportWriter`,
`ReportLock`, `REPORT_SCHEMA`.
"""

from __future__ import annotations

from batchtag.report.lock import ReportLock, lock_path
from batchtag.report.schema import (
    BASE_COLUMNS,
    REPORT_SCHEMA,
    Column,
    report_columns,
    result_record,
)
from batchtag.report.store import (
    check_resumable,
    default_report_path,
    done_keys,
    journal_path,
    meta_path,
    read_meta,
    read_records,
    read_report,
    records_frame,
    report_exists,
    report_format,
    results_frame,
    write_report,
)
from batchtag.report.writer import ReportWriter

load_report = read_report  # the name before read_report was public

__all__ = [
    "BASE_COLUMNS",
    "REPORT_SCHEMA",
    "Column",
    "ReportLock",
    "ReportWriter",
    "check_resumable",
    "default_report_path",
    "done_keys",
    "journal_path",
    "load_report",
    "lock_path",
    "meta_path",
    "read_meta",
    "read_records",
    "read_report",
    "records_frame",
    "report_columns",
    "report_exists",
    "report_format",
    "result_record",
    "results_frame",
    "write_report",
]
