"""Small CSV manifests planned with the standard library: no pandas, no Arrow compute.

A run of a few rows should not wait for pandas to import, the largest part of its start-up.
A CSV file of at most `SMALL_BYTES` is read here when it is plainly valid: the long form
with set and delete rows, or the wide form with tag columns (blank cells ignored, or
deleting with `empty_deletes`); no quotes, no blank lines, every snapshot id a lowercase
UUID named once, the scope from the options or the environment, and every tag key and
value in the plain ASCII part of the tag text (`PLAIN_TAG_TEXT`). Anything else (any
problem, any form or column this reader does not take) returns None and the manifest goes
the full way (`_build`): this reader never words a problem, so every message is the full
checks' own, and what it accepts the full checks accept with the same plan.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from batchtag.manifest._detect import (
    ENV_VARS,
    CheckOptions,
    blank_cells_note,
    detect_form,
    form_columns,
    scope_default,
)
from batchtag.model import (
    EMPTY,
    LONG_COLUMNS,
    NAME_COLUMN,
    NO_KEYS,
    OPS,
    OVERWRITE_COLUMN,
    PLAIN_TAG_TEXT,
    SNAPSHOT_COLUMN,
    TAG_PREFIX,
    UUID_LOWER,
    Plan,
    SharedDict,
    TagState,
)

# The cut-over: about 17,000 rows of a long manifest. Up to it the short way is much the
# faster (pandas' import alone costs more than reading its rows in Python); past it the
# rows' Python cost nears what the import saves, and the run is long enough that its
# start-up is a small share of it.
SMALL_BYTES = 1 << 20
LONG_OPS = ("set", "delete")  # the ops read here; a row with another goes the full way
_UUID = re.compile(UUID_LOWER)
_PLAIN = re.compile(PLAIN_TAG_TEXT)


def small_plan(source: Any, options: CheckOptions) -> Plan | None:
    """The plan of `source` when it is a small, plainly valid CSV file; else None.

    Parameters
    ----------
    source : Any
        What `read_plan` was given.
    options : CheckOptions
        How to read it.

    Returns
    -------
    Plan or None
        None whenever the full path has to read it (a problem, or what is not read here).
    """
    text = _small_text(source)
    if text is None:
        return None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if len(lines) < 2 or "" in lines:
        return None
    raw = lines[0].split(",")
    columns = [c.strip() for c in raw]
    if "" in columns or len(set(columns)) < len(columns) or SNAPSHOT_COLUMN not in columns:
        return None
    if any(c in columns for c in (*ENV_VARS, NAME_COLUMN, OVERWRITE_COLUMN)):
        return None
    form, problems = detect_form(columns, options.form)
    if problems or form not in ("long", "wide"):
        return None
    env = os.environ if options.env is None else options.env
    scope = [
        scope_default("project_id", options.project_id, env),
        scope_default("region_id", options.region_id, env),
    ]
    if not all(isinstance(s, int) for s in scope):
        return None
    rows = [line.split(",") for line in lines[1:]]
    if any(len(row) != len(columns) for row in rows):
        return None
    if form == "long":
        tags, notes = (None, []) if options.empty_deletes else (_read_long(columns, rows), [])
    else:
        tags, blanks = _read_wide(columns, rows, options.delete_marker, options.empty_deletes)
        notes = [blank_cells_note(blanks)] if blanks else []
    if tags is None:
        return None
    ids = [row[columns.index(SNAPSHOT_COLUMN)] for row in rows]
    if len(set(ids)) < len(ids) or not all(_UUID.fullmatch(i) for i in ids):
        return None
    used = form_columns(form, columns)
    passthrough = [c for c in columns if c not in used]
    return _plan(form, ids, tags, scope, passthrough, columns, rows, notes)


def _small_text(source: Any) -> str | None:
    """The text of a small CSV file, or None (not a CSV path, too big, quoted, not UTF-8)."""
    if not isinstance(source, (str, Path)) or str(source) == "-":
        return None
    path = Path(source)
    if not path.name.lower().endswith(".csv"):
        return None
    try:
        if not path.is_file() or path.stat().st_size > SMALL_BYTES:
            return None
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    text = text.replace("\r\n", "\n")
    if any(c in text for c in ('"', "\r", "\ufeff", "\x00")):
        return None
    return text


def _read_long(columns: list[str], rows: list[list[str]]) -> list | None:
    """Each row's tag writes (key, value or None) of a long manifest; None to go the full way."""
    if not all(c in columns for c in LONG_COLUMNS):
        return None
    op, key, value = (columns.index(c) for c in LONG_COLUMNS)  # (op, key, value)
    out = []
    for row in rows:
        if row[op] not in LONG_OPS or not _PLAIN.fullmatch(row[key]):
            return None
        if row[op] == "set":
            if not _PLAIN.fullmatch(row[value]):
                return None
            out.append(((row[key], row[value]),))
        elif row[value]:
            return None
        else:
            out.append(((row[key], None),))
    return out


