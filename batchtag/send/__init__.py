"""Sending: the engine's worker pool turns plan entries into PATCHes under the limiter,
retries by response class, and hands every result on.
"""

from __future__ import annotations

from batchtag.lazy import lazy_exports

_HOMES = {
    "Engine": "_engine",
    "EngineOptions": "_engine",
    "IN_FLIGHT": "_jobs",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
