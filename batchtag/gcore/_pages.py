"""List pages as Arrow tables: a list response's body parsed by pyarrow's JSON reader (C++,
no Python object per snapshot) into the columns a caller asks for.

A page is ``{"count": int, "results": table}``: the fields of `schema` by their API names,
one row per snapshot. A body the strict Arrow reader does not take as it is (a float where
an integer is due, a repeated key, ...) is read as before instead: ``json.loads``, the
checks of `Client.list_page`, then ``pyarrow.Table.from_pylist``; what that cannot convert
either, or a snapshot without an id, is a BadResponse ApiError naming why.

Examples
--------
>>> import pyarrow as pa
>>> parse = table_parser(pa.schema([("id", pa.string()), ("size", pa.int64())]))
>>> page = parse(200, {}, b'{"count": 2, "results": [{"id": "a", "size": 1}, {"id": "b"}]}')
>>> page["count"], page["results"].to_pylist()
(2, [{'id': 'a', 'size': 1}, {'id': 'b', 'size': None}])
>>> parse(200, {}, b'{"count": 1, "results": [{"id": "a", "size": 1.0}]}')["results"].to_pylist()
[{'id': 'a', 'size': 1}]
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from batchtag.errors import first_line
from batchtag.gcore._client import (
    LIST_PAGE,
    LIST_QUERY,
    SNAPSHOTS,
    VOLUMES,
    bad_response,
    list_body,
    response_body,
)
from batchtag.model import arrow_keys, keys_of

Parser = Callable[[int, Any, bytes], dict]
ITEMS = {SNAPSHOTS: "snapshot", VOLUMES: "volume"}  # what each list holds, for messages


def table_parser(schema: Any, item: str = "snapshot") -> Parser:
    """A list body parser for `Client.request` (`parse=`): ``(status, headers, raw) -> page``.

    Parameters
    ----------
    schema : pyarrow.Schema
        The fields to keep, by their API names (others are ignored); a field an item
        lacks is null.
    item : str
        What the list holds ("snapshot", "volume"), for messages.

    Returns
    -------
    callable
        Raises the response's ApiError for a non-2xx status, as every request does.
    """
    options = _parse_options(schema)

    def parse(status: int, headers: Any, raw: bytes) -> dict:
        if 200 <= status < 300 and raw:
            page = _arrow_page(raw, options)
            if page is not None:
                return page
        page = list_body(status, response_body(status, headers, raw))
        return {**page, "results": _from_pylist(status, page["results"], schema, item)}

    return parse


@functools.cache
def _parse_options(schema: Any) -> Any:
    import pyarrow as pa
    import pyarrow.json as pajson

    page = pa.schema([("count", pa.int64()), ("results", pa.list_(pa.struct(list(schema))))])
    return pajson.ParseOptions(
        explicit_schema=page, unexpected_field_behavior="ignore", newlines_in_values=True
    )


def _arrow_page(raw: bytes, options: Any) -> dict | None:
    """The page as Arrow columns, or None when the body is not a plain list page."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pajson

    read = pajson.ReadOptions(use_threads=False, block_size=len(raw) + 1)
    try:
        body = pajson.read_json(pa.BufferReader(raw), read_options=read, parse_options=options)
    except (pa.ArrowException, ValueError):
        return None
    if body.num_rows != 1:
        return None
    count, results = body.column("count").chunk(0), body.column("results").chunk(0)
    if count.null_count or results.null_count:
        return None
    snapshots = pc.list_flatten(results)
    if snapshots.null_count or snapshots.field("id").null_count:
        return None
    return {"count": count[0].as_py(), "results": pa.Table.from_struct_array(snapshots)}


class TableClient:
    """A `Client` whose `list_page` makes Arrow pages (see `table_parser`); the rest is the
    client's own. For `Reader.read_scope` (`batchtag.read.read_keys` reads dicts).

    Parameters
    ----------
    client : Client
        The open client (session, auth, timeouts).
    schema : pyarrow.Schema
        The fields of each listed item to keep.
    resource : str
        Which list: `SNAPSHOTS` (the default) or `VOLUMES`, under the same client.

    Examples
    --------
    >>> tables = TableClient(client, pa.schema([("id", pa.string())]))  # doctest: +SKIP
    >>> async for page in Reader(tables).read_scope(1, 1):               # doctest: +SKIP
    ...     page.column("id")  # a pyarrow.Table (or [] for an empty page)
    """

    def __init__(self, client: Any, schema: Any, resource: str = SNAPSHOTS):
        self.client = client
        self.resource = resource
        self.parse = table_parser(schema, ITEMS[resource])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def list_page(
        self, project_id: int, region_id: int, *, limit: int = LIST_PAGE, offset: int = 0
    ) -> dict:
        url = self.client.url(project_id, region_id, resource=self.resource)
        url += LIST_QUERY.format(limit=limit, offset=offset)
        return (await self.client.request("GET", url, parse=self.parse))[1]


def _from_pylist(status: int, items: list, schema: Any, item: str) -> Any:
    import pyarrow as pa

    try:
        table = pa.Table.from_pylist(items, schema=schema)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as error:
        why = f"a {item} does not fit the API's fields ({first_line(error)})"
        raise bad_response(status, why) from None
    if table.column("id").null_count:
        raise bad_response(status, f"a {item} has no 'id'")
    return table


def row_keys(rows: Any) -> np.ndarray:
    """The id keys (`batchtag.model._index.id_bytes`) of a page's rows, dicts or a table."""
    if isinstance(rows, list):
        return keys_of(snapshot["id"] for snapshot in rows)
    return arrow_keys(rows.column("id"))


def take_rows(rows: Any, mask: np.ndarray) -> Any:
    """The rows of a page where `mask` is true, in order (a table stays a table)."""
    if isinstance(rows, list):
        return [rows[i] for i in np.flatnonzero(mask).tolist()]
    if mask.all():
        return rows
    import pyarrow as pa

    return rows.filter(pa.array(mask))
