"""The Python API: DataFrame in, DataFrame out; keyword options named like the CLI's;
works with or without a running event loop.
"""

from __future__ import annotations

from batchtag.lazy import lazy_exports

_HOMES = {
    "Client": "_client",
    "Resume": "_interrupt",
    "Validation": "_validation",
    "apply_async": "_functions",
    "validate": "_functions",
    "plan": "_functions",
    "plan_async": "_functions",
    "undo": "_functions",
    "undo_async": "_functions",
    "export": "_export",
    "export_async": "_export",
    "keys": "_keys",
    "keys_async": "_keys",
    "enforce": "_enforce",
    "enforce_async": "_enforce",
    "APPLY_NAMES": "_functions",
    "apply": "_functions",
    "make_options": "_functions",
    "refuse_unknown": "_functions",
    "report_of": "_functions",
    "run_blocking": "_interrupt",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
