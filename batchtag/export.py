"""`batchtag export`: the inventory of one or more scopes as a wide manifest.

One row per snapshot: the inventory columns, one `tag:<key>` column per user tag key and one
`ro:<key>` column per read-only tag key. Pages are spilled to a temporary file as they
arrive (the set of tag keys is known only at the end) and pivoted into the output in
chunks, so memory stays flat however big the scope is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from batchtag.client import Client
from batchtag.config import resolve_settings
from batchtag.defaults import CONNECTION_OPTIONS, document_options
from batchtag.errors import UsageError, option
from batchtag.export_io import Output, Spill, field_type, output_format
from batchtag.guards import check_writable
from batchtag.inventory import (
    API_SCHEMA,
    INVENTORY_COLUMNS,
    LONG_COLUMNS,
    RO_PREFIX,
    SPILL_SCHEMA,
    TAGS_COLUMN,
    Scope,
    Selection,
    empty_inventory,
    is_tag_column,
    long_frame,
    page_table,
    resolve_scopes,
    split_columns,
    tag_keys,
    user_tags,
    wide_table,
)
from batchtag.limiter import RateLimiter
from batchtag.logs import register_secret
from batchtag.manifest import TAG_PREFIX
from batchtag.pagetable import TableClient
from batchtag.progress import Progress
from batchtag.reader import DEFAULTS, Reader, ReadStats

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
            "missing": self.stats.missing,  # a listing that stayed inconsistent: an estimate
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
    scopes: list[Scope],
    selection: Selection,
    output: str | os.PathLike | None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    insecure_http: bool = False,
    ca_bundle: str | os.PathLike | None = None,
    concurrency: int = DEFAULTS.concurrency,
    rate: float = DEFAULTS.rate,
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
        empty = empty_inventory().reindex(columns=list(schema.names))
        return rows, empty if selection.long else empty.assign(**{TAGS_COLUMN: []})
    return rows, pd.concat(frames, ignore_index=True)


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


async def export_async(
    *,
    project_id: int | Iterable[int] | None = None,
    region_id: int | Iterable[int] | None = None,
    scopes: Any = None,
    where: str | None = None,
    columns: str | Iterable[str] | None = None,
    long: bool = False,
    output: str | os.PathLike | None = None,
    overwrite: bool = False,
    **reading: Any,
) -> pd.DataFrame:
    """The inventory of one or more scopes as a DataFrame (and `output`, when given).

    Parameters
    ----------
    project_id, region_id : int or list of int, optional
        Every project x region is exported; default: GCORE_CLOUD_PROJECT_ID / _REGION_ID.
    scopes : path, DataFrame or list of (project_id, region_id), optional
        Explicit pairs instead (CSV/JSONL file with project_id, region_id columns).
    where : str, optional
        A ``DataFrame.query`` expression; backticks for ``tag:``/``ro:`` columns, which
        behave as all-NA when no snapshot has the key.
    columns : str or list of str, optional
        Columns to keep (comma-separated or a list; patterns like ``tag:*``).
    long : bool
        One row per (snapshot, tag) with key, value, read_only; a snapshot without tags
        (of the chosen columns) is one row with key and value NA, read_only False.
    output : path, optional
        Also write .csv / .parquet / .jsonl.
    overwrite : bool
        Replace `output` when it exists (else refused before any request).

    Returns
    -------
    pandas.DataFrame
        One row per snapshot; user tags both as ``tag:<key>`` columns and as a ``tags``
        dict column. ``frame.attrs["export"]`` holds the summary (requests, warnings).

    Examples
    --------
    >>> df = await batchtag.export_async(project_id=1, region_id=1,
    ...                                  where="`tag:cost-center`.isna() and size > 100")
    """
    from batchtag.library import refuse_unknown

    refuse_unknown(reading, READ_NAMES, "export")
    if output is not None:
        output_format(output)
    selection = Selection(where, split_columns(columns), long)
    chosen = resolve_scopes(project_id, region_id, scopes)
    outcome = await run_export(
        chosen, selection, output, collect=True, overwrite=overwrite, **reading
    )
    outcome.frame.attrs["export"] = outcome.as_dict()
    return outcome.frame


def export(**options: Any) -> pd.DataFrame:
    from batchtag.library import run_blocking

    return run_blocking(lambda _: export_async(**options), "batchtag-export")


document_options(export_async, READ_NAMES)
document_options(
    export,
    like=export_async,
    summary="The inventory of one or more scopes, from sync code (a notebook's running\n"
    "event loop is fine: the read then runs on its own loop in a helper thread).",
)
