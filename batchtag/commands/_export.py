"""`batchtag export`: the inventory of one or more scopes as a wide manifest.

One row per snapshot: the inventory columns, one `tag:<key>` column per user tag key and one
`ro:<key>` column per read-only tag key. Pages are spilled to a temporary file as they
arrive (the set of tag keys is known only at the end) and pivoted into the output in
chunks, so memory stays flat however big the scope is.

With the volumes (``--with volume``), each scope's volumes are listed too, once, while its
snapshots are read (the same client, limiter, breaker and retries), kept as Arrow columns
(`batchtag.inventory.Volumes`) and joined onto each chunk: ``volume_name`` and
``volume_tag:<key>`` after the snapshot's own columns.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from batchtag.commands._guards import check_writable
from batchtag.config import resolve_settings
from batchtag.defaults import CONNECTION_OPTIONS, default
from batchtag.errors import UsageError, option
from batchtag.gcore import VOLUMES, Breaker, Client, RateLimiter, TableClient
from batchtag.inventory import (
    API_SCHEMA,
    INVENTORY_COLUMNS,
    LONG_COLUMNS,
    RO_PREFIX,
    SPILL_SCHEMA,
    TAGS_COLUMN,
    VOLUME_API_SCHEMA,
    Output,
    Scope,
    Selection,
    Spill,
    Volumes,
    empty_inventory,
    field_type,
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
    """What an export did: rows written, snapshots (and volumes) read, what reading cost
    (`stats`: the snapshots' reads; `volume_stats`: the volumes', None without them)."""

    rows: int
    snapshots: int
    scopes: list[Scope]
    stats: ReadStats
    output: str | None
    frame: pd.DataFrame | None = None
    volumes: int | None = None
    volume_stats: ReadStats | None = field(default=None, repr=False)

    @property
    def requests(self) -> int:
        """Every request the export sent, snapshot and volume pages alike."""
        return self.stats.requests + (self.volume_stats.requests if self.volume_stats else 0)

    def as_dict(self) -> dict[str, Any]:
        parts = [self.stats] + ([self.volume_stats] if self.volume_stats else [])
        retries: dict[str, int] = {}
        for part in parts:
            for kind, count in part.retries.items():
                retries[kind] = retries.get(kind, 0) + count
        out = {
            "rows": self.rows,
            "snapshots": self.snapshots,
            "scopes": [list(s) for s in self.scopes],
            "requests": self.requests,
            "retries": retries,
            "warnings": [w for part in parts for w in part.warnings],
            "output": self.output,
            "missing": self.stats.missing,  # a listing that stayed inconsistent: an estimate
        }
        if self.volume_stats is not None:
            out["volumes"] = self.volumes
            out["volume_requests"] = self.volume_stats.requests
        return out


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

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
    overwrite: bool = False,
) -> ExportOutcome:
    """Read every scope, spill, pivot into `output` (None: no file); `collect` keeps a frame;
    an existing `output` is refused unless `overwrite`."""
    if concurrency < 1 or not rate > 0:
        raise UsageError(f"{option('concurrency')} must be >= 1 and {option('rate')} > 0")
    selection.check()
    target = Output(output) if output is not None else None
    if target is not None and target.target is not None:  # before any request
        refuse_existing(target.target, overwrite)
        check_writable(target.target, "output")
    settings = resolve_settings(base_url, api_key, insecure_http=insecure_http, ca_bundle=ca_bundle)
    register_secret(settings.api_key)
    spill, bar = Spill(SPILL_SCHEMA), PageBar(progress)
    keys: set[tuple[str, bool]] = set()
    volumes = Volumes() if selection.with_volume else None
    volume_reader = None
    try:
        async with Client(settings, connections=concurrency) as client:
            shared = {"limiter": RateLimiter(rate), "breaker": Breaker()}
            tables = TableClient(client, API_SCHEMA)  # pages as Arrow tables
            reader = Reader(tables, concurrency=concurrency, progress=bar, **shared)

            async def read_snapshots() -> None:
                nonlocal keys
                for project_id, region_id in scopes:
                    async for page in reader.read_scope(project_id, region_id):
                        table = page_table(page)
                        keys |= tag_keys(table)
                        spill.add(table)

            reads = [read_snapshots()]
            if volumes is not None:
                listing = TableClient(client, VOLUME_API_SCHEMA, VOLUMES)
                volume_reader = Reader(listing, concurrency=concurrency, items="volumes", **shared)
                reads.append(read_volumes(volume_reader, scopes, volumes))
            await together(reads)
        bar.close()
        joined = volumes.finish() if volumes is not None else None
        rows, frame = pivot(spill, *split_keys(keys), selection, target, collect, joined)
    except BaseException:
        if target is not None:
            target.discard()
        raise
    finally:
        bar.close()
        spill.close()
    name = None if output is None else str(output)
    outcome = ExportOutcome(rows, spill.rows, scopes, reader.stats, name, frame)
    if volume_reader is not None:
        outcome.volumes, outcome.volume_stats = volumes.count, volume_reader.stats
    return outcome


async def read_volumes(reader: Reader, scopes: list[Scope], volumes: Volumes) -> None:
    """List every scope's volumes into `volumes` (one listing per scope)."""
    for scope in scopes:
        async for page in reader.read_scope(*scope):
            volumes.add(scope, page)


async def together(reads: list[Coroutine[Any, Any, None]]) -> None:
    """Run the reads side by side; the first to fail cancels the others and is raised as
    it is (no exception group: callers catch ApiError, AbortRun, UsageError)."""
    tasks = [asyncio.ensure_future(read) for read in reads]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def refuse_existing(path: os.PathLike, overwrite: bool) -> None:
    """An existing file is never replaced silently (like a report): --overwrite says so."""
    if os.path.lexists(path) and not overwrite:
        raise UsageError(
            f"{option('output', str(path))} already exists: choose another {option('output')}, "
            f"or pass {option('overwrite', True)} to replace it"
        )


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
    volumes: Volumes | None = None,
) -> tuple[int, pd.DataFrame | None]:
    """Spill -> wide (+ volumes -> where -> columns -> long) chunks -> output; returns
    (rows, frame)."""
    available = [*INVENTORY_COLUMNS, *(TAG_PREFIX + k for k in user_keys)]
    available += [RO_PREFIX + k for k in ro_keys]
    available += volumes.columns if volumes is not None else []
    chosen = selection.pick(available)
    schema = output_schema(chosen, selection.long)
    frames, rows = [], 0
    for chunk in chunks(spill, user_keys, ro_keys, selection, chosen, collect, volumes):
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
        empty = empty_inventory(with_volume=volumes is not None)
        empty = empty.reindex(columns=list(schema.names))
        return rows, empty if selection.long else empty.assign(**{TAGS_COLUMN: []})
    return rows, pd.concat(frames, ignore_index=True)


def chunks(spill, user_keys, ro_keys, selection, chosen, collect, volumes) -> Iterator[Any]:
    """Each spill batch as an output chunk: an Arrow table when nothing needs pandas."""
    for batch in spill.batches():
        table = wide_table(batch, user_keys, ro_keys)
        if volumes is not None:
            table = volumes.join(table)
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
            yield frame[[*chosen, TAGS_COLUMN]] if collect else frame[chosen]


def with_columns(table: pa.Table, chosen: list[str]) -> pa.Table:
    present = set(table.column_names)  # one lookup a column, not a scan of the names
    arrays = [
        table.column(c) if c in present else pa.nulls(table.num_rows, pa.string()) for c in chosen
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
