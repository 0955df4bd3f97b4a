"""The plan diff: the current state against the manifest, snapshot by snapshot or a page
at a time; its rows held as columns, written to a file, and printed.
"""

from __future__ import annotations

from batchtag.lazy import lazy_exports

_HOMES = {
    "entry_block": "_block",
    "read_changes": "_changes",
    "DIFF_COLUMNS": "_diff",
    "DiffCollector": "_diff",
    "diff_entry": "_entry",
    "CHANGE": "_entry",
    "LOCKED": "_entry",
    "NOOP": "_entry",
    "NOT_FOUND": "_entry",
    "VERDICTS": "_entry",
    "WRITES": "_entry",
    "diff_frame": "_diff",
    "diff_plan": "_diff",
    "CHUNK": "_store",
    "Diff": "_store",
    "EXIT_CHANGES": "_view",
    "first_changes": "_view",
    "plan_exit_code": "_view",
    "print_plan": "_view",
    "render_plan": "_view",
    "ChangeStream": "_write",
    "write_changes": "_write",
    "write_diff": "_write",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
