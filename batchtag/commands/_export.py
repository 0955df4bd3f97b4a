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
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from batchtag.commands._guards import check_writable
from batchtag.config import resolve_settings
from batchtag.defaults import CONNECTION_OPTIONS, default
from batchtag.errors import CALLER, Interrupted, UsageError, option
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
    ScopeChoice,
    Selection,
    Spill,
    Volumes,
    empty_inventory,
    field_type,
    inventory_frame,
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
from batchtag.record import EXIT_FAILED, EXIT_OK, Progress, conform, fill_started

# ---------------------------------------------------------------- the run


@dataclass
class ExportOutcome:
    """What an export did: rows written, snapshots (and volumes) read, what reading cost
    (`stats`: the snapshots' reads; `volume_stats`: the volumes', None without them), the
    scopes that could not be read (left out; the run is partial: exit code 1)."""

    rows: int
    snapshots: int
    scopes: list[Scope]
    stats: ReadStats
    output: str | None
    frame: pd.DataFrame | None = None
    failed: list[ScopeError] = field(default_factory=list)
    volumes: int | None = None
    volume_stats: ReadStats | None = field(default=None, repr=False)

    @property
    def exit_code(self) -> int:
        """1 when the export is partial: a scope could not be read, or a listing stayed
        inconsistent after its re-reads (`ReadStats.missing`)."""
        return EXIT_FAILED if self.failed or self.stats.missing else EXIT_OK

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
            "failed_scopes": [f.as_dict() for f in self.failed],
            "requests": self.requests,
            "retries": retries,
            "warnings": [w for part in parts for w in part.warnings],
            "output": self.output,
            "missing": self.stats.missing,  # a listing that stayed inconsistent: an estimate
            "exit_code": self.exit_code,
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

    def close(self, ok: bool = True) -> None:
        if self.bar is not None:
            self.bar.close(ok)
            self.bar = None


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
    overwrite: bool = False,
    each: Callable[[pd.DataFrame], None] | None = None,
) -> ExportOutcome:
    """Read every scope, spill, pivot into `output` (None: no file); `collect` keeps a frame;
    `each` is given the rows a chunk at a time instead (frames typed as `collect`'s, without
    its ``tags`` column; at least one, empty for an empty inventory); an existing `output`
    is refused unless `overwrite`.

    `scopes` are listed, or chosen (`ScopeChoice`: the projects or regions may be listed
    from the API first). A scope that cannot be read is left out and named in the outcome
    (`batchtag.read.each_scope`); its rows read before it failed are dropped."""
    if concurrency < 1 or not rate > 0:
        raise UsageError(f"{option('concurrency')} must be >= 1 and {option('rate')} > 0")
    selection.check()
    output = fill_started({"output": output})["output"]
    target = Output(output) if output is not None else None
    if target is not None and target.target is not None:  # before any request
        refuse_existing(target.target, overwrite)
        check_writable(target.target, "output")
    settings = resolve_settings(base_url, api_key, insecure_http=insecure_http, ca_bundle=ca_bundle)
    register_secret(settings.api_key)
    spill, bar = Spill(SPILL_SCHEMA), PageBar(progress)
    keys: set[tuple[str, bool]] = set()
    spilled_keys: set[tuple[str, bool]] = set()  # of every page spilled (an interrupt's rows)
    rows_in: dict[Scope, int] = {}  # spilled per scope (a failed scope's are dropped)
    volumes = Volumes() if selection.with_volume else None
    volume_reader = None

    async def read_one(project_id: int, region_id: int) -> None:
        nonlocal keys
        found: set[tuple[str, bool]] = set()
        before = spill.rows
        try:
            async for page in reader.read_scope(project_id, region_id):
                table = page_table(page)
                found |= tag_keys(table)
                spill.add(table)
                spilled_keys.update(found)
        finally:
            rows_in[(project_id, region_id)] = spill.rows - before
        keys |= found

    try:
        try:
            async with Client(settings, connections=concurrency) as client:
                shared = {"limiter": RateLimiter(rate), "breaker": Breaker()}
                tables = TableClient(client, API_SCHEMA)  # pages as Arrow tables
                reader = Reader(
                    tables, concurrency=concurrency, progress=bar, isolate_scopes=True, **shared
                )
                chosen = scopes if isinstance(scopes, list) else await scopes.resolve(reader)
                failed: list[ScopeError] = []

                async def read_snapshots() -> None:
                    failed.extend(await each_scope(chosen, read_one))

                reads = [read_snapshots()]
                if volumes is not None:
                    listing = TableClient(client, VOLUME_API_SCHEMA, VOLUMES)
                    volume_reader = Reader(
                        listing,
                        concurrency=concurrency,
                        items="volumes",
                        isolate_scopes=True,
                        **shared,
                    )
                    reads.append(read_volumes(volume_reader, chosen, volumes, failed))
                await together(reads)
        except asyncio.CancelledError:
            if not collect or CALLER.get() == "cli":
                raise  # the command line ends an interrupted command its own way (exit 130)
            bar.close(ok=False)  # a Ctrl-C from Python: the rows read so far, no file
            joined = volumes.finish() if volumes is not None else None
            _, so_far = pivot(spill, *split_keys(spilled_keys), selection, None, True, joined)
            raise Interrupted(f"{spill.rows} snapshots read", report=so_far) from None
        bar.close()
        failed = first_per_scope(failed)
        for text in missing_tags(selection.names(), *split_keys(keys)):
            reader.warn(text)  # a name no snapshot has matches nothing: say so
        gone = {(f.project_id, f.region_id) for f in failed}
        joined = volumes.finish() if volumes is not None else None
        rows, frame = pivot(
            spill, *split_keys(keys), selection, target, collect, joined, gone, each
        )
    except BaseException:
        if target is not None:
            target.discard()
        raise
    finally:
        bar.close()
        spill.close()
    name = None if output is None else str(output)
    snapshots = spill.rows - sum(rows_in.get(scope, 0) for scope in gone)
    outcome = ExportOutcome(rows, snapshots, chosen, reader.stats, name, frame, failed)
    if volume_reader is not None:
        outcome.volumes, outcome.volume_stats = volumes.count, volume_reader.stats
    return outcome


