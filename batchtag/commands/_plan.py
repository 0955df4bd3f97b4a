"""`plan` and `undo` runs: read the current state, then diff a manifest or invert a report.

    manifest --load--> Plan --read_wanted--> current --diff--> change frame (+ -o file)
    report --ok_rows--> Inversion.scan --read_wanted--> State --Inversion.changes--> change file

The state is read with the one read strategy (`batchtag.read.read_wanted`: list pages or
GETs per scope, whichever sends fewer requests) under the engine's limiter, retry classes
and timeouts. Only what the diff needs of each snapshot is kept (its `model.Snapshot`:
name, task_id, tags), so a 1M-snapshot plan stays small. Both write change files (`batchtag.diff.write_diff`), which
`apply` applies after checking each key's old value. The Python functions
(`batchtag.plan`, `batchtag.undo`) live in `batchtag.api._functions`.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from batchtag.commands._apply import ApplyOptions, check_writable, load_located, open_client
from batchtag.defaults import CONNECTION_OPTIONS, DISCOVERY_OPTIONS, MANIFEST_OPTIONS, READ_OPTIONS
from batchtag.diff import ChangeStream, Diff, DiffCollector, entry_block, write_diff
from batchtag.errors import CALLER, AbortRun, ApiError, Interrupted, UsageError, option
from batchtag.gcore import Client, RateLimiter, RetrySettings
from batchtag.memory import gc_paused, release_memory
from batchtag.model import Plan, PlanIndex, PrefixLookup
from batchtag.read import NOT_READ, Reader, ReadStats, State, read_wanted
from batchtag.record import (
    CHANGE_COLUMNS,
    Inversion,
    Progress,
    Skipped,
    Undo,
    Wanted,
    fill_started,
    frame_of,
    fresh_path,
    lock_holder,
    ok_rows,
    read_meta,
    report_exists,
)
from batchtag.tabular import is_stdout, table_format

if TYPE_CHECKING:
    import pandas as pd

PLAN_NAMES = (
    *MANIFEST_OPTIONS,
    *DISCOVERY_OPTIONS,
    *CONNECTION_OPTIONS,
    *READ_OPTIONS,
    "output",
    "overwrite",
)
UNDO_NAMES = ("output", "force", "overwrite", *CONNECTION_OPTIONS, *READ_OPTIONS)
UNDO_SUFFIX = ".undo.jsonl"  # `batchtag undo run1.csv` writes run1.undo.jsonl by default
T = TypeVar("T")


# ---------------------------------------------------------------- the current state


def make_reader(client: Client, options: ApplyOptions) -> Reader:
    """A reader paced and retried like the engine's writes."""
    return Reader(
        client,
        concurrency=options.concurrency,
        limiter=RateLimiter(options.rate),
        retry=RetrySettings(transient_retries=options.retries),
    )


class _Counted:
    """A diff collector that moves a progress bar by the snapshots it is given."""

    def __init__(self, collector: DiffCollector, bar: Progress):
        self.collector, self.bar, self.done = collector, bar, 0

    def add_block(self, block: Any, snapshots: list) -> None:
        self.collector.add_block(block, snapshots)
        self.bar.advance(len(snapshots))
        self.done += len(snapshots)


async def diff_current(
    plan: Plan, options: ApplyOptions, *, rows: bool = True
) -> tuple[Diff, ReadStats]:
    """Read the plan's snapshots and diff each one as it arrives (nothing held per snapshot
    but its diff rows, unless `rows` is False, and a bit per plan position): the one read
    strategy (`batchtag.read.read_wanted`) per scope.

    The progress bar counts the plan's snapshots. Cancelled by a Ctrl-C from Python, it
    raises `Interrupted` holding the diff of the snapshots read so far."""
    collector = DiffCollector(plan.passthrough, keep_rows=rows, notes=plan.notes, spill=True)
    index = PlanIndex.of(plan.entries)
    entries = plan.entries
    counted = _Counted(collector, Progress(len(entries), enabled=options.progress))

    def found(positions: np.ndarray, snapshots) -> None:
        counted.add_block(entry_block(entries, positions), snapshots)

    def ids(positions: np.ndarray) -> list[str]:
        return entry_block(entries, positions).ids

    finished = False
    try:
        async with open_client(options) as client:
            reader = make_reader(client, options)
            with gc_paused():  # pages of dicts come and go: no cycles, but GC walks them all
                lookup = PrefixLookup(index)
                for scope in index.scopes:
                    wanted = index.in_scope(scope)
                    await read_wanted(reader, scope, wanted, lookup, ids, found, index=index)
            finished = True
    except asyncio.CancelledError:
        if CALLER.get() == "cli":
            raise  # the command line ends an interrupted command its own way (exit 130)
        so_far = collector.finish().frame()
        raise Interrupted(
            f"{counted.done} of {len(entries)} snapshots read", report=so_far
        ) from None
    finally:
        counted.bar.close(ok=finished)
    return collector.finish(), reader.stats


