"""The volumes of an export's scopes, joined onto its snapshot rows (``--with volume``).

Each scope's volumes are listed once (list pages, as the snapshots are) and kept as Arrow
columns: id, name and tags. Joined by the snapshot's ``volume_id`` within its own scope,
they give every row ``volume_name`` and one ``volume_tag:<key>`` column per user tag key
any volume has. A snapshot whose volume is not listed (deleted since, or no ``volume_id``)
gets NA in all of them; a listed volume without a name gets an empty ``volume_name``, so
``volume_name`` is NA exactly when the volume is missing. Read-only volume tags are not
joined: like a snapshot's ``ro:`` tags they are the platform's, not something to copy.

Examples
--------
>>> volumes = Volumes()
>>> volumes.add((1, 1), page_of([{"id": "v1", "name": "db", "tags": [
...     {"key": "team", "value": "data", "read_only": False}]}]))
>>> volumes.finish().columns
['volume_name', 'volume_tag:team']
>>> rows = pa.table({"project_id": [1, 1], "region_id": [1, 1], "volume_id": ["v1", "gone"]})
>>> volumes.join(rows).column("volume_tag:team").to_pylist()
['data', None]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from batchtag.inventory._select import TAG_LIST, VOLUME_NAME, Scope, TagCodes
from batchtag.model import VOLUME_TAG_PREFIX

VOLUME_API_SCHEMA = pa.schema(  # what a volume list page is parsed into (API names)
    [pa.field("id", pa.string()), pa.field("name", pa.string()), pa.field("tags", TAG_LIST)]
)


def page_of(volumes: list[dict]) -> pa.Table:
    """Volume objects as the list endpoint returns them, as a page table."""
    return pa.Table.from_pylist(volumes, schema=VOLUME_API_SCHEMA)


class Volumes:
    """The volumes of the scopes read: `add` pages, `finish`, then `join` rows."""

    def __init__(self) -> None:
        self._pages: dict[Scope, list[pa.Table]] = {}
        self._index: dict[Scope, tuple[int, pd.Index]] = {}  # scope -> (offset, ids)
        self._columns: dict[str, pa.Array] = {}  # output column -> a value per volume
        self.count = 0

    def add(self, scope: Scope, page: pa.Table | list) -> None:
        """One list page of `scope` (a `VOLUME_API_SCHEMA` table; [] when empty)."""
        if isinstance(page, list):
            page = page_of(page)
        self._pages.setdefault(scope, []).append(page.select(VOLUME_API_SCHEMA.names))
        self.count += page.num_rows

    def finish(self) -> Volumes:
        """Index what was added: one row per volume, every scope after the other."""
        tables, offset = [], 0
        for scope, pages in self._pages.items():
            table = pa.concat_tables(pages).combine_chunks() if pages else page_of([])
            ids = pc.utf8_lower(table.column("id")).to_numpy(zero_copy_only=False)
            self._index[scope] = (offset, pd.Index(ids))
            tables.append(table)
            offset += table.num_rows
        self._pages = {}
        table = pa.concat_tables(tables).combine_chunks() if tables else page_of([])
        tags = TagCodes(table.column("tags"))
        keys = sorted(k for k, read_only in tags.pairs() if not read_only)
        self._columns = {VOLUME_NAME: pc.fill_null(table.column("name").combine_chunks(), "")}
        for key in keys:
            self._columns[VOLUME_TAG_PREFIX + key] = tags.column(key, False, table.num_rows)
        return self

    @property
    def columns(self) -> list[str]:
        """The joined columns: ``volume_name``, then ``volume_tag:<key>`` by key."""
        return list(self._columns)

    def positions(self, rows: pa.Table) -> np.ndarray:
        """Per row of `rows` (project_id, region_id, volume_id): its volume's row, -1 when
        its scope does not list it."""
        at = np.full(rows.num_rows, -1, dtype=np.int64)
        if not rows.num_rows:
            return at
        projects = rows.column("project_id").to_numpy(zero_copy_only=False)
        regions = rows.column("region_id").to_numpy(zero_copy_only=False)
        ids = pc.utf8_lower(rows.column("volume_id")).to_numpy(zero_copy_only=False)
        for (project_id, region_id), (offset, index) in self._index.items():
            mine = np.flatnonzero((projects == project_id) & (regions == region_id))
            if len(mine):
                found = index.get_indexer(ids[mine])
                at[mine] = np.where(found >= 0, found + offset, -1)
        return at

    def join(self, rows: pa.Table) -> pa.Table:
        """`rows` with the volume columns appended (NA where the volume is missing)."""
        at = self.positions(rows)
        take = pa.array(np.maximum(at, 0), mask=at < 0)
        for name, values in self._columns.items():
            rows = rows.append_column(name, values.take(take))
        return rows
