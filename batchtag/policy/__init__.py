"""Policies (`enforce`): TOML rules read and checked, then evaluated on an inventory
into the manifest of changes that makes them hold.
"""

from __future__ import annotations

from batchtag.lazy import lazy_exports

_HOMES = {
    "KEY_COLUMNS": "_evaluate",
    "MANIFEST_COLUMNS": "_evaluate",
    "RULE_COLUMN": "_evaluate",
    "RULE_SEPARATOR": "_evaluate",
    "Evaluation": "_evaluate",
    "evaluate": "_evaluate",
    "join_manifests": "_evaluate",
    "Copy": "_policy",
    "Policy": "_policy",
    "PolicyError": "_policy",
    "RO_PREFIX": "_policy",
    "SCOPE_FLAGS": "_policy",
    "SCOPE_KEYS": "_policy",
    "is_tag_column": "_policy",
    "load_policy": "_policy",
    "parse_policy": "_policy",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
