"""The shape of an export: its columns, the scopes it reads, --where/--columns/--long,
and snapshot pages turned into rows (spill columns, wide tables, long frames)."""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from batchtag.config import ENV_PROJECT_ID, ENV_REGION_ID
from batchtag.errors import CALLER, UsageError, first_line, option
from batchtag.inventory._files import field_type
from batchtag.inventory._where import compile_where
from batchtag.model import RO_PREFIX, TAG_PREFIX, VOLUME_TAG_PREFIX

log = logging.getLogger("batchtag.export")

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
VOLUME_NAME = "volume_name"  # with the volumes joined: the volume's name, NA without one
LONG_COLUMNS = ("key", "value", "read_only")
KEY_COLUMNS = INVENTORY_COLUMNS[:3]
TAGS_COLUMN = "tags"  # Python frame only: the user tags as a dict
Scope = tuple[int, int]


@dataclass
class Selection:
    """--where / --columns / --long / --with volume, checked before any request."""

    where: str | None = None
    columns: list[str] | None = None
    long: bool = False
    with_volume: bool = False

    def check(self) -> None:
        if self.where is not None:  # the grammar, then the inventory's column types
            where = compile_where(self.where, label=option("where"))
            self._needs_volume(option("where"), [c for c in where.columns if is_volume_column(c)])
            where.dry_run(empty_inventory(with_volume=self.with_volume))
        for name in self.columns or []:
            known = name in INVENTORY_COLUMNS or is_tag_column(name)
            if not (is_pattern(name) or known or is_volume_column(name)):
                volume = f", {VOLUME_NAME}, {VOLUME_TAG_PREFIX}<key>" if self.with_volume else ""
                raise UsageError(
                    f"{option('columns')}: unknown column {name!r}; use "
                    f"{', '.join(INVENTORY_COLUMNS)}, tag:<key>, ro:<key>{volume} or a "
                    "pattern like 'tag:*'"
                )
            self._needs_volume(option("columns"), [name] if is_volume_column(name) else [])

    def _needs_volume(self, where: str, names: list[str]) -> None:
        """Volume columns exist only with the volumes joined: say so, not "unknown"."""
        if names and not self.with_volume:
            raise UsageError(
                f"{where}: {names[0]!r} is a column of the snapshot's volume: "
                f"add {with_volume_option()} to join the volumes"
            )

    def names(self) -> list[str]:
        """The column names `where` and `columns` name outright (not patterns)."""
        named = list(compile_where(self.where).columns) if self.where is not None else []
        return named + [c for c in self.columns or [] if not is_pattern(c)]

    def filter(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.where is None:
            return frame
        return frame.loc[compile_where(self.where, label=option("where")).evaluate(frame)]

    def pick(self, available: list[str]) -> list[str]:
        """The output columns, in inventory order then key order."""
        if not self.columns:
            return available
        out: list[str] = []
        for name in self.columns:
            matched = fnmatch.filter(available, name) if is_pattern(name) else [name]
            out += [m for m in matched if m not in out]
        return out


def is_tag_column(name: str) -> bool:
    return name.startswith((TAG_PREFIX, RO_PREFIX)) and len(name) > len(RO_PREFIX)


def is_volume_column(name: str) -> bool:
    """``volume_name`` or a ``volume_tag:<key>`` column (there with the volumes joined)."""
    return name == VOLUME_NAME or (
        name.startswith(VOLUME_TAG_PREFIX) and len(name) > len(VOLUME_TAG_PREFIX)
    )


def with_volume_option() -> str:
    """How the caller asks for the volumes: ``--with volume`` or ``with_volume=True``."""
    return "--with volume" if CALLER.get() == "cli" else "with_volume=True"


def is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def empty_inventory(tag_columns: Iterable[str] = (), *, with_volume: bool = False) -> pd.DataFrame:
    """An inventory with no rows: its columns and their types (`with_volume`: and
    ``volume_name``), for checking a `where` before anything is read."""
    columns = {
        c: pd.Series([], dtype="int64" if field_type(c) == pa.int64() else object)
        for c in INVENTORY_COLUMNS
    }
    columns.update({c: pd.Series([], dtype=object) for c in tag_columns})
    if with_volume:
        columns[VOLUME_NAME] = pd.Series([], dtype=object)
    return pd.DataFrame(columns)


# ---------------------------------------------------------------- scopes


def resolve_scopes(
    project_id: int | Iterable[int] | None = None,
    region_id: int | Iterable[int] | None = None,
    scopes: Any = None,
    env: dict[str, str] | None = None,
) -> list[Scope]:
    """The (project_id, region_id) pairs to export.

    Parameters
    ----------
    project_id, region_id : int or iterable of int, optional
        Every project x region is a scope; missing ones come from the env vars.
    scopes : path, DataFrame or iterable of pairs, optional
        Explicit pairs instead (CSV/JSONL file with project_id, region_id columns).
    env : mapping, optional
        Instead of os.environ.

    Returns
    -------
    list of (int, int)
        Without repeats, in the order given.

    Examples
    --------
    >>> resolve_scopes([1, 2], 3, env={})
    [(1, 3), (2, 3)]
    """
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
            every = "all_projects" if name == "project_id" else "all_regions"
            raise UsageError(
                f"no scope: pass {option(name)} or set {env}, "
                f"or pass {option('scopes')} or {option(every)}"
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


TAG_LIST = pa.list_(
    pa.struct([("key", pa.string()), ("value", pa.string()), ("read_only", pa.bool_())])
)
SPILL_SCHEMA = pa.schema(
    [pa.field(c, field_type(c)) for c in INVENTORY_COLUMNS] + [pa.field("tags", TAG_LIST)]
)
API_SCHEMA = pa.schema(  # the same fields under the API's names
    [f.with_name("id") if f.name == "snapshot_id" else f for f in SPILL_SCHEMA]
)


def page_table(page: pa.Table | list[dict]) -> pa.Table:
    """A page of API snapshots as a spill table.

    Parameters
    ----------
    page : pyarrow.Table or list of dict
        The API_SCHEMA fields of a page (`batchtag.gcore._pages.TableClient`'s pages), or
        snapshot objects as the list endpoint returns them.

    Returns
    -------
    pyarrow.Table
        INVENTORY_COLUMNS plus ``tags`` (list of key/value/read_only structs), with no
        Python work per snapshot.
    """
    if isinstance(page, list):
        page = pa.Table.from_pylist(page, schema=API_SCHEMA)
    return page.rename_columns(SPILL_SCHEMA.names)


def tag_entries(tags: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, ...]:
    """Every tag of a column of tag lists: (row, key, value, read_only) as numpy arrays."""
    if isinstance(tags, pa.ChunkedArray):
        tags = tags.combine_chunks()
    flat = pc.list_flatten(tags)
    return (
        pc.list_parent_indices(tags).to_numpy(),
        flat.field("key").to_numpy(zero_copy_only=False),
        flat.field("value").to_numpy(zero_copy_only=False),
        flat.field("read_only").fill_null(False).to_numpy(zero_copy_only=False).astype(bool),
    )


class TagCodes:
    """The tags of a column of tag lists, each key coded once: no Python object per tag."""

    def __init__(self, tags: pa.ChunkedArray | pa.Array):
        if isinstance(tags, pa.ChunkedArray):
            tags = tags.combine_chunks()
        flat = pc.list_flatten(tags)
        coded = flat.field("key").dictionary_encode()
        self.rows = pc.list_parent_indices(tags).to_numpy()
        self.values = flat.field("value")
        self.read_only = flat.field("read_only").fill_null(False).to_numpy(zero_copy_only=False)
        # a key's code, or -1 for a null key: it matches no name
        self.codes = coded.indices.fill_null(-1).to_numpy()
        self.names = {name: at for at, name in enumerate(coded.dictionary.to_pylist())}

    def pairs(self) -> set[tuple[str, bool]]:
        """The (key, read_only) pairs found."""
        names = list(self.names)
        found = np.unique(self.codes[self.codes >= 0] * 2 + self.read_only[self.codes >= 0])
        return {(names[c >> 1], bool(c & 1)) for c in found.tolist()}

    def column(self, key: str, read_only: bool, length: int) -> pa.Array:
        """The value of tag `key` in each of `length` rows (null without it; the last of
        repeats)."""
        at = np.zeros(length, dtype=np.int64)
        has = np.zeros(length, dtype=bool)
        code = self.names.get(key)
        if code is not None:
            hit = self.positions(code * 2 + bool(read_only))
            at[self.rows[hit]], has[self.rows[hit]] = hit, True
        return self.values.take(pa.array(at, mask=~has))

    def positions(self, group: int) -> np.ndarray:
        """The tags of one (key code, read_only) group, in order: the tags are sorted by
        group once, so a column costs its own tags, not a scan of every tag per key."""
        if not hasattr(self, "_order"):
            groups = self.codes * 2 + self.read_only  # null keys (-1) sort first, unmatched
            self._order = np.argsort(groups, kind="stable")
            self._sorted = groups[self._order]
        start, end = np.searchsorted(self._sorted, [group, group + 1])
        return self._order[start:end]


def tag_keys(table: pa.Table) -> set[tuple[str, bool]]:
    """The (key, read_only) pairs found in a page."""
    return TagCodes(table.column("tags")).pairs()


def wide_table(batch: pa.RecordBatch, user_keys: list[str], ro_keys: list[str]) -> pa.Table:
    """One spill batch pivoted: inventory columns, then tag:<key>, then ro:<key>."""
    arrays = {c: batch.column(c) for c in INVENTORY_COLUMNS}
    tags = TagCodes(batch.column("tags"))
    for prefix, names, flag in ((TAG_PREFIX, user_keys, False), (RO_PREFIX, ro_keys, True)):
        for key in names:
            arrays[prefix + key] = tags.column(key, flag, batch.num_rows)
    return pa.table(arrays)


def user_tags(batch: pa.RecordBatch) -> list[dict[str, str]]:
    """The user tags of each row as a dict (the Python frame's `tags` column)."""
    out: list[dict[str, str]] = [{} for _ in range(batch.num_rows)]
    rows, keys, values, read_only = tag_entries(batch.column("tags"))
    for row, key, value in zip(rows[~read_only], keys[~read_only], values[~read_only], strict=True):
        out[row][key] = value
    return out


def long_frame(wide: pd.DataFrame, keep: list[str]) -> pd.DataFrame:
    """One row per (snapshot, tag): `keep` columns plus key, value, read_only; a snapshot
    with none of the frame's tags is one row too, its key and value empty (NA) and
    read_only False, so every snapshot is listed.

    Rows in the frame's order, each row's tags in column order. Each tag column is read
    once and the rest of the frame taken once, so the cost is the size of the frame, not
    keys x rows."""
    names = [c for c in wide.columns if is_tag_column(c)]
    rows, which, values = [], [], []
    tagged = np.zeros(len(wide), dtype=bool)
    for at, column in enumerate(names):
        cells = wide[column]
        hit = np.flatnonzero(cells.notna().to_numpy())
        if len(hit):
            rows.append(hit)
            which.append(np.full(len(hit), at))
            values.append(cells.iloc[hit])
            tagged[hit] = True
    bare = np.flatnonzero(~tagged)
    if len(bare):  # untagged: one row with no key (`which` past the names)
        rows.append(bare)
        which.append(np.full(len(bare), len(names)))
        filler = values[0].dtype if values else object
        values.append(pd.Series([None] * len(bare), dtype=filler))
    if not rows:
        return pd.DataFrame(
            {
                **{c: wide[c].iloc[:0] for c in keep},
                "key": [],
                "value": [],
                "read_only": pd.Series([], dtype=bool),
            }
        )
    row, column = np.concatenate(rows), np.concatenate(which)
    order = np.lexsort((column, row))  # by row, then by column: the frame's own order
    out = wide[keep].iloc[row[order]].reset_index(drop=True)
    keys = [n.split(":", 1)[1] for n in names]
    out["key"] = np.array([*keys, None], dtype=object)[column[order]]
    out["value"] = pd.concat(values, ignore_index=True).iloc[order].reset_index(drop=True)
    out["read_only"] = np.array([n.startswith(RO_PREFIX) for n in names] + [False])[column[order]]
    return out


def split_columns(columns: str | Iterable[str] | None) -> list[str] | None:
    if columns is None:
        return None
    parts = columns.split(",") if isinstance(columns, str) else list(columns)
    return [p.strip() for p in parts if p.strip()] or None