async def read_volumes(
    reader: Reader, scopes: list[Scope], volumes: Volumes, failed: list[ScopeError]
) -> None:
    """List every scope's volumes into `volumes` (one listing per scope); a scope whose
    volumes cannot be listed is added to `failed` (its snapshots are left out: without their
    volumes they would look orphaned)."""

    async def list_one(project_id: int, region_id: int) -> None:
        async for page in reader.read_scope(project_id, region_id):
            volumes.add((project_id, region_id), page)

    failed.extend(await each_scope(scopes, list_one, what="volumes of scope"))


def first_per_scope(failed: list[ScopeError]) -> list[ScopeError]:
    """One failure per scope (its snapshots' or its volumes'), in the order they came."""
    seen: dict[Scope, ScopeError] = {}
    for error in failed:
        seen.setdefault((error.project_id, error.region_id), error)
    return list(seen.values())


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
    gone: set[Scope] = frozenset(),
    each: Callable[[pd.DataFrame], None] | None = None,
) -> tuple[int, pd.DataFrame | None]:
    """Spill -> wide (+ volumes -> where -> columns -> long) chunks -> output; returns
    (rows, frame). Rows of the scopes in `gone` (read in part, then failed) are left out;
    `each` gets each chunk as a typed frame (see `run_export`)."""
    available = [*INVENTORY_COLUMNS, *(TAG_PREFIX + k for k in user_keys)]
    available += [RO_PREFIX + k for k in ro_keys]
    available += volumes.columns if volumes is not None else []
    chosen = selection.pick(available)
    schema = output_schema(chosen, selection.long)
    frames, rows, given = [], 0, False
    framed = collect or each is not None
    piece = EACH_ROWS if each is not None and not collect and target is None else None
    for chunk in chunks(spill, user_keys, ro_keys, selection, chosen, framed, volumes, gone, piece):
        rows += chunk.num_rows if isinstance(chunk, pa.Table) else len(chunk)
        if target is not None:
            target.write(chunk if isinstance(chunk, pa.Table) else to_arrow(chunk, schema))
        if collect:
            frames.append(chunk)
        if each is not None:
            each(conform(chunk.drop(columns=TAGS_COLUMN, errors="ignore")))
            given = True
    if target is not None:
        target.close(schema)
    if not framed:
        return rows, None
    if not frames:
        empty = empty_inventory(with_volume=volumes is not None)
        empty = empty.reindex(columns=list(schema.names))
        if each is not None and not given:  # no chunk at all: an empty one
            each(conform(empty.drop(columns=TAGS_COLUMN, errors="ignore")))
        return rows, inventory_frame(empty) if collect else None
    return rows, inventory_frame(pd.concat(frames, ignore_index=True))


def chunks(
    spill, user_keys, ro_keys, selection, chosen, collect, volumes, gone, piece=None
) -> Iterator[Any]:
    """Each spill batch as an output chunk: an Arrow table when nothing needs pandas (a
    frame of at most `piece` rows at a time, when given)."""
    for whole in spill.batches():
        if gone:
            whole = without_scopes(whole, gone)
        step = piece or max(whole.num_rows, 1)
        for start in range(0, max(whole.num_rows, 1), step):
            batch = whole.slice(start, step)
            yield from _chunk(batch, user_keys, ro_keys, selection, chosen, collect, volumes)


def _chunk(batch, user_keys, ro_keys, selection, chosen, collect, volumes) -> Iterator[Any]:
    """One spill batch (or a piece of it) as an output chunk (see `chunks`)."""
    table = wide_table(batch, user_keys, ro_keys)
    if volumes is not None:
        table = volumes.join(table)
    if selection.where is None and not selection.long and not collect:
        yield with_columns(table, chosen)
        return
    frame = table.to_pandas()
    if selection.where is not None:  # (the dicts only matter to a where: dropped below)
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
EACH_ROWS = 8_192  # rows made into a frame at a time for `run_export`'s `each`
