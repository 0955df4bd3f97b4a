"""Manifest rows into a Plan: one entry per (project, region, snapshot), merged in file order.

`plan_manifest` is the whole way from a manifest to a plan: load, check, build (what
`read_plan` does with any manifest the small-file reader does not take).
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from batchtag.errors import CALLER, ManifestError, UsageError, option
from batchtag.manifest._check import Checked, check_manifest
from batchtag.manifest._columnar import categorical, compact_codes
from batchtag.manifest._detect import CheckOptions
from batchtag.manifest._entries import PlanEntries, State
from batchtag.manifest._grouping import Grouping, compact_ids, distinct_codes, first_rows
from batchtag.manifest._load import load_manifest
from batchtag.manifest._model import Manifest
from batchtag.manifest._operations import (
    CLEAR,
    CODES,
    DELETE,
    EXPECT,
    EXPECT_NAME,
    NAME,
    RENAME,
    SET,
    Coded,
)
from batchtag.memory import gc_paused, malloc_arrow, release_memory
from batchtag.model import EMPTY, NO_KEYS, OPS, Plan, SharedDict, TagState


def plan_manifest(source: Any, **options: Any) -> Plan:
    """`read_plan` the full way: any manifest, checked as columns, every problem worded."""
    with malloc_arrow():
        checked = check_manifest(_loaded(source), CheckOptions(**options))
        if options.get("empty_deletes") and checked.form not in (None, "wide"):
            raise UsageError(
                f"{option('empty_deletes', True)} applies to the wide form only; "
                f"this manifest is in the {checked.form} form"
            )
        if checked.problems:
            raise ManifestError(checked.problems)
        release_memory()  # the checks' temporaries
        with gc_paused():  # build_plan drops the text columns once it is done with them
            plan = build_plan(checked)
        del checked
        release_memory()  # the checks' arrays, now that only the plan is left
        return plan


def _loaded(source: Any) -> Manifest:
    if isinstance(source, Manifest):  # loaded already (its scope columns filled, say)
        return source
    manifest = load_manifest(source)
    release_memory()  # the reader's scratch buffers
    note = manifest.converted_note()
    if note is not None:
        warn(note)
    return manifest


def warn(note: str) -> None:
    """A note about the manifest: a log warning on the command line, a Python warning
    (shown once in a notebook) from the library."""
    if CALLER.get() == "cli":
        logging.getLogger("batchtag.manifest").warning("%s", note)
        return
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("batchtag"):
        level, frame = level + 1, frame.f_back
    warnings.warn(note, UserWarning, stacklevel=level)  # at the caller's line, when it has one


def build_plan(checked: Checked) -> Plan:
    """The plan of a checked manifest; its text columns are dropped along the way, since the
    plan's own objects set the peak memory of a large manifest."""
    manifest = checked.manifest
    count = int(checked.group.max()) + 1 if len(checked.group) else 0
    grouping = Grouping.of(checked.group, count)
    row_numbers = grouping.arrange(manifest.rows())  # data rows; labels for a DataFrame below
    manifest.frame = manifest.frame[checked.passthrough]
    ops, checked.ops = checked.ops, None  # dropped once the tag states are made
    state_codes, states = _tag_states(ops, count)
    names = _names(ops, count, NAME)
    expect_names = _names(ops, count, EXPECT_NAME)
    counts = np.bincount(ops.op, minlength=len(CODES)).tolist()[: len(OPS)]
    del ops
    release_memory()
    extra_codes, extras = _extras(manifest.frame, checked.passthrough, checked.group, grouping)
    # fresh empties: a zero-length slice of an Arrow column would keep its buffers alive
    manifest.frame = pd.DataFrame(columns=manifest.frame.columns)
    snapshots = grouping.firsts(_arrow(checked.snapshot))
    checked.snapshot = pd.Series([], dtype=str)
    release_memory()
    entries = PlanEntries(
        projects=compact_ids(grouping.firsts(checked.project)),
        regions=compact_ids(grouping.firsts(checked.region)),
        snapshots=snapshots,
        state_codes=state_codes,
        states=states,
        names=names,
        row_ids=_row_ids(manifest, row_numbers),
        row_bounds=grouping.bounds,
        extra_codes=extra_codes,
        extras=extras,
        expect_names=expect_names,
    )
    return Plan(
        entries=entries,
        form=checked.form or "long",
        rows=manifest.total_rows,
        passthrough=list(checked.passthrough),
        ops=dict(zip(OPS, counts, strict=True)),
        notes=list(checked.notes),
    )


