"""A local emulator of the Gcore snapshot and volume API (and the projects and regions of its
scopes), for the demo, the tests and rehearsals."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from batchtag.sandbox.context import CallableModule

# Loaded on first use: `batchtag apply` registers the `sandbox` command but should not pay
# for importing aiohttp.web and the emulator on every run.
_HOMES = {
    "SandboxConfig": "app",
    "make_app": "app",
    "SandboxServer": "server",
    "serve": "server",
    "SnapshotStore": "store",
    "Sandbox": "context",
    "sandbox": "context",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


sys.modules[__name__].__class__ = CallableModule  # batchtag.sandbox(...) runs the emulator
