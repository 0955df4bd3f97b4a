"""What a run leaves behind: the crash-safe report (schema, writer, lock, reading), the
undo file, the summary and exit code, and the progress bar.
"""

from __future__ import annotations

from batchtag.lazy import lazy_exports

_HOMES = {
    "ReportLock": "_lock",
    "lock_path": "_lock",
    "FAILED_COLOUR": "_progress",
    "Progress": "_progress",
    "choose_bar": "_progress",
    "in_notebook": "_progress",
    "STAMPED": "_names",
    "STARTED": "_names",
    "check_placeholders": "_names",
    "fill_started": "_names",
    "started_stamp": "_names",
    "Recorder": "_recording",
    "KeyColumns": "_report_keys",
    "KeySet": "_report_keys",
    "StatusLog": "_report_keys",
    "BASE_COLUMNS": "_schema",
    "Column": "_schema",
    "REPORT_SCHEMA": "_schema",
    "report_columns": "_schema",
    "result_record": "_schema",
    "check_resumable": "_store",
    "default_report_path": "_store",
    "done_keys": "_store",
    "done_mask": "_store",
    "journal_path": "_store",
    "meta_path": "_store",
    "read_meta": "_store",
    "read_records": "_store",
    "read_report": "_store",
    "records_frame": "_store",
    "report_exists": "_store",
    "report_format": "_store",
    "results_frame": "_store",
    "write_meta": "_store",
    "write_report": "_store",
    "EXIT_FAILED": "_summary",
    "EXIT_OK": "_summary",
    "Summary": "_summary",
    "error_summary": "_summary",
    "exit_code": "_summary",
    "format_summary": "_summary",
    "save_error_summary": "_summary",
    "write_summary_json": "_summary",
    "UNDO_COLUMNS": "_undo",
    "Undo": "_undo",
    "UndoWriter": "_undo",
    "inverse_row": "_undo",
    "undo_line": "_undo",
    "undo_manifest": "_undo",
    "FLUSH_ROWS": "_writer",
    "ReportWriter": "_writer",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
