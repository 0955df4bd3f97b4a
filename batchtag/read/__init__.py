"""Reading state: what a scope holds or a set of snapshots looks like now (list pages or
GETs), kept for the run (spilled to disk) and fed to the sender as it arrives.
"""

from __future__ import annotations

from batchtag.lazy import lazy_exports

_HOMES = {
    "EntryFeed": "_feed",
    "NOT_YET": "_feed",
    "IdSet": "_idset",
    "PlanIdSet": "_idset",
    "Key": "_reader",
    "ReadStats": "_reader",
    "Reader": "_reader",
    "GET_BATCH": "_strategy",
    "lists_rest": "_strategy",
    "pages": "_strategy",
    "read_keys": "_strategy",
    "read_wanted": "_strategy",
    "ScopeError": "_reader",
    "each_scope": "_scopes",
    "listed_ids": "_scopes",
    "NOT_FOUND_TEXT": "_state",
    "NOT_READ": "_state",
    "State": "_state",
    "read_state": "_state",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