def _read_wide(
    columns: list[str], rows: list[list[str]], marker: str, empty_deletes: bool
) -> tuple[list | None, int]:
    """Each row's tag writes of a wide manifest, and how many blank cells it ignored (a
    blank cell deletes its tag with `empty_deletes`); None to go the full way."""
    tagged = [(i, c[len(TAG_PREFIX) :]) for i, c in enumerate(columns) if c.startswith(TAG_PREFIX)]
    if not tagged or not all(_PLAIN.fullmatch(key) for _, key in tagged):
        return None, 0
    if not marker or marker != marker.strip():  # a cell is the marker once stripped
        return None, 0
    out = []
    blanks = 0
    for row in rows:
        writes = []
        for i, key in tagged:
            cell = row[i]
            if cell == marker or (cell == "" and empty_deletes):
                writes.append((key, None))
            elif cell == "":
                blanks += 1
            elif _PLAIN.fullmatch(cell):
                writes.append((key, cell))
            else:
                return None, 0
        out.append(tuple(writes))
    return out, blanks


def _plan(
    form: str,
    ids: list[str],
    tags: list[tuple],
    scope: list,
    passthrough: list[str],
    columns: list[str],
    rows: list[list[str]],
    notes: list[str],
) -> Plan:
    """The plan: one entry a row, in file order, as the full path builds it."""
    import numpy as np

    from batchtag.manifest._entries import PlanEntries

    states: list[TagState] = [TagState(EMPTY, False, EMPTY)]  # rows that write no tag
    codes: dict[tuple, int] = {(): 0}
    counts = dict.fromkeys(OPS, 0)
    for writes in tags:
        for _, value in writes:
            counts["delete" if value is None else "set"] += 1
        if writes not in codes:
            codes[writes] = len(states)
            states.append(TagState(SharedDict(writes), False, EMPTY, NO_KEYS, None))
    extras: list[SharedDict] = [EMPTY]
    extra_codes = np.zeros(len(rows), dtype=np.int64)
    if passthrough:
        at = [columns.index(c) for c in passthrough]
        shared: dict[tuple, int] = {}
        for n, row in enumerate(rows):
            values = tuple(row[i] for i in at)
            if values not in shared:
                shared[values] = len(extras)
                extras.append(SharedDict(zip(passthrough, values, strict=True)))
            extra_codes[n] = shared[values]
    count = len(ids)
    entries = PlanEntries(
        projects=np.full(count, scope[0], dtype=np.int64),
        regions=np.full(count, scope[1], dtype=np.int64),
        snapshots=_id_keys(ids),
        state_codes=np.array([codes[w] for w in tags], dtype=np.int64),
        states=states,
        names=None,
        row_ids=np.arange(1, count + 1, dtype=np.int64),
        row_bounds=np.arange(count + 1, dtype=np.int64),
        extra_codes=extra_codes,
        extras=extras,
    )
    return Plan(
        entries=entries,
        form=form,
        rows=count,
        passthrough=passthrough,
        ops=counts,
        notes=notes,
    )


def _id_keys(ids: list[str]) -> Any:
    """The ids (lowercase UUIDs) as the 16-byte keys a plan holds them by."""
    import numpy as np

    from batchtag.model import KEY, uuid_bytes

    return np.frombuffer(b"".join(uuid_bytes(i) or b"" for i in ids), dtype=KEY)