def _arrow(snapshot: pd.Series) -> pa.Array | pa.ChunkedArray:
    """The snapshot ids as Arrow, in the chunks the reader made: one array would be a copy,
    which adds their whole size to the peak."""
    array = pa.array(snapshot)
    if isinstance(array, pa.ChunkedArray) and array.num_chunks == 1:
        return array.chunk(0)
    return array


def _row_ids(manifest: Manifest, row_numbers: np.ndarray) -> np.ndarray:
    """What the plan records for the grouped data rows: their numbers, or a frame's labels."""
    if manifest.labels is None:
        return row_numbers
    if pd.api.types.is_integer_dtype(manifest.labels.dtype):  # a RangeIndex, say: no objects
        return np.asarray(manifest.labels)[row_numbers - 1]
    labels = np.empty(len(row_numbers), dtype=object)
    labels[:] = manifest.row_ids(row_numbers)
    return labels


PLAYED_LIMIT = 100_000  # distinct tag sequences remembered at once (bounds the cache)


def _tag_states(ops: Coded, count: int) -> tuple[np.ndarray, list[State]]:
    """The `TagState` of every group, as a code per group into a list of states. Groups
    whose tag operations (and checks) are the same get the same state: each distinct
    sequence is played once. Groups with one or two operations (most of a big manifest, or
    of a change file) are matched as arrays."""
    tagging = (ops.op != NAME) & (ops.op != EXPECT_NAME)
    picked = None if tagging.all() else np.flatnonzero(tagging)
    del tagging
    grouping = Grouping.of(ops.group if picked is None else ops.group[picked], count)
    picked = grouping.arrange(picked)
    size = len(ops.values) + 1
    span = (len(ops.keys) + 1) * size
    codes = _op_codes(ops, picked, span, size)
    del picked
    bounds = grouping.bounds
    states: list[State] = [TagState(EMPTY, False, EMPTY)]  # groups without tag operations
    if grouping.order is None and len(codes) == count:  # one tag operation every group
        distinct, out = distinct_codes(codes)
        out += len(states)
        states += [_play((code,), ops, span, size) for code in distinct.tolist()]
        return compact_codes(out, len(states)), states
    lengths = np.diff(bounds)
    out = np.zeros(count, dtype=np.int32)
    single = np.flatnonzero(lengths == 1)
    distinct, inverse = distinct_codes(codes[bounds[single]])
    out[single] = inverse + len(states)
    del inverse
    states += [_play((code,), ops, span, size) for code in distinct.tolist()]
    pairs = np.flatnonzero(lengths == 2)  # a change file's rows: a write and its check
    if len(pairs):
        width = int(codes.max()) + 1
        first = codes[bounds[pairs]].astype(np.int64)
        first *= width
        first += codes[bounds[pairs] + 1]
        distinct, inverse = distinct_codes(first)
        del first
        out[pairs] = inverse + len(states)
        states += [_play(divmod(code, width), ops, span, size) for code in distinct.tolist()]
    played: dict[tuple[int, ...], int] = {}
    for group in np.flatnonzero(lengths > 2).tolist():
        sequence = tuple(codes[bounds[group] : bounds[group + 1]].tolist())
        state = played.get(sequence)
        if state is None:
            if len(played) >= PLAYED_LIMIT:
                played.clear()
            state = played[sequence] = len(states)
            states.append(_play(sequence, ops, span, size))
        out[group] = state
    return compact_codes(out, len(states)), states


def _op_codes(ops: Coded, picked: np.ndarray | None, span: int, size: int) -> np.ndarray:
    """One int per operation for (op, key, value), of operations `picked` (None: all);
    int32 when the codes fit in it (few keys and values, the usual case), else int64. A
    rename that may replace a value counts as an op of its own (its op + len(CODES))."""

    kind = np.int32 if 2 * len(CODES) * span < np.iinfo(np.int32).max else np.int64

    def of(values: np.ndarray) -> np.ndarray:
        return (values if picked is None else values[picked]).astype(kind)

    codes = of(ops.op)
    if ops.over is not None:
        codes += of(ops.over) * len(CODES)
    codes *= span
    part = of(ops.key)
    part *= size
    codes += part
    del part
    codes += of(ops.value)
    return codes


