"""batchtag: bulk-edit the tags of Gcore Cloud volume snapshots.

>>> import batchtag
>>> report = batchtag.apply("manifest.csv", report="out.csv")  # doctest: +SKIP
>>> summary = batchtag.validate(df)  # no network                # doctest: +SKIP

The functions load pandas and aiohttp on first use, so ``import batchtag`` stays cheap.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from batchtag.errors import AbortRun, ApiError, BatchtagError, ManifestError, Problem, UsageError

__version__ = "0.1.0"  # the one place the version is written (pyproject reads it)

# name -> module it lives in, imported on first use
_LAZY = {
    "apply": "batchtag.library",
    "apply_async": "batchtag.library",
    "validate": "batchtag.library",
    "read_report": "batchtag.report",
    "write_report": "batchtag.report",
    "plan": "batchtag.library",
    "plan_async": "batchtag.library",
    "undo": "batchtag.library",
    "undo_async": "batchtag.library",
    "export": "batchtag.export",
    "export_async": "batchtag.export",
    "ApplyOptions": "batchtag.runner",
    "enforce": "batchtag.enforce",
    "enforce_async": "batchtag.enforce",
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


# Functions named like a submodule (batchtag/plan.py holds the Plan model, batchtag/undo.py
# the undo logic, batchtag/export.py and batchtag/enforce.py their function): importing the
# submodule binds it to the package attribute, so the function must win on every lookup.
# `from batchtag.plan import Plan` is unaffected.
_SHADOWED = frozenset({"plan", "undo", "export", "enforce"})


class _Package(types.ModuleType):
    def __getattribute__(self, name: str) -> Any:
        if name in _SHADOWED:
            return getattr(importlib.import_module(_LAZY[name]), name)
        return super().__getattribute__(name)


sys.modules[__name__].__class__ = _Package
