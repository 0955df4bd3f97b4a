"""The dtype contract: the kind of every column batchtag returns in a frame or writes to a file.

One table for the report, the change files (`plan -o`, `undo -o`, `apply --undo-file`,
`enforce --check -o`) and the inventory (export), so every writer and every reader takes a
column's storage and dtype from the same place:

- ids and texts: pandas' string dtype (CSV text, JSON strings, Arrow ``string``);
- ``project_id``, ``region_id`` and counts: ``Int64`` (Arrow ``int64``);
- instants: ``datetime64[ns, UTC]`` (ISO 8601 text in CSV and JSON Lines, Arrow
  ``timestamp[us, UTC]`` in Parquet);
- tags: dicts (JSON text in CSV, objects in JSON Lines, Parquet ``map<string, string>``);
- manifest rows: lists (JSON in every format);
- ``tag:<key>``, ``ro:<key>`` and ``volume_tag:<key>`` columns: text.

A column the table does not name (a manifest's passthrough column) is stored as its cells
come (`batchtag.tabular.ANY`). A new column of any file gets its kind here, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from batchtag.record._changes import CHANGE_KINDS
from batchtag.record._schema import REPORT_SCHEMA
from batchtag.tabular import (
    ANY,
    BOOL,
    INT,
    PARQUET,
    STR,
    TAGS,
    TIME,
    Kind,
    read_error,
    read_table,
    table_format,
)

if TYPE_CHECKING:
    import os

    import pandas as pd

COLUMN_KINDS: dict[str, Kind] = {
    # the report (its own table: `REPORT_SCHEMA`, with each column's meaning)
    **{column.name: column.kind for column in REPORT_SCHEMA},
    # change files (their own table: `CHANGE_SCHEMA`), and the manifests a policy makes
    **CHANGE_KINDS,
    "op": STR,
    "value": STR,
    "tags": TAGS,  # user tags (an export), or a json-form manifest's merge patch
    "name": STR,
    "rule": STR,
    # the inventory (export)
    "size": INT,
    "volume_id": STR,
    "created_at": TIME,
    "updated_at": TIME,
    "task_id": STR,
    "read_only": BOOL,
    "volume_name": STR,
    # tag key counts (keys)
    "snapshots": INT,
}
PREFIX_KINDS: tuple[tuple[str, Kind], ...] = (
    ("tag:", STR),
    ("ro:", STR),
    ("volume_tag:", STR),
)


def kind_of(column: str, default: Kind = ANY) -> Kind:
    """The kind of `column`: from `COLUMN_KINDS`, then by prefix, else `default`.

    Examples
    --------
    >>> kind_of("created_at").name, kind_of("tag:env").name, kind_of("ticket").name
    ('time', 'str', 'any')
    """
    kind = COLUMN_KINDS.get(column)
    if kind is not None:
        return kind
    for prefix, by_prefix in PREFIX_KINDS:
        if column.startswith(prefix):
            return by_prefix
    return default


class ColumnKinds(Mapping):
    """`kind_of` as the ``kinds`` mapping `batchtag.tabular` writers and readers take."""

    def __init__(self, default: Kind = ANY):
        self.default = default

    def __getitem__(self, column: str) -> Kind:
        return kind_of(column, self.default)

    def get(self, column: str, default: Kind | None = None) -> Kind:  # type: ignore[override]
        return kind_of(column, self.default if default is None else default)

    def __iter__(self):
        return iter(COLUMN_KINDS)

    def __len__(self) -> int:
        return len(COLUMN_KINDS)


KINDS = ColumnKinds()


def frame_of(records: Iterable[Mapping[str, Any]], columns: Iterable[str]) -> pd.DataFrame:
    """Records (plain Python values) as a frame typed by the contract.

    Parameters
    ----------
    records : iterable of dict
        Rows; a missing key is a missing value.
    columns : iterable of str
        The columns, in order.

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    records = list(records)
    columns = list(columns)
    data = {c: kind_of(c).to_series([r.get(c) for r in records]) for c in columns}
    return pd.DataFrame(data, columns=columns)


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every column in its contract dtype (a new frame; ``attrs`` and the
    index kept). A column the contract does not name gets the dtype pandas infers from its
    values, as a reader of the file gives it."""
    import pandas as pd

    data = {column: kind_of(str(column)).conform(frame[column]) for column in frame.columns}
    out = pd.DataFrame(data, index=frame.index, columns=frame.columns)
    out.attrs.update(frame.attrs)
    return out


def read_typed(path: str | os.PathLike) -> pd.DataFrame:
    """A CSV, JSON Lines or Parquet file batchtag wrote, as the frame it was written from
    (every column typed by the contract; columns in file order). A Parquet file is read a
    column at a time (no Python object per row).

    Raises
    ------
    UsageError
        No such file, an unknown suffix, or a row that cannot be read (named by its line).
    """
    from pathlib import Path

    from batchtag.errors import UsageError

    if not Path(path).is_file():
        raise UsageError(f"cannot read {path}: no such file")
    if table_format(path) is PARQUET:
        return _parquet_frame(path)
    columns, records = read_table(path, KINDS)
    return frame_of(records, columns)


def _parquet_frame(path: str | os.PathLike) -> pd.DataFrame:
    import pandas as pd
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise read_error(path, None, f"not a readable Parquet file ({exc})") from None
    data = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = kind_of(name)
        if kind is STR or kind is TIME:  # pandas converts these a column at once
            data[name] = kind.conform(column.to_pandas())
            continue
        values = column.to_pylist()
        if type(kind).from_arrow is not Kind.from_arrow:  # JSON text, maps: decoded a cell each
            values = [kind.from_arrow(v) for v in values]
        data[name] = kind.to_series(values)
    return pd.DataFrame(data, columns=table.column_names)
