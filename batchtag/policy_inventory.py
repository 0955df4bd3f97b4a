"""TEMPORARY stand-in for `batchtag.inventory` (the export branch), so the policy layer
works and is tested before export lands. TODO(integrator): delete this file after merging
the export branch; `batchtag.policy` then imports the real names (same API)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from batchtag.manifest import TAG_PREFIX

RO_PREFIX = "ro:"
TAGS_COLUMN = "tags"  # Python frame only: the user tags as a dict
INVENTORY_COLUMNS = (
    "project_id",
    "region_id",
    "snapshot_id",
    "name",
    "status",
    "size",
    "volume_id",
    "created_at",
    "updated_at",
    "task_id",
)
_INT_COLUMNS = ("project_id", "region_id", "size")


def is_tag_column(name: str) -> bool:
    return name.startswith((TAG_PREFIX, RO_PREFIX)) and len(name) > len(RO_PREFIX)


def empty_inventory(tag_columns: Iterable[str] = ()) -> pd.DataFrame:
    columns = {
        c: pd.Series([], dtype="int64" if c in _INT_COLUMNS else object) for c in INVENTORY_COLUMNS
    }
    columns.update({c: pd.Series([], dtype=object) for c in tag_columns})
    return pd.DataFrame(columns)
