"""Change files: the one format of every file that describes changes.

`plan -o`, `undo -o`, `apply --undo-file` and `enforce --check -o` write it, `apply FILE`
(and `batchtag.apply(frame)`) applies it. One row per (snapshot, field, key), columns in
`CHANGE_SCHEMA` order:

- ``project_id``, ``region_id``, ``snapshot_id``: the snapshot;
- ``verdict``: what the snapshot's row describes (``change``, ``locked``: a change a task
  holds up now, ``not_found``, ``conflict``, ``noop``), the snapshot's verdict in a plan;
- ``field``: ``tag`` or ``name`` (empty on a row that describes no change: a snapshot not
  found, a conflict's snapshot);
- ``key``: the tag key (empty for the name);
- ``change``: ``add``, ``remove``, ``change``, or a note that is not a change:
  ``read_only`` (a write the API ignores), ``conflict`` (why the snapshot is left alone);
- ``old``: what the key holds when the file was written (empty: the key is absent), the
  precondition `apply` checks; ``new``: what it gets (empty: the key is removed);
- ``rows``: the manifest rows the change came from.

Any other column (a manifest's passthrough columns, enforce's ``rule``) is carried as it
is. CSV, Parquet or JSON Lines by suffix. A whole file is written by `batchtag.diff.write_diff`
(`batchtag.write_changes`) and read back by `batchtag.read_changes`; `ChangeWriter` appends
as a run goes (crash-safe like the report: each result's rows reach the OS before `write`
returns; Parquet through a JSON Lines journal beside it, folded in at `close`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchtag.errors import UsageError, option
from batchtag.model import NAME_FIELD, OK, TAG_FIELD, Result
from batchtag.tabular import INT, JSON, JSONL, PARQUET, STR, Kind, table_format

TAG, NAME = TAG_FIELD, NAME_FIELD  # the `field` column
ADD, REMOVE, MODIFY = "add", "remove", "change"  # changes (the `change` column)
READ_ONLY, CONFLICT_NOTE = "read_only", "conflict"  # notes: rows that change nothing
NOTES = frozenset({READ_ONLY, CONFLICT_NOTE})
CHANGE_VERDICT = "change"  # the verdict of a row that `undo` and `--undo-file` write


@dataclass(frozen=True)
class ChangeColumn:
    """One column of a change file: its `name`, how files store it and frames type it
    (`kind`: the dtype contract, `batchtag.record.COLUMN_KINDS`, takes it from here), and
    what it holds."""

    name: str
    kind: Kind
    doc: str


CHANGE_SCHEMA: tuple[ChangeColumn, ...] = (
    ChangeColumn("project_id", INT, "Gcore project"),
    ChangeColumn("region_id", INT, "Gcore region"),
    ChangeColumn("snapshot_id", STR, "the snapshot (uuid)"),
    ChangeColumn("verdict", STR, "change, locked, not_found, conflict or noop"),
    ChangeColumn("field", STR, "tag or name (empty: the row changes nothing)"),
    ChangeColumn("key", STR, "the tag key (empty for the name)"),
    ChangeColumn("change", STR, "add, remove, change; notes: read_only, conflict"),
    ChangeColumn("old", STR, "the value when written, checked before applying (NA: absent)"),
    ChangeColumn("new", STR, "the value it gets (NA: removed)"),
    ChangeColumn("rows", JSON, "the manifest rows it came from"),
)
CHANGE_COLUMNS: list[str] = [c.name for c in CHANGE_SCHEMA]
CHANGE_KINDS: dict[str, Kind] = {c.name: c.kind for c in CHANGE_SCHEMA}
# The columns that make a file (or frame) a change file rather than a manifest.
CHANGE_MARKS = ("field", "old", "new")
# Written for the reader of a change file, never read back as input: where each change came
# from (a row each, all different: not worth holding while a big file is applied).
ACCOUNT_COLUMNS = frozenset({"rows"})


def unread_columns(columns: Iterable[str]) -> frozenset[str]:
    """The columns an input with these columns need not load: a change file's account.

    Examples
    --------
    >>> sorted(unread_columns(["snapshot_id", "field", "key", "old", "new", "rows"]))
    ['rows']
    >>> sorted(unread_columns(["snapshot_id", "op", "key", "value", "rows"]))
    []
    """
    columns = list(columns)
    return ACCOUNT_COLUMNS.intersection(columns) if is_change_file(columns) else frozenset()


def is_change_file(columns: Iterable[str]) -> bool:
    """Whether a table with these columns is a change file (it has field, old and new).

    Examples
    --------
    >>> is_change_file(["snapshot_id", "field", "key", "old", "new"])
    True
    >>> is_change_file(["snapshot_id", "op", "key", "value"])
    False
    """
    present = set(columns)
    return all(c in present for c in CHANGE_MARKS)


def change_kind(old: str | None, new: str | None) -> str:
    """``add``, ``remove`` or ``change``: what going from `old` to `new` does to a key.

    Examples
    --------
    >>> change_kind(None, "a"), change_kind("a", None), change_kind("a", "b")
    ('add', 'remove', 'change')
    """
    return ADD if old is None else REMOVE if new is None else MODIFY


def inverse_changes(
    key: tuple[int, int, str],
    before: Mapping[str, str],
    after: Mapping[str, str],
    name_before: str | None = None,
    name_after: str | None = None,
    read_only: Iterable[str] = (),
    rows: list[Any] | None = None,
) -> list[dict[str, Any]]:
    """The change rows that take a snapshot from `after` back to `before`: per user tag key
    that differs, old = what the run left (None: absent), new = what it held before; and
    the name, when it changed. Read-only keys never appear (the API keeps them).

    Examples
    --------
    >>> rows = inverse_changes((1, 1, "s"), {"env": "dev"}, {"env": "prod", "b": "2"})
    >>> [(r["key"], r["change"], r["old"], r["new"]) for r in rows]
    [('b', 'remove', '2', None), ('env', 'change', 'prod', 'dev')]
    """
    skip = set(read_only)
    project_id, region_id, snapshot_id = key
    out = []
    for k in sorted((before.keys() | after.keys()) - skip):
        old, new = after.get(k), before.get(k)
        if old != new:
            out.append(_row(project_id, region_id, snapshot_id, TAG, k, old, new, rows))
    if name_before is not None and name_after is not None and name_before != name_after:
        out.append(
            _row(project_id, region_id, snapshot_id, NAME, None, name_after, name_before, rows)
        )
    return out


def _row(project_id, region_id, snapshot_id, field, key, old, new, rows) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "region_id": region_id,
        "snapshot_id": snapshot_id,
        "verdict": CHANGE_VERDICT,
        "field": field,
        "key": key,
        "change": change_kind(old, new),
        "old": old,
        "new": new,
        "rows": list(rows or []),
    }


def journal_of(path: str | os.PathLike[str]) -> Path:
    """Where a Parquet change file's rows wait while a run writes it."""
    return Path(f"{path}.journal.jsonl")


