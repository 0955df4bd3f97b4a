"""batchtag: bulk-edit the tags of Gcore Cloud volume snapshots.

A *manifest* says which snapshots get which tag changes: a CSV, Parquet or JSON Lines file,
or a pandas DataFrame, with a ``snapshot_id`` column (and ``project_id`` / ``region_id``
columns, or the options of those names, or the GCORE_CLOUD_* env vars). Any other column
(a ticket, an owner) is carried into the report. It comes in three forms, told apart by
its columns (``form=`` forces one):

long
    One operation a row: ``op``, ``key``, ``value``. ``op`` is ``set`` (key = value),
    ``delete`` (key), ``clear`` (every user tag), ``rename`` (key = old key, value = new
    key) or ``name`` (value = the new name)::

        snapshot_id,op,key,value
        0f3c...,set,cost-center,cc-42
        0f3c...,delete,tmp,
        7a21...,rename,env,environment

wide
    A ``tag:<key>`` column per tag (and optionally ``name``): a cell sets the tag, an
    empty cell leaves it alone, ``<delete>`` removes it (``empty_deletes=True``: an empty
    cell removes it too, for an edited export)::

        snapshot_id,tag:cost-center,tag:tmp
        0f3c...,cc-42,<delete>
        7a21...,cc-43,

json
    A ``tags`` column holding a JSON merge patch (``{"k": "v"}`` sets, ``{"k": null}``
    removes, ``null`` clears every user tag), optionally ``name``::

        {"snapshot_id": "0f3c...", "tags": {"cost-center": "cc-42", "tmp": null}}

From Python, in a script or a notebook (where the kernel's event loop is running):

>>> import batchtag
>>> client = batchtag.Client(project_id=1, region_id=1)  # key and URL from GCORE_* env vars
>>> inventory = client.export()                          # doctest: +SKIP
>>> checked = client.validate(df)  # no network: .ok, .summary, .problems  # doctest: +SKIP
>>> diff = client.plan(df)                                # doctest: +SKIP
>>> report = client.apply(df, report="run1.csv")          # doctest: +SKIP

Every call is also a module function (``batchtag.apply(df, project_id=1, ...)``). Frames
returned and files written share one dtype contract (ids text, scope ids and counts Int64,
times UTC datetimes, tags dicts); ``read_report``, ``read_changes`` and ``read_inventory``
give back the frame a file was written from. A Ctrl-C (the stop button) raises
`Interrupted`, holding the frame so far and ``.resume()``. ``batchtag.sandbox(...)`` runs a
local emulator of the API to try it all.

The functions load pandas and aiohttp on first use, so ``import batchtag`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from batchtag.errors import (
    AbortRun,
    ApiError,
    BatchtagError,
    Interrupted,
    ManifestError,
    Problem,
    UsageError,
)

__version__ = "0.1.0"  # the one place the version is written (pyproject reads it)

# name -> module it lives in, imported on first use
_LAZY = {
    "Client": "batchtag.api",
    "Validation": "batchtag.api",
    "read_changes": "batchtag.diff",
    "read_inventory": "batchtag.inventory",
    "apply": "batchtag.api",
    "apply_async": "batchtag.api",
    "validate": "batchtag.api",
    "read_report": "batchtag.record",
    "write_changes": "batchtag.diff",
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
    "keys": "batchtag.api",
    "keys_async": "batchtag.api",
    "PolicyError": "batchtag.policy",
}

__all__ = [
    *sorted(_LAZY),
    "AbortRun",
    "ApiError",
    "BatchtagError",
    "Interrupted",
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
