"""`batchtag export`: the inventory of one or more scopes as a wide manifest.

One row per snapshot: the inventory columns, one `tag:<key>` column per user tag key and one
`ro:<key>` column per read-only tag key. Pages are spilled to a temporary file as they
arrive (the set of tag keys is known only at the end) and pivoted into the output in
chunks, so memory stays flat however big the scope is.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from batchtag.commands._guards import check_writable
from batchtag.config import resolve_settings
from batchtag.defaults import CONNECTION_OPTIONS, default
from batchtag.errors import Interrupted, UsageError, option
from batchtag.gcore import Client, RateLimiter, TableClient
from batchtag.inventory import (
    API_SCHEMA,
    INVENTORY_COLUMNS,
    LONG_COLUMNS,
    RO_PREFIX,
    SPILL_SCHEMA,
    TAGS_COLUMN,
    Output,
    Scope,
    Selection,
    Spill,
    empty_inventory,
    field_type,
    inventory_frame,
    is_tag_column,
    long_frame,
    page_table,
    tag_keys,
    user_tags,
    wide_table,
)
from batchtag.logs import register_secret
from batchtag.model import TAG_PREFIX
from batchtag.read import Reader, ReadStats
from batchtag.record import Progress

# ---------------------------------------------------------------- the run


@dataclass
class ExportOutcome:
    """What an export did: rows written, snapshots read, what reading cost."""

    rows: int
    snapshots: int
    scopes: list[Scope]
    stats: ReadStats
    output: str | None
    frame: pd.DataFrame | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "snapshots": self.snapshots,
            "scopes": [list(s) for s in self.scopes],
            "requests": self.stats.requests,
            "retries": dict(self.stats.retries),
            "warnings": list(self.stats.warnings),
            "output": self.output,
        }


class PageBar:
    """The progress bar of a read: created once the first page says how many there are."""

    def __init__(self, enabled: bool | None):
        self.enabled = enabled
        self.bar: Progress | None = None
        self.done = 0

    def __call__(self, read: int, total: int) -> None:
        if self.bar is None:
            self.bar = Progress(total, enabled=self.enabled)
        self.bar.advance(read - self.done, total)
        self.done = read

    def close(self, ok: bool = True) -> None:
        if self.bar is not None:
            self.bar.close(ok)
            self.bar = None


async def run_export(
    scopes: list[Scope],
    selection: Selection,
    output: str | os.PathLike | None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    insecure_http: bool = False,
    ca_bundle: str | os.PathLike | None = None,
    concurrency: int = default("concurrency"),
    rate: float = default("rate"),
    progress: bool | None = None,
    collect: bool = False,
) -> ExportOutcome:
    """Read every scope, spill, pivot into `output` (None: no file); `collect` keeps a frame."""
    if concurrency < 1 or not rate > 0:
        raise UsageError(f"{option('concurrency')} must be >= 1 and {option('rate')} > 0")
    selection.check()
    target = Output(output) if output is not None else None
    if target is not None and target.target is not None:
        check_writable(target.target, "output")  # before any request
    settings = resolve_settings(base_url, api_key, insecure_http=insecure_http, ca_bundle=ca_bundle)
    register_secret(settings.api_key)
    spill, bar = Spill(SPILL_SCHEMA), PageBar(progress)
    keys: set[tuple[str, bool]] = set()
    try:
        try:
            async with Client(settings, connections=concurrency) as client:
                tables = TableClient(client, API_SCHEMA)  # pages as Arrow tables
                reader = Reader(
                    tables, concurrency=concurrency, limiter=RateLimiter(rate), progress=bar
                )
                for project_id, region_id in scopes:
                    async for page in reader.read_scope(project_id, region_id):
                        table = page_table(page)
                        keys |= tag_keys(table)
                        spill.add(table)
        except asyncio.CancelledError:
            if not collect:
                raise
            bar.close(ok=False)  # a Ctrl-C from Python: the rows read so far, no file
            _, so_far = pivot(spill, *split_keys(keys), selection, None, True)
            raise Interrupted(f"{spill.rows} snapshots read", report=so_far) from None
        bar.close()
        rows, frame = pivot(spill, *split_keys(keys), selection, target, collect)
    except BaseException:
        if target is not None:
            target.discard()
        raise
    finally:
        bar.close()
        spill.close()
    name = None if output is None else str(output)
    return ExportOutcome(rows, spill.rows, scopes, reader.stats, name, frame)


def split_keys(keys: set[tuple[str, bool]]) -> tuple[list[str], list[str]]:
    """Sorted user tag keys and read-only tag keys."""
    return sorted(k for k, ro in keys if not ro), sorted(k for k, ro in keys if ro)


def pivot(
    spill: Spill,
    user_keys: list[str],
    ro_keys: list[str],
    selection: Selection,
    target: Output | None,
    collect: bool,
) -> tuple[int, pd.DataFrame | None]:
    """Spill -> wide (-> where -> columns -> long) chunks -> output; returns (rows, frame)."""
    available = [*INVENTORY_COLUMNS, *(TAG_PREFIX + k for k in user_keys)]
    available += [RO_PREFIX + k for k in ro_keys]
    chosen = selection.pick(available)
    schema = output_schema(chosen, selection.long)
    frames, rows = [], 0
    for chunk in chunks(spill, user_keys, ro_keys, selection, chosen, collect):
        table = chunk if isinstance(chunk, pa.Table) else to_arrow(chunk, schema)
        rows += table.num_rows
        if target is not None:
            target.write(table)
        if collect:
            frames.append(chunk)
    if target is not None:
        target.close(schema)
    if not collect:
        return rows, None
    if not frames:
        return rows, inventory_frame(empty_inventory().reindex(columns=list(schema.names)))
    return rows, inventory_frame(pd.concat(frames, ignore_index=True))


def chunks(spill, user_keys, ro_keys, selection, chosen, collect) -> Iterator[Any]:
    """Each spill batch as an output chunk: an Arrow table when nothing needs pandas."""
    for batch in spill.batches():
        table = wide_table(batch, user_keys, ro_keys)
        if selection.where is None and not selection.long and not collect:
            yield with_columns(table, chosen)
            continue
        frame = table.to_pandas()
        frame[TAGS_COLUMN] = user_tags(batch)
        frame = selection.filter(frame)
        for name in chosen:
            if name not in frame.columns:
                frame[name] = pd.Series([None] * len(frame), dtype=object, index=frame.index)
        if selection.long:
            keep = [c for c in chosen if not is_tag_column(c)]
            yield long_frame(frame[[*chosen]], keep)
        else:
            yield frame[chosen]


def with_columns(table: pa.Table, chosen: list[str]) -> pa.Table:
    arrays = [
        table.column(c) if c in table.column_names else pa.nulls(table.num_rows, pa.string())
        for c in chosen
    ]
    return pa.table(arrays, names=chosen)


def output_schema(chosen: list[str], long: bool) -> pa.Schema:
    names = [c for c in chosen if not is_tag_column(c)] + list(LONG_COLUMNS) if long else chosen
    return pa.schema([pa.field(n, field_type(n)) for n in names])


def to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    plain = frame[list(schema.names)].astype(object).where(frame[list(schema.names)].notna(), None)
    return pa.Table.from_pandas(plain, schema=schema, preserve_index=False)


# ---------------------------------------------------------------- Python API


# The options export's reads take, after its own (in `batchtag.defaults`).
READ_NAMES = (*CONNECTION_OPTIONS, "concurrency", "rate", "progress")
