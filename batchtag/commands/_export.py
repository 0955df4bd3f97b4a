"""`batchtag export`: the inventory of one or more scopes as a wide manifest.

One row per snapshot: the inventory columns, one `tag:<key>` column per user tag key and one
`ro:<key>` column per read-only tag key. Pages are spilled to a temporary file as they
arrive (the set of tag keys is known only at the end) and pivoted into the output in
chunks, so memory stays flat however big the scope is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from batchtag.commands._guards import check_writable
from batchtag.config import resolve_settings
from batchtag.defaults import CONNECTION_OPTIONS, default
from batchtag.errors import UsageError, option
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
    ScopeChoice,
    Selection,
    Spill,
    empty_inventory,
    field_type,
    is_tag_column,
    long_frame,
    missing_tags,
    page_table,
    tag_keys,
    user_tags,
    wide_table,
)
from batchtag.logs import register_secret
from batchtag.model import TAG_PREFIX
from batchtag.read import Reader, ReadStats, ScopeError, each_scope
from batchtag.record import EXIT_FAILED, EXIT_OK, Progress, fill_started

# ---------------------------------------------------------------- the run


@dataclass
class ExportOutcome:
    """What an export did: rows written, snapshots read, what reading cost, the scopes that
    could not be read (left out; the run is partial: exit code 1)."""

    rows: int
    snapshots: int
    scopes: list[Scope]
    stats: ReadStats
    output: str | None
    frame: pd.DataFrame | None = None
    failed: list[ScopeError] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.failed else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "snapshots": self.snapshots,
            "scopes": [list(s) for s in self.scopes],
            "failed_scopes": [f.as_dict() for f in self.failed],
            "requests": self.stats.requests,
            "retries": dict(self.stats.retries),
            "warnings": list(self.stats.warnings),
            "output": self.output,
            "exit_code": self.exit_code,
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

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


async def run_export(
    scopes: list[Scope] | ScopeChoice,
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
    """Read every scope, spill, pivot into `output` (None: no file); `collect` keeps a frame.

    `scopes` are listed, or chosen (`ScopeChoice`: the projects or regions may be listed
    from the API first). A scope that cannot be read is left out and named in the outcome
    (`batchtag.read.each_scope`); its rows read before it failed are dropped."""
    if concurrency < 1 or not rate > 0:
        raise UsageError(f"{option('concurrency')} must be >= 1 and {option('rate')} > 0")
    selection.check()
    output = fill_started({"output": output})["output"]
    target = Output(output) if output is not None else None
    if target is not None and target.target is not None:
        check_writable(target.target, "output")  # before any request
    settings = resolve_settings(base_url, api_key, insecure_http=insecure_http, ca_bundle=ca_bundle)
    register_secret(settings.api_key)
    spill, bar = Spill(SPILL_SCHEMA), PageBar(progress)
    keys: set[tuple[str, bool]] = set()
    dropped = 0

    async def read_one(project_id: int, region_id: int) -> None:
        nonlocal keys, dropped
        found: set[tuple[str, bool]] = set()
        before = spill.rows
        try:
            async for page in reader.read_scope(project_id, region_id):
                table = page_table(page)
                found |= tag_keys(table)
                spill.add(table)
        except ScopeError:
            dropped += spill.rows - before  # filtered out when pivoted
            raise
        keys |= found

    try:
        async with Client(settings, connections=concurrency) as client:
            tables = TableClient(client, API_SCHEMA)  # pages as Arrow tables
            reader = Reader(
                tables,
                concurrency=concurrency,
                limiter=RateLimiter(rate),
                progress=bar,
                isolate_scopes=True,
            )
            chosen = scopes if isinstance(scopes, list) else await scopes.resolve(reader)
            failed = await each_scope(chosen, read_one)
        bar.close()
        for text in missing_tags(selection.names(), *split_keys(keys)):
            reader.warn(text)  # a name no snapshot has matches nothing: say so
        gone = {(f.project_id, f.region_id) for f in failed}
        rows, frame = pivot(spill, *split_keys(keys), selection, target, collect, gone)
    except BaseException:
        if target is not None:
            target.discard()
        raise
    finally:
        bar.close()
        spill.close()
    name = None if output is None else str(output)
    snapshots = spill.rows - dropped
    return ExportOutcome(rows, snapshots, chosen, reader.stats, name, frame, failed)


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
    gone: set[Scope] = frozenset(),
) -> tuple[int, pd.DataFrame | None]:
    """Spill -> wide (-> where -> columns -> long) chunks -> output; returns (rows, frame).
    Rows of the scopes in `gone` (read in part, then failed) are left out."""
    available = [*INVENTORY_COLUMNS, *(TAG_PREFIX + k for k in user_keys)]
    available += [RO_PREFIX + k for k in ro_keys]
    chosen = selection.pick(available)
    schema = output_schema(chosen, selection.long)
    frames, rows = [], 0
    for chunk in chunks(spill, user_keys, ro_keys, selection, chosen, collect, gone):
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
        empty = empty_inventory().reindex(columns=list(schema.names))
        return rows, empty if selection.long else empty.assign(**{TAGS_COLUMN: []})
    return rows, pd.concat(frames, ignore_index=True)


def chunks(spill, user_keys, ro_keys, selection, chosen, collect, gone) -> Iterator[Any]:
    """Each spill batch as an output chunk: an Arrow table when nothing needs pandas."""
    for batch in spill.batches():
        if gone:
            batch = without_scopes(batch, gone)
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
            yield frame[[*chosen, TAGS_COLUMN]] if collect else frame[chosen]


def without_scopes(batch: pa.RecordBatch, gone: set[Scope]) -> pa.RecordBatch:
    """The rows of `batch` outside the scopes in `gone`."""
    import pyarrow.compute as pc

    keep = None
    for project_id, region_id in gone:
        here = pc.and_(
            pc.equal(batch.column("project_id"), project_id),
            pc.equal(batch.column("region_id"), region_id),
        )
        keep = here if keep is None else pc.or_(keep, here)
    return batch.filter(pc.invert(keep))


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