async def _reading(reads: Awaitable[T]) -> T:
    """Await `reads`; a read that failed for good (retries spent) aborts the run (exit 3)."""
    try:
        return await reads
    except ApiError as error:
        raise AbortRun(f"cannot read the snapshots: {error}") from None


# ---------------------------------------------------------------- plan


def check_output(
    output: str | os.PathLike | None, what: str = "output", overwrite: bool = False
) -> None:
    """Before any request: the output's format is known, the file can be written, and an
    existing one is replaced only with `overwrite`."""
    if output is not None:
        table_format(output, what)
        if os.path.lexists(output) and not overwrite and not is_stdout(output):
            raise UsageError(
                f"{option(what, str(output))} already exists: choose another {option(what)}, "
                f"or pass {option('overwrite', True)} to replace it"
            )
        check_writable(output, "output")


async def run_plan(
    source: Any,
    options: ApplyOptions,
    *,
    output: str | os.PathLike | None = None,
    plan: Plan | None = None,
) -> pd.DataFrame:
    """Load the manifest, read its snapshots, diff; write the diff to `output` if given.

    Returns
    -------
    pandas.DataFrame
        `batchtag.diff._diff.diff_plan`'s frame; ``attrs["summary"]`` the plan summary plus
        ``requests`` (reads sent) and ``warnings`` (from the reader).
    """
    diff = await plan_diff(source, options, output=output, plan=plan)
    return diff.frame()


async def plan_diff(
    source: Any,
    options: ApplyOptions,
    *,
    output: str | os.PathLike | None = None,
    plan: Plan | None = None,
    rows: bool = True,
) -> Diff:
    """`run_plan` without the DataFrame: the columnar diff the CLI prints and writes (a
    1M-row diff never becomes a million Python objects at once).

    Parameters
    ----------
    source : path or DataFrame
        The manifest (ignored when `plan` is given).
    options : ApplyOptions
        Manifest, connection and read options.
    output : str or PathLike, optional
        Where to write the full diff (CSV / Parquet / JSONL by suffix).
    plan : Plan, optional
        An already loaded plan.
    rows : bool
        False: keep no diff row, only the summary (a plan that prints none; ignored
        when `output` is given).

    Returns
    -------
    Diff
        ``summary`` (the plan summary plus ``requests`` and ``warnings``), ``records()``
        and ``frame()`` (the DataFrame `run_plan` returns).
    """
    options.check()
    output = fill_started({"output": output})["output"]
    check_output(output, overwrite=options.overwrite)
    failed = []
    if plan is None:
        plan, failed = await _reading(load_located(source, options))
    diff, stats = await _reading(diff_current(plan, options, rows=rows or output is not None))
    del plan  # its entries are no longer needed: free them before writing
    release_memory()  # (and hand back what they took, before the writer's own buffers)
    diff.summary.update(requests=stats.requests, warnings=list(stats.warnings))
    diff.summary["failed_scopes"] = [f.as_dict() for f in failed]
    if output is not None:
        write_diff(diff, output)
    return diff


# ---------------------------------------------------------------- undo


def default_undo_path(report: str | os.PathLike) -> Path:
    """``reports/run1.csv`` -> ``reports/run1.undo.jsonl``."""
    path = Path(report)
    return path.with_name(path.stem + UNDO_SUFFIX)


@dataclass
class UndoOutcome:
    """What `run_undo` did: how many snapshots and change rows it gives back, the snapshots
    skipped, where the rows went (and the existing file kept when `output` was taken); and,
    unless `run_undo` was told to show only some, the change rows and every skipped
    snapshot as frames (`undo`)."""

    output: Path | None
    stats: ReadStats | None
    kept: Path | None
    reverted: int  # snapshots with change rows
    changes: int  # change rows
    skipped: Skipped  # counted by status; the first `shown` (all without)
    undo: Undo | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "revert": self.reverted,
            "changes": self.changes,
            "skipped": self.skipped.by_status(),
            "output": None if self.output is None else str(self.output),
            "kept": None if self.kept is None else str(self.kept),
            "requests": 0 if self.stats is None else self.stats.requests,
        }


KEY_COLUMNS = ("project_id", "region_id", "snapshot_id")


