"""batchtag: bulk-edit the tags of Gcore Cloud volume snapshots.

>>> import batchtag
>>> report = batchtag.apply("manifest.csv", report="out.csv")  # doctest: +SKIP
>>> summary = batchtag.validate(df)  # no network                # doctest: +SKIP

The functions load pandas and aiohttp on first use, so ``import batchtag`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from batchtag.errors import AbortRun, ApiError, BatchtagError, ManifestError, Problem, UsageError

__version__ = "0.1.0"  # the one place the version is written (pyproject reads it)

# name -> module it lives in, imported on first use
_LAZY = {
    "apply": "batchtag.api",
    "apply_async": "batchtag.api",
    "validate": "batchtag.api",
    "read_report": "batchtag.record",
    "read_changes": "batchtag.record",
    "write_changes": "batchtag.record",
    "write_report": "batchtag.record",
    "plan": "batchtag.api",
    "plan_async": "batchtag.api",
    "undo": "batchtag.api",
    "undo_async": "batchtag.api",
    "export": "batchtag.api",
    "export_async": "batchtag.api",
    "ApplyOptions": "batchtag.commands",
    "enforce": "batchtag.api",
    "enforce_async": "batchtag.api",
    "PolicyError": "batchtag.policy",
}

__all__ = [
    *sorted(_LAZY),
    "AbortRun",
    "ApiError",
    "BatchtagError",
    "ManifestError",
    "Problem",
    "UsageError",
    "__version__",
    "sandbox",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "sandbox":  # the subpackage, itself callable: batchtag.sandbox(snapshots=10)
        return importlib.import_module("batchtag.sandbox")
    raise AttributeError(f"module 'batchtag' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