def fresh_path(path: str | os.PathLike[str]) -> Path:
    """`path` when nothing worth keeping is there (missing or empty), else the first free
    ``<stem>-2<suffix>``, ``-3``, ... beside it.

    Examples
    --------
    >>> fresh_path("/nonexistent/run.undo.jsonl").name
    'run.undo.jsonl'

    An existing ``run.undo.jsonl`` gives ``run.undo-2.jsonl``.
    """
    path = Path(path)
    n = 1
    candidate = path
    while _holds_something(candidate):
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def _holds_something(path: Path) -> bool:
    return (path.exists() and path.stat().st_size > 0) or journal_of(path).exists()


class ChangeWriter:
    """Appends change rows to a change file as a run goes (`apply --undo-file`).

    Each `write` hands its rows to the OS before it returns (a ``kill -9`` loses nothing
    written); `close` fsyncs. A Parquet file gets its rows through a JSON Lines journal
    beside it, folded into the file at `close`. The file is never emptied: rows are always
    appended (a resumed run continues it).

    Parameters
    ----------
    path : str or PathLike
        The change file (``.csv``, ``.jsonl`` or ``.parquet``).
    what : str
        The option that names it, for messages (``undo_file``).
    """

    def __init__(self, path: str | os.PathLike[str], *, what: str = "undo_file"):
        self.path = Path(path)
        try:
            self.format = table_format(self.path, "undo file")
        except UsageError:
            raise UsageError(
                f"{option(what, str(path))}: name the file *.jsonl, *.csv or *.parquet"
            ) from None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        target = journal_of(self.path) if self.format is PARQUET else self.path
        fmt = JSONL if self.format is PARQUET else self.format
        self._out = fmt.open_rows(target, CHANGE_COLUMNS, CHANGE_KINDS)
        self.written = 0

    def write(self, result: Result) -> bool:
        """Write the rows that undo one result; True when it needed some (an `ok` write
        that changed something and whose before-state is known)."""
        if result.status != OK or result.tags_before is None or result.tags_after is None:
            return False
        rows = inverse_changes(
            result.key,
            result.tags_before,
            result.tags_after,
            result.name_before,
            result.name_after,
            result.ro_tags or (),
            result.rows,
        )
        if not rows:
            return False
        self.write_rows(rows)
        return True

    def write_rows(self, rows: list[Mapping[str, Any]]) -> None:
        """Append change rows (dicts of `CHANGE_COLUMNS`), handed to the OS at once."""
        if self._out is None:
            raise ValueError(f"change file {self.path} is closed")
        self._out.write_cells([[r.get(c) for c in CHANGE_COLUMNS] for r in rows])
        self.written += len(rows)

    def close(self) -> None:
        """Fsync and close; a Parquet file gets its journal folded in."""
        out, self._out = self._out, None
        if out is None:
            return
        out.close(sync=True)
        if self.format is PARQUET:
            _fold(self.path)

    def __enter__(self) -> ChangeWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _fold(path: Path) -> None:
    """A Parquet change file with its journal's rows appended, written whole; the journal
    goes once they are in."""
    journal = journal_of(path)
    records: list[dict[str, Any]] = []
    columns = list(CHANGE_COLUMNS)
    if path.exists():
        found, records = PARQUET.read(path, CHANGE_KINDS)
        columns += [c for c in found if c not in columns]
    if journal.exists():
        records += JSONL.read(journal, CHANGE_KINDS)[1]
    PARQUET.write(path, columns, records, CHANGE_KINDS)
    journal.unlink(missing_ok=True)