async def run_undo(
    report: str | os.PathLike | pd.DataFrame,
    options: ApplyOptions,
    *,
    output: str | os.PathLike | None = None,
    force: bool = False,
    shown: int | None = None,
) -> UndoOutcome:
    """Read the report, check the keys the run changed against the current state, write
    the change file that reverts it (`batchtag.record._undo`).

    A report still being written by a running apply is refused unless `force` (its undo
    would miss what the run has still to do); an existing `output` is never replaced.
    With `shown` (a number) nothing is held per snapshot: the report's rows and the state
    read wait in temporary files, the change rows go to `output` as they are made, and only
    the first `shown` skipped snapshots are kept (all are counted); without, the outcome
    holds the change rows and every skipped snapshot as frames (`UndoOutcome.undo`).
    """
    options.check()
    output = fill_started({"output": output})["output"]
    path = isinstance(report, str | os.PathLike)
    name = str(report) if path else "report"
    meta = None
    if path:
        _check_not_running(report, force)
        meta = read_meta(report) if report_exists(report) else None
    target, kept = (None, None) if output is None else _undo_output(output, options.overwrite)
    skipped = Skipped(shown)
    with ok_rows(report, name) as rows, Inversion(rows, skipped, name, meta) as inversion:
        wanted = inversion.scan()
        rows.close()  # (its rows are in the inversion now)
        state, stats = None, None
        if len(wanted):
            state, stats = await _reading(read_wanted_state(wanted, options))
        try:
            chunks = inversion.changes(lambda position, _: _found(state, position), force=force)
            undo = None
            if shown is None:
                undo = Undo(frame_of(chain.from_iterable(chunks), CHANGE_COLUMNS), skipped.frame())
                if target is not None:
                    write_diff(undo.changes, target)
            elif target is not None:
                write_diff(ChangeStream(chunks), target)
            else:
                deque(chunks, maxlen=0)
        finally:
            if state is not None:
                state.close()
    reverted = inversion.reverted
    if undo is not None:  # (a frame may name one snapshot twice)
        reverted = int(undo.changes[list(KEY_COLUMNS)].drop_duplicates().shape[0])
    return UndoOutcome(target, stats, kept, reverted, inversion.written, skipped, undo)


def _found(state: State | None, position: int) -> Any:
    """What was read of the snapshot at `position` (None: not found)."""
    snapshot = NOT_READ if state is None else state.at(position)
    return None if snapshot is NOT_READ else snapshot


async def read_wanted_state(wanted: Wanted, options: ApplyOptions) -> tuple[State, ReadStats]:
    """The current state of the snapshots an undo needs (the one read strategy, by position:
    `batchtag.read.read_wanted`), kept in a `batchtag.read.State` (spilled, by position).

    The progress bar counts the snapshots asked for, not the scopes' snapshots."""
    index = wanted.index
    assert index is not None
    bar = Progress(len(index), enabled=options.progress)
    state = State(index)

    def found(positions: np.ndarray, snapshots) -> None:
        for position, snapshot in zip(positions.tolist(), snapshots, strict=True):
            state.put(position, snapshot)
        bar.advance(len(positions))

    finished = False
    try:
        async with open_client(options) as client:
            reader = make_reader(client, options)
            with gc_paused():  # pages of dicts come and go: no cycles, but GC walks them all
                for scope in index.scopes:
                    wanted_here = index.in_scope(scope)
                    await read_wanted(
                        reader, scope, wanted_here, index, wanted.ids_at, found, index=index
                    )
            state.finish()
            finished = True
    finally:
        bar.close(ok=finished)
        if not finished:
            state.close()
    return state, reader.stats


def _check_not_running(report: str | os.PathLike, force: bool) -> None:
    """Refuse the undo of a run that still holds its report (unless `force`)."""
    holder = lock_holder(report)
    if holder is not None and not force:
        raise UsageError(
            f"{report} is still being written by a running batchtag (pid {holder}): its undo "
            f"would miss what the run has still to do; wait for it to end, or pass "
            f"{option('force', True)} to undo what it has done so far"
        )


def _undo_output(output: str | os.PathLike, overwrite: bool) -> tuple[Path, Path | None]:
    """Where the undo goes, and the existing file kept (None): an existing change file is
    never replaced (it may be the undo file the run wrote itself); with `overwrite` the
    new one goes beside it. ``-``: stdout."""
    table_format(output, "output")
    path = Path(output)
    if is_stdout(output):
        return path, None
    fresh = fresh_path(path)
    if fresh != path and not overwrite:
        raise UsageError(
            f"{option('output', str(output))} already exists (it may be the undo file the run "
            f"wrote itself): choose another {option('output')}, or pass "
            f"{option('overwrite', True)} to keep it and write beside it"
        )
    check_writable(fresh, "output")
    return fresh, (path if fresh != path else None)
