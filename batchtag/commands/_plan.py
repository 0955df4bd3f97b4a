"""`plan` and `undo` runs: read the current state, then diff a manifest or invert a report.

    manifest --load--> Plan --read_wanted--> current --diff--> change frame (+ -o file)
    report --read_report--> ok rows --read_keys--> current --undo_changes--> change file

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
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from batchtag.commands._apply import ApplyOptions, check_writable, load_located, open_client
from batchtag.defaults import CONNECTION_OPTIONS, DISCOVERY_OPTIONS, MANIFEST_OPTIONS, READ_OPTIONS
from batchtag.diff import Diff, DiffCollector, entry_block, write_diff
from batchtag.errors import CALLER, AbortRun, ApiError, Interrupted, UsageError, option
from batchtag.gcore import Client, RateLimiter, RetrySettings
from batchtag.memory import gc_paused
from batchtag.model import Plan, PlanIndex, PrefixLookup, Snapshot
from batchtag.read import Key, Reader, ReadStats, read_keys, read_wanted
from batchtag.record import (
    Progress,
    Undo,
    fill_started,
    fresh_path,
    lock_holder,
    read_meta,
    read_report,
    report_exists,
    reverts,
    undo_changes,
)
from batchtag.tabular import is_stdout, table_format

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


async def read_snapshots(
    keys: list[Key], options: ApplyOptions
) -> tuple[dict[Key, Snapshot | None], ReadStats]:
    """The current state of `keys` (the one read strategy, `batchtag.read.read_keys`), as
    `Snapshot`s.

    The progress bar counts `keys` (the snapshots asked for), not the scopes' snapshots.

    Parameters
    ----------
    keys : list of (project_id, region_id, snapshot_id)
    options : ApplyOptions
        Connection, concurrency, rate, timeouts, retries and progress.

    Returns
    -------
    (dict, ReadStats)
        Key -> Snapshot (None when not found), and what reading cost.
    """
    bar = Progress(len(keys), enabled=options.progress)

    def kept(snapshot: Snapshot) -> Snapshot:
        bar.advance(1)
        return snapshot

    finished = False
    async with open_client(options) as client:
        reader = make_reader(client, options)
        try:
            state = await read_keys(reader, keys, kept)
            bar.advance(len(keys) - sum(1 for v in state.values() if v is not None))  # gone
            finished = True
        finally:
            bar.close(ok=finished)
    return state, reader.stats


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
    collector = DiffCollector(plan.passthrough, keep_rows=rows, notes=plan.notes)
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
    """What `run_undo` did: the change rows back, the snapshots skipped, where they went
    (and the existing file kept when `output` was taken)."""

    undo: Undo
    output: Path | None
    stats: ReadStats | None
    kept: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        counts = self.undo.skipped["status"].value_counts().to_dict()
        changes = self.undo.changes
        return {
            "revert": int(changes[list(KEY_COLUMNS)].drop_duplicates().shape[0]),
            "changes": len(changes),
            "skipped": {str(k): int(v) for k, v in counts.items()},
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
) -> UndoOutcome:
    """Read the report, check the keys the run changed against the current state, write
    the change file that reverts it (`batchtag.record._undo`).

    A report still being written by a running apply is refused unless `force` (its undo
    would miss what the run has still to do); an existing `output` is never replaced.
    """
    options.check()
    output = fill_started({"output": output})["output"]
    name = "report" if isinstance(report, pd.DataFrame) else str(report)
    meta = None
    if not isinstance(report, pd.DataFrame):
        _check_not_running(report, force)
        meta = read_meta(report) if report_exists(report) else None
    target, kept = (None, None) if output is None else _undo_output(output, options.overwrite)
    frame = report if isinstance(report, pd.DataFrame) else read_report(report)
    found, _ = reverts(frame, name, meta)
    keys = [r.key for r in found if r.rows]
    current, stats = (None, None)
    if keys:
        current, stats = await _reading(read_snapshots(keys, options))
    result = undo_changes(frame, current or {}, force=force, report_name=name, meta=meta)
    if target is not None:
        write_diff(result.changes, target)
    return UndoOutcome(result, target, stats, kept)


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