def _play(sequence: tuple[int, ...], ops: Coded, span: int, size: int) -> TagState:
    """Apply one group's tag operations (codes from _tag_states) in file order."""
    tags: dict[str, str | None] = {}
    renames: dict[str, str] = {}
    overwrites: set[str] = set()
    expect: dict[str, str | None] | None = None
    clear = False
    for code in sequence:
        op, rest = divmod(code, span)
        key, value = divmod(rest, size)
        over, op = divmod(op, len(CODES))
        if op == SET:
            tags[ops.keys[key]] = ops.values[value]
        elif op == DELETE:
            tags[ops.keys[key]] = None
        elif op == CLEAR:
            # in file order, a clear wipes what earlier rows wrote for this snapshot
            clear = True
            tags.clear()
            renames.clear()
            overwrites.clear()
        elif op == RENAME:
            renames[ops.keys[key]] = ops.values[value]
            if over:
                overwrites.add(ops.keys[key])
        elif op == EXPECT:
            expect = {} if expect is None else expect
            expect[ops.keys[key]] = ops.values[value] or None  # "": the key is absent
    return TagState(
        SharedDict(tags) if tags else EMPTY,
        clear,
        SharedDict(renames) if renames else EMPTY,
        frozenset(overwrites) if overwrites else NO_KEYS,
        None if expect is None else SharedDict(expect),
    )


def _names(ops: Coded, count: int, op: int) -> list[str | None] | None:
    """The value of every group's `op` operations (the new name, or the name a change file
    expects; None where a group has none, a later row wins), or None when no group has one.
    An expected name "" (none known) is None."""
    rows = np.flatnonzero(ops.op == op)
    if not len(rows):
        return None
    names: list[str | None] = [None] * count
    for g, v in zip(ops.group[rows].tolist(), ops.value[rows].tolist(), strict=True):
        names[g] = ops.values[v] or None
    return names


def _extras(
    frame: pd.DataFrame, columns: list[str], group: np.ndarray, grouping: Grouping
) -> tuple[np.ndarray, list[SharedDict]]:
    """Passthrough values of every group (the first non-empty one of each column), as a code
    per group into a list of dicts: groups with the same values share one dict."""
    count = len(grouping.bounds) - 1
    if not columns:
        return np.zeros(count, dtype=np.int8), [EMPTY]
    combined = np.zeros(count, dtype=np.int32)
    found = []
    for column in columns:
        codes, objects = _first_values(frame[column], group, grouping)
        top = (int(combined.max()) + 1) * (len(objects) + 1) if count else 0
        mixed = combined.astype(np.int32 if top < np.iinfo(np.int32).max else np.int64)
        mixed *= len(objects) + 1
        mixed += codes
        mixed += 1
        combined = distinct_codes(mixed)[1]  # renumbered, so the code stays below `count`
        found.append((codes, objects))
        del mixed
    first = first_rows(combined)  # combined codes are 0..n-1 in first-seen order
    texts = [_texts(codes[first], objects) for codes, objects in found]
    shared = [SharedDict(zip(columns, values, strict=True)) for values in zip(*texts, strict=True)]
    return compact_codes(combined, len(shared)), shared


def _texts(codes: np.ndarray, objects: list[str]) -> list[str]:
    objects = [*objects, ""]  # code -1 (no value) picks the ""
    return [objects[c] for c in codes.tolist()]


def _first_values(
    cells: pd.Series, group: np.ndarray, grouping: Grouping
) -> tuple[np.ndarray, list]:
    """Per group, a code into the returned values for the first non-empty cell (-1: none)."""
    coded = categorical(cells)
    codes = coded.codes
    empty = np.append(np.asarray(coded.categories == "", dtype=bool), True)  # code -1: none
    filled = ~empty[codes]
    objects = coded.categories.tolist()
    if grouping.order is None:  # one row a group: its own cell
        return np.where(filled, codes, -1), objects
    groups, first = np.unique(group[filled], return_index=True)
    out = np.full(len(grouping.bounds) - 1, -1, dtype=np.int32)
    out[groups] = codes[filled][first]
    return out, objects
