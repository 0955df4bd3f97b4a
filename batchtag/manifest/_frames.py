"""Parquet files and pandas DataFrames as manifests.

A DataFrame's rows are named by their index label (what `df.loc` takes) in problems and in
the plan's `rows`. Cells may be text or numbers: ints stay exact ("3"), whole floats read as
ints ("3.0" -> "3"), other floats keep their shortest form ("2.5"). A list, dict, tuple, set,
array or bytes object in a column the manifest's form reads is refused, naming its row and
column (`tags` takes dicts: they are its merge patch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from batchtag.errors import ManifestError, Problem
from batchtag.manifest._cells import column_type, held_column, python_cell, text_column
from batchtag.manifest._forms import edited_tags_copy, is_export_tags_copy
from batchtag.manifest._model import Manifest, header_problems
from batchtag.model import ID_COLUMNS, LONG_COLUMNS, NAME_COLUMN, TAG_PREFIX
from batchtag.record import unread_columns

BATCH_ROWS = 65_536  # Parquet rows read at once
NOT_CELLS = (list, tuple, set, frozenset, dict, bytes, bytearray, np.ndarray)


def load_parquet(path: Path) -> Manifest:
    """Read a Parquet manifest; see `text_column` for how types become text.

    The file is read a batch of rows at a time and each batch turned into the columns a
    manifest holds at once, so the file's own columns are never all in memory beside them."""
    import pyarrow.parquet as pq  # (with the filesystems it loads: only for a Parquet file)

    try:
        with pq.ParquetFile(path) as parquet:
            raw = list(parquet.schema_arrow.names)
            problems = header_problems(raw, line=None)
            if problems:
                raise ManifestError(problems)
            skip = unread_columns(name.strip() for name in raw)
            read = [name for name in raw if name.strip() not in skip]
            names = [name.strip() for name in read]
            chunks: dict[str, list] = {name: [] for name in names}
            converted: dict[str, tuple[int, Any]] = {}
            done = 0
            batches = parquet.iter_batches(batch_size=BATCH_ROWS, columns=read, use_threads=False)
            for batch in batches:
                for name, column in zip(names, batch.columns, strict=True):
                    if is_value_column(name) and name not in converted:
                        first = _first_typed(column)
                        if first is not None:
                            converted[name] = (done + first[0], first[1])
                    chunks[name].append(held_column(name, text_column(name, column, problems)))
                done += batch.num_rows
            rows = parquet.metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise ManifestError([Problem(f"cannot read {path.name} as Parquet: {exc}")]) from None
    columns = {name: pa.chunked_array(c, type=column_type(name)) for name, c in chunks.items()}
    manifest = _from_columns(columns, rows, "parquet", list(dict.fromkeys(problems)))
    manifest.converted = [(name, *first) for name, first in converted.items()]
    return manifest


