"""`batchtag export`: the inventory of one or more scopes as a wide manifest.

One row per snapshot: the inventory columns, one `tag:<key>` column per user tag key and one
`ro:<key>` column per read-only tag key. Pages are spilled to a temporary file as they
arrive (the set of tag keys is known only at the end) and pivoted into the output in
chunks, so memory stays flat however big the scope is.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from batchtag.client import Client
from batchtag.config import ENV_PROJECT_ID, ENV_REGION_ID, resolve_settings
from batchtag.errors import UsageError, option
from batchtag.export_io import Output, Spill, field_type, output_format
from batchtag.limiter import RateLimiter
from batchtag.logs import register_secret
from batchtag.manifest import TAG_PREFIX
from batchtag.progress import Progress
from batchtag.reader import DEFAULTS, Reader, ReadStats

log = logging.getLogger("batchtag.export")

RO_PREFIX = "ro:"
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
LONG_COLUMNS = ("key", "value", "read_only")
KEY_COLUMNS = INVENTORY_COLUMNS[:3]
TAGS_COLUMN = "tags"  # Python frame only: the user tags as a dict
BACKTICKED = re.compile(r"`([^`]+)`")
Scope = tuple[int, int]


@dataclass
class Selection:
    """--where / --columns / --long, checked before any request."""

    where: str | None = None
    columns: list[str] | None = None
    long: bool = False
    where_tags: list[str] = field(default_factory=list)  # tag:/ro: names the expression uses

    def check(self) -> None:
        if self.where is not None:
            self.where_tags = [n for n in BACKTICKED.findall(self.where) if is_tag_column(n)]
            try:
                self.filter(empty_inventory(self.where_tags))
            except Exception as error:  # pandas raises many types for a bad expression
                raise UsageError(f"{option('where')}: {first_line(error)}") from None
        for name in self.columns or []:
            if not (is_pattern(name) or name in INVENTORY_COLUMNS or is_tag_column(name)):
                known = ", ".join(INVENTORY_COLUMNS)
                raise UsageError(
                    f"{option('columns')}: unknown column {name!r}; "
                    f"use {known}, tag:<key>, ro:<key> or a pattern like 'tag:*'"
                )

    def filter(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.where is None:
            return frame
        extra = [n for n in self.where_tags if n not in frame.columns]
        for name in extra:
            frame[name] = pd.Series([None] * len(frame), dtype=object, index=frame.index)
        selected = frame.query(self.where, engine="python")
        return selected.drop(columns=extra)

    def pick(self, available: list[str]) -> list[str]:
        """The output columns, in inventory order then key order."""
        if not self.columns:
            return available
        out: list[str] = []
        for name in self.columns:
            matched = fnmatch.filter(available, name) if is_pattern(name) else [name]
            out += [m for m in matched if m not in out]
        return out


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def is_tag_column(name: str) -> bool:
    return name.startswith((TAG_PREFIX, RO_PREFIX)) and len(name) > len(RO_PREFIX)


def is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def empty_inventory(tag_columns: Iterable[str] = ()) -> pd.DataFrame:
    columns = {
        c: pd.Series([], dtype="int64" if field_type(c) == pa.int64() else object)
        for c in INVENTORY_COLUMNS
    }
    columns.update({c: pd.Series([], dtype=object) for c in tag_columns})
    return pd.DataFrame(columns)


# ---------------------------------------------------------------- scopes


def resolve_scopes(
    project_id: int | Iterable[int] | None = None,
    region_id: int | Iterable[int] | None = None,
    scopes: Any = None,
    env: dict[str, str] | None = None,
) -> list[Scope]:
    """The (project_id, region_id) pairs to export: `scopes` (file, frame or pairs), else
    every project x region given, else the env vars."""
    if scopes is not None:
        return read_scopes(scopes)
    env = os.environ if env is None else env
    projects = as_ids(project_id, "project_id", env.get(ENV_PROJECT_ID))
    regions = as_ids(region_id, "region_id", env.get(ENV_REGION_ID))
    return list(dict.fromkeys((p, r) for p in projects for r in regions))


def as_ids(value: Any, name: str, fallback: str | None) -> list[int]:
    if value is None or (isinstance(value, (list, tuple)) and not value):
        if fallback is None or not fallback.strip():
            env = ENV_PROJECT_ID if name == "project_id" else ENV_REGION_ID
            raise UsageError(
                f"no scope: pass {option(name)} or set {env}, or pass {option('scopes')}"
            )
        value, name = fallback, f"{name} (from the environment)"
    values = [value] if isinstance(value, (int, str)) else list(value)
    return [positive_int(v, name) for v in values]


def positive_int(value: Any, where: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1:
        raise UsageError(f"{where}: expected a positive integer, got {value!r}")
    return number


def read_scopes(scopes: Any) -> list[Scope]:
    """Scopes from a CSV/JSONL file or a DataFrame with project_id and region_id columns,
    or from an iterable of pairs."""
    if isinstance(scopes, (str, os.PathLike)):
        frame = read_scopes_file(str(scopes))
    elif isinstance(scopes, pd.DataFrame):
        frame = scopes
    else:
        frame = pd.DataFrame(list(scopes), columns=["project_id", "region_id"])
    missing = {"project_id", "region_id"} - set(frame.columns)
    if missing:
        raise UsageError(f"{option('scopes')}: missing column(s) {', '.join(sorted(missing))}")
    if frame.empty:
        raise UsageError(f"{option('scopes')}: no scopes listed")
    pairs = []
    for row, (p, r) in enumerate(zip(frame["project_id"], frame["region_id"], strict=True), 1):
        where = f"{option('scopes')} row {row}"
        pairs.append(
            (positive_int(p, f"{where}, project_id"), positive_int(r, f"{where}, region_id"))
        )
    return list(dict.fromkeys(pairs))


def read_scopes_file(path: str) -> pd.DataFrame:
    try:
        if path.lower().endswith((".jsonl", ".ndjson")):
            return pd.read_json(path, lines=True, dtype=False)
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise UsageError(f"{option('scopes', path)}: cannot read: {first_line(error)}") from None


# ---------------------------------------------------------------- rows


def page_columns(page: list[dict]) -> dict[str, list]:
    """A page of API snapshots as spill columns (inventory + user / ro tag maps)."""
    out: dict[str, list] = {c: [] for c in INVENTORY_COLUMNS}
    out["user"], out["ro"] = [], []
    fields = INVENTORY_COLUMNS[3:]
    for snap in page:
        out["project_id"].append(snap.get("project_id"))
        out["region_id"].append(snap.get("region_id"))
        out["snapshot_id"].append(snap["id"])
        for name in fields:
            out[name].append(snap.get(name))
        tags = snap.get("tags") or []
        out["user"].append([(t["key"], t["value"]) for t in tags if not t.get("read_only")])
        out["ro"].append([(t["key"], t["value"]) for t in tags if t.get("read_only")])
    return out


def wide_table(batch: pa.RecordBatch, user_keys: list[str], ro_keys: list[str]) -> pa.Table:
    """One spill batch pivoted: inventory columns, then tag:<key>, then ro:<key>."""
    arrays = {c: batch.column(c) for c in INVENTORY_COLUMNS}
    for prefix, source, keys in ((TAG_PREFIX, "user", user_keys), (RO_PREFIX, "ro", ro_keys)):
        cells: dict[str, list] = {k: [None] * batch.num_rows for k in keys}
        for row, pairs in enumerate(batch.column(source).to_pylist()):
            for key, value in pairs:
                cells[key][row] = value
        for key in keys:
            arrays[prefix + key] = pa.array(cells[key], pa.string())
    return pa.table(arrays)


def long_frame(wide: pd.DataFrame, keep: list[str]) -> pd.DataFrame:
    """One row per (snapshot, tag): `keep` columns plus key, value, read_only."""
    parts = []
    for column in [c for c in wide.columns if is_tag_column(c)]:
        present = wide[wide[column].notna()]
        if present.empty:
            continue
        part = present[keep].copy()
        part["key"] = column.split(":", 1)[1]
        part["value"] = present[column]
        part["read_only"] = column.startswith(RO_PREFIX)
        part["_order"] = present.index
        parts.append(part)
    if not parts:
        return pd.DataFrame(
            {
                **{c: wide[c].iloc[:0] for c in keep},
                "key": [],
                "value": [],
                "read_only": pd.Series([], dtype=bool),
            }
        )
    out = pd.concat(parts).sort_values("_order", kind="stable")
    return out.drop(columns="_order").reset_index(drop=True)


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
    concurrency: int = DEFAULTS.concurrency,
    rate: float = DEFAULTS.rate,
    progress: bool | None = None,
    collect: bool = False,
) -> ExportOutcome:
    """Read every scope, spill, pivot into `output` (None: no file); `collect` keeps a frame."""
    if concurrency < 1 or not rate > 0:
        raise UsageError(f"{option('concurrency')} must be >= 1 and {option('rate')} > 0")
    selection.check()
    target = Output(output) if output is not None else None
    settings = resolve_settings(base_url, api_key, insecure_http=insecure_http)
    register_secret(settings.api_key)
    spill, bar = Spill(INVENTORY_COLUMNS), PageBar(progress)
    keys: dict[str, set[str]] = {"user": set(), "ro": set()}
    try:
        async with Client(settings, connections=concurrency) as client:
            reader = Reader(
                client, concurrency=concurrency, limiter=RateLimiter(rate), progress=bar
            )
            for project_id, region_id in scopes:
                async for page in reader.read_scope(project_id, region_id):
                    columns = page_columns(page)
                    for source, found in keys.items():
                        for pairs in columns[source]:
                            found.update(k for k, _ in pairs)
                    spill.add(columns)
        bar.close()
        rows, frame = pivot(
            spill, sorted(keys["user"]), sorted(keys["ro"]), selection, target, collect
        )
    except BaseException:
        if target is not None:
            target.discard()
        raise
    finally:
        bar.close()
        spill.close()
    name = None if output is None else str(output)
    return ExportOutcome(rows, spill.rows, scopes, reader.stats, name, frame)


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
        frame[TAGS_COLUMN] = [dict(pairs) for pairs in batch.column("user").to_pylist()]
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


async def export_async(
    *,
    project_id: int | Iterable[int] | None = None,
    region_id: int | Iterable[int] | None = None,
    scopes: Any = None,
    where: str | None = None,
    columns: str | Iterable[str] | None = None,
    long: bool = False,
    output: str | os.PathLike | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    insecure_http: bool = False,
    concurrency: int = DEFAULTS.concurrency,
    rate: float = DEFAULTS.rate,
    progress: bool | None = None,
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
        One row per (snapshot, tag) with key, value, read_only.
    output : path, optional
        Also write .csv / .parquet / .jsonl.
    concurrency, rate : int, float
        Requests in flight and per second, as for apply.
    progress : bool, optional
        Progress bar; None: on a terminal.

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
    if output is not None:
        output_format(output)
    selection = Selection(where, split_columns(columns), long)
    outcome = await run_export(
        resolve_scopes(project_id, region_id, scopes),
        selection,
        output,
        base_url=base_url,
        api_key=api_key,
        insecure_http=insecure_http,
        concurrency=concurrency,
        rate=rate,
        progress=progress,
        collect=True,
    )
    frame = outcome.frame
    frame.attrs["export"] = outcome.as_dict()
    return frame


def split_columns(columns: str | Iterable[str] | None) -> list[str] | None:
    if columns is None:
        return None
    parts = columns.split(",") if isinstance(columns, str) else list(columns)
    return [p.strip() for p in parts if p.strip()] or None


def export(**options: Any) -> pd.DataFrame:
    """Blocking `export_async` (same keyword options); inside a running event loop (Jupyter)
    it runs on its own loop in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(export_async(**options))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(export_async(**options))
        except BaseException as exc:  # handed to the calling thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="batchtag-export", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]
