"""The inventory (`export`): its columns, scopes, selection (`--where`, `--columns`,
`--long`), pages pivoted into rows, the volumes joined onto them (`--with volume`), and the
spill and output files.
"""

from __future__ import annotations

from batchtag.lazy import lazy_exports

_HOMES = {
    "ScopeChoice": "_scopes",
    "closest": "_keys",
    "count_keys": "_keys",
    "count_values": "_keys",
    "missing_tags": "_keys",
    "Where": "_where",
    "WhereError": "_where",
    "compile_where": "_where",
    "has_tags_column": "_frames",
    "inventory_frame": "_frames",
    "read_inventory": "_frames",
    "tag_dicts": "_frames",
    "Output": "_files",
    "STDOUT": "_files",
    "Spill": "_files",
    "field_type": "_files",
    "output_format": "_files",
    "stored_schema": "_files",
    "API_SCHEMA": "_select",
    "INVENTORY_COLUMNS": "_select",
    "LONG_COLUMNS": "_select",
    "RO_PREFIX": "_select",
    "SPILL_SCHEMA": "_select",
    "Scope": "_select",
    "Selection": "_select",
    "TAGS_COLUMN": "_select",
    "TAG_LIST": "_select",
    "empty_inventory": "_select",
    "is_tag_column": "_select",
    "long_frame": "_select",
    "page_table": "_select",
    "as_ids": "_select",
    "resolve_scopes": "_select",
    "split_columns": "_select",
    "tag_keys": "_select",
    "user_tags": "_select",
    "wide_table": "_select",
    "VOLUME_NAME": "_select",
    "is_volume_column": "_select",
    "with_volume_option": "_select",
    "VOLUME_API_SCHEMA": "_volumes",
    "Volumes": "_volumes",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
