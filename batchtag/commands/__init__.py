"""The commands end to end, shared by the CLI and the Python API: `apply` (guards,
read, send, record), `plan`, `undo`, `export` and `enforce`.
"""

from __future__ import annotations

from batchtag.lazy import lazy_exports

_HOMES = {
    "ApplyOptions": "_apply",
    "check_max_changes": "_apply",
    "install_signal_handlers": "_apply",
    "load": "_apply",
    "load_located": "_apply",
    "locates": "_locate",
    "run_apply": "_apply",
    "save_summary_json": "_apply",
    "build_engine": "_apply_run",
    "compliance": "_compliance",
    "format_compliance": "_compliance",
    "EXIT_DRIFT": "_enforce",
    "EnforceOutcome": "_enforce",
    "ENFORCE_NAMES": "_enforce",
    "read_inventory": "_enforce",
    "diff_inventory": "_enforce",
    "run_enforce": "_enforce",
    "scopes": "_enforce",
    "INVENTORY_COLUMNS": "_export",
    "run_export": "_export",
    "READ_NAMES": "_export",
    "ExportOutcome": "_export",
    "split_keys": "_export",
    "KeysOutcome": "_keys",
    "run_keys": "_keys",
    "PLAN_NAMES": "_plan",
    "UNDO_NAMES": "_plan",
    "default_undo_path": "_plan",
    "plan_diff": "_plan",
    "run_plan": "_plan",
    "run_undo": "_plan",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