def _first_typed(column: pa.Array) -> tuple[int, Any] | None:
    """(1-based row in `column`, value) of its first cell when it is typed other than text
    (numbers, booleans); None for text columns and columns with no value."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
        return None
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        return None
    valid = np.flatnonzero(column.is_valid().to_numpy(zero_copy_only=False))
    if not len(valid):
        return None
    return int(valid[0]) + 1, column[int(valid[0])].as_py()


def load_frame(df: pd.DataFrame) -> Manifest:
    """Read a DataFrame manifest (its rows are named by index label)."""
    names = [str(c) for c in df.columns]
    problems = header_problems(names, line=None) + _index_problems(df.index, names)
    cell_problems: list[Problem] = []
    converted = []
    columns = {}
    skip = unread_columns(name.strip() for name in names)
    for i, name in enumerate(names):
        if name.strip() in skip:
            continue
        series = df.iloc[:, i]
        if _scalar_only(name.strip()):
            cell_problems.extend(_not_cells(name.strip(), series))
        if is_value_column(name.strip()):
            first = _first_not_text(series)
            if first is not None:
                converted.append((name.strip(), *first))
        columns[name.strip()] = series_column(name.strip(), series, problems)
    manifest = _from_columns(columns, len(df), "frame", problems)
    manifest.labels = df.index
    manifest.tags_copy = is_export_tags_copy(df, names)
    manifest.tags_copy_edited = edited_tags_copy(df) if manifest.tags_copy else []
    manifest.problems = cell_problems
    manifest.converted = converted
    return manifest


def _index_problems(index: pd.Index, columns: list[str]) -> list[Problem]:
    """A MultiIndex, or an index named like a manifest column the frame lacks (after
    ``set_index("snapshot_id")`` or a ``groupby``): the hint is ``reset_index()``."""
    if isinstance(index, pd.MultiIndex):
        levels = ", ".join(repr(n) for n in index.names)
        return [
            Problem(
                f"the DataFrame has a MultiIndex (levels {levels}): call reset_index() first,"
                " so its levels become columns (or drop them: reset_index(drop=True))"
            )
        ]
    name = index.name
    if isinstance(name, str) and _scalar_only(name) and name not in columns:
        return [
            Problem(
                f"the DataFrame's index is named {name!r}, a manifest column it does not have:"
                " call reset_index() first, so the index becomes that column"
            )
        ]
    return []


def is_value_column(name: str) -> bool:
    """A column whose cells are sent as tag values or names: ``value``, ``tag:<key>``,
    ``name``."""
    return name in ("value", NAME_COLUMN) or name.startswith(TAG_PREFIX)


def _first_not_text(series: pd.Series) -> tuple[int, Any] | None:
    """(1-based row, value) of the first cell that is neither text nor missing."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    if series.dtype == object:
        if pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
            return None
        for row, value in enumerate(series.tolist(), start=1):
            if not isinstance(value, (str, *NOT_CELLS)) and not _is_na(value):
                return row, value  # (objects that are not cells are refused: `_not_cells`)
        return None
    if pd.api.types.is_string_dtype(series.dtype):
        return None
    present = series.notna().to_numpy()
    if not present.any():
        return None
    at = int(present.argmax())
    return at + 1, series.iloc[at].item() if hasattr(series.iloc[at], "item") else series.iloc[at]


def _from_columns(
    columns: dict[str, pa.ChunkedArray | pa.Array], length: int, kind: str, problems: list
) -> Manifest:
    if problems:
        raise ManifestError(problems)
    if not columns:
        return Manifest(pd.DataFrame(index=range(length)), kind, total_rows=length)
    table = pa.table({name: held_column(name, values) for name, values in columns.items()})
    columns.clear()
    return Manifest(table.to_pandas(), kind, total_rows=length)


def _scalar_only(name: str) -> bool:
    """Columns that some form reads as text (`tags` takes dicts; passthrough takes all)."""
    return (
        name in ID_COLUMNS
        or name in LONG_COLUMNS
        or name == NAME_COLUMN
        or (name.startswith(TAG_PREFIX))
    )


def _not_cells(name: str, series: pd.Series) -> list[Problem]:
    if series.dtype != object or pd.api.types.infer_dtype(series, skipna=True) == "string":
        return []
    return [
        Problem(
            f"{name} holds a {type(value).__name__}, not text or a number",
            row=row,
            column=name,
        )
        for row, value in enumerate(series.tolist(), start=1)
        if isinstance(value, NOT_CELLS)
    ]


def series_column(name: str, series: pd.Series, problems: list[Problem]) -> pa.Array:
    """One DataFrame column as non-null Arrow strings."""
    if series.dtype == object:
        kind = pd.api.types.infer_dtype(series, skipna=True)
        if kind not in ("string", "empty"):
            return _python_cells(series)
    try:
        array = pa.array(series, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        return _python_cells(series)
    return text_column(name, array, problems)


def _python_cells(series: pd.Series) -> pa.Array:
    values = [python_cell(v) if not _is_na(v) else "" for v in series]
    return pa.array(values, type=pa.string())


def _is_na(value: Any) -> bool:
    if isinstance(value, dict | list | np.ndarray):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
