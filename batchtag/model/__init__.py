"""The data every stage shares, pure (no I/O): the plan and its entries, snapshot keys
and the plan's index, the tags merge patch, and a snapshot's result and statuses.
"""

from __future__ import annotations

from batchtag.lazy import lazy_exports

_HOMES = {
    "NAME_MIN": "_schema",
    "NAME_MAX": "_schema",
    "FORMS": "_schema",
    "SNAPSHOT_COLUMN": "_schema",
    "ID_COLUMNS": "_schema",
    "LONG_COLUMNS": "_schema",
    "TAGS_COLUMN": "_schema",
    "NAME_COLUMN": "_schema",
    "TAG_PREFIX": "_schema",
    "RO_PREFIX": "_schema",
    "VOLUME_TAG_PREFIX": "_schema",
    "OPS": "_schema",
    "DELETE_MARKER": "_schema",
    "TAG_TEXT": "_schema",
    "TAG_MAX": "_schema",
    "NAME_TEXT": "_schema",
    "UUID_LOWER": "_schema",
    "UUID": "_schema",
    "POSITIVE_INT": "_schema",
    "EXACT_FLOAT_LIMIT": "_schema",
    "CHUNK": "_index",
    "KEY": "_index",
    "PlanIndex": "_index",
    "Scope": "_index",
    "arrow_keys": "_index",
    "canonical_keys": "_index",
    "entries_at": "_index",
    "id_bytes": "_index",
    "iter_masked": "_index",
    "keys_of": "_index",
    "narrowed": "_index",
    "needs_current_mask": "_index",
    "smallest_uint": "_index",
    "uuid_bytes": "_index",
    "uuid_text": "_index",
    "apply_tags_patch": "_mergepatch",
    "EMPTY": "_plan",
    "Plan": "_plan",
    "PlanEntry": "_plan",
    "SharedDict": "_plan",
    "PrefixLookup": "_prefix",
    "CONFLICT": "_result",
    "DONE_STATUSES": "_result",
    "FAILED": "_result",
    "NOOP": "_result",
    "NOT_FOUND": "_result",
    "OK": "_result",
    "PLANNED": "_result",
    "Result": "_result",
    "SKIPPED": "_result",
    "STATUSES": "_result",
    "json_text": "_result",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
