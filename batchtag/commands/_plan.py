"""`plan` and `undo` runs: read the current state, then diff a manifest or invert a report.

    manifest --load--> Plan --read_state--> current --diff_plan--> diff frame (+ -o file)
    report --read_report--> ok rows --read_state--> current --undo_manifest--> undo file

The state is read with the shared `Reader` (list pages or GETs per scope, whichever sends
fewer requests) under the engine's limiter, retry classes and timeouts. Only what the diff
needs of each snapshot is kept (name, task_id, tags), so a 1M-snapshot plan stays small.
The Python functions (`batchtag.plan`, `batchtag.undo`) live in `batchtag.api._functions`.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
from collections.abc import Awaitable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from batchtag.commands._apply import ApplyOptions, check_writable, load_located, open_client
from batchtag.defaults import CONNECTION_OPTIONS, DISCOVERY_OPTIONS, MANIFEST_OPTIONS, READ_OPTIONS
from batchtag.diff import Diff, DiffCollector, entry_block, write_diff
from batchtag.errors import CALLER, AbortRun, ApiError, Interrupted, UsageError, option
from batchtag.gcore import LIST_PAGE, Client, RateLimiter, RetrySettings
from batchtag.memory import gc_paused
from batchtag.model import Plan, PlanIndex, PrefixLookup, keys_of
from batchtag.read import GET_BATCH, Key, Reader, ReadStats
from batchtag.record import (
    UNDO_COLUMNS,
    Progress,
    Undo,
    UndoWriter,
    fill_started,
    read_report,
    undo_line,
    undo_manifest,
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

Compact = tuple[str | None, str | None, tuple[tuple[str, str, bool], ...]]


def compact(snapshot: Mapping[str, Any]) -> Compact:
    """What a diff needs of a snapshot: name, task_id, (key, value, read_only) per tag."""
    tags = snapshot.get("tags") or ()
    tags = tuple((t["key"], t["value"], bool(t.get("read_only"))) for t in tags)
    return (snapshot.get("name"), snapshot.get("task_id"), tags)


class CurrentState(Mapping):
    """Key -> snapshot JSON (None: not found), expanded from the compact form on access."""

    def __init__(self, state: dict[Key, Compact | None]):
        self._state = state

    def __getitem__(self, key: Key) -> dict[str, Any] | None:
        value = self._state[key]
        if value is None:
            return None
        name, task_id, tags = value
        return {
            "name": name,
            "task_id": task_id,
            "tags": [{"key": k, "value": v, "read_only": ro} for k, v, ro in tags],
        }

    def __iter__(self) -> Iterator[Key]:
        return iter(self._state)

    def __len__(self) -> int:
        return len(self._state)


def make_reader(client: Client, options: ApplyOptions) -> Reader:
    """A reader paced and retried like the engine's writes."""
    return Reader(
        client,
        concurrency=options.concurrency,
        limiter=RateLimiter(options.rate),
        retry=RetrySettings(transient_retries=options.retries),
    )


async def read_state(keys: Iterable[Key], options: ApplyOptions) -> tuple[CurrentState, ReadStats]:
    """The current state of `keys` (the cheaper of list pages and GETs per scope).

    The progress bar counts `keys` (the snapshots asked for), not the scopes' snapshots.

    Parameters
    ----------
    keys : iterable of (project_id, region_id, snapshot_id)
    options : ApplyOptions
        Connection, concurrency, rate, timeouts, retries and progress.

    Returns
    -------
    (CurrentState, ReadStats)
        The snapshots (None when not found) and what reading cost.
    """
    keys = list(keys)
    bar = Progress(len(keys), enabled=options.progress)

    def kept(snapshot: Mapping[str, Any]) -> Compact:
        bar.advance(1)
        return compact(snapshot)

    finished = False
    async with open_client(options) as client:
        reader = make_reader(client, options)
        try:
            state = await reader.read_snapshots(keys, transform=kept)
            bar.advance(len(keys) - sum(1 for v in state.values() if v is not None))  # gone
            finished = True
        finally:
            bar.close(ok=finished)
    return CurrentState(state), reader.stats


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
    but its diff rows, unless `rows` is False, and a bit per plan position): per scope,
    list pages when they are fewer requests than GETs.

    The progress bar counts the plan's snapshots. Cancelled by a Ctrl-C from Python, it
    raises `Interrupted` holding the diff of the snapshots read so far."""
    collector = DiffCollector(plan.passthrough, keep_rows=rows)
    index = PlanIndex.of(plan.entries)
    counted = _Counted(collector, Progress(len(plan.entries), enabled=options.progress))
    finished = False
    try:
        async with open_client(options) as client:
            reader = make_reader(client, options)
            with gc_paused():  # pages of dicts come and go: no cycles, but GC walks them all
                lookup = PrefixLookup(index)
                for scope in index.scopes:
                    wanted = index.in_scope(scope)
                    await _diff_scope(reader, plan.entries, lookup, scope, wanted, counted)
            finished = True
    except asyncio.CancelledError:
        if CALLER.get() == "cli":
            raise  # the command line ends an interrupted command its own way (exit 130)
        so_far = collector.finish().frame()
        raise Interrupted(
            f"{counted.done} of {len(plan.entries)} snapshots read", report=so_far
        ) from None
    finally:
        counted.bar.close(ok=finished)
    return collector.finish(), reader.stats


async def _diff_scope(reader, entries, lookup, scope, wanted, collector) -> None:
    """Diff the entries of one scope that `wanted` marks (a mask over plan positions);
    `lookup` finds plan positions by key (`PrefixLookup`)."""

    def take(page: list[dict]) -> None:
        positions = lookup.positions(scope, keys_of(s["id"] for s in page))
        hit = positions >= 0
        hit[hit] = wanted[positions[hit]]
        found = np.flatnonzero(hit)  # indexes into the page
        chosen = positions[found]
        wanted[chosen] = False
        collector.add_block(entry_block(entries, chosen), [page[i] for i in found.tolist()])

    if wanted.sum() > 1:
        first = await reader.page(*scope, 0)
        take(first.get("results") or [])
        if math.ceil(int(first.get("count", 0)) / LIST_PAGE) <= 1 + wanted.sum():
            async for page in reader.read_scope(*scope, first=first):
                take(page)
            if reader.consistent:  # a consistent listing: what it lacks does not exist
                for positions in _masked(wanted):
                    collector.add_block(entry_block(entries, positions), [None] * len(positions))
                return
    for positions in _masked(wanted):
        block = entry_block(entries, positions)
        keys = zip(block.projects, block.regions, block.ids, strict=True)
        found = await asyncio.gather(*(reader.get(key) for key in keys))
        collector.add_block(block, found)


def _masked(mask: np.ndarray) -> Iterator[np.ndarray]:
    """The positions set in `mask`, in plan order, `GET_BATCH` at a time."""
    positions = np.flatnonzero(mask)
    for start in range(0, len(positions), GET_BATCH):
        yield positions[start : start + GET_BATCH]


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
    """What `run_undo` did: the inverse manifest, the snapshots skipped, where it went."""

    undo: Undo
    output: Path | None
    stats: ReadStats | None

    def as_dict(self) -> dict[str, Any]:
        counts = self.undo.skipped["status"].value_counts().to_dict()
        return {
            "revert": len(self.undo.manifest),
            "skipped": {str(k): int(v) for k, v in counts.items()},
            "output": None if self.output is None else str(self.output),
            "requests": 0 if self.stats is None else self.stats.requests,
        }


async def run_undo(
    report: str | os.PathLike | pd.DataFrame,
    options: ApplyOptions,
    *,
    output: str | os.PathLike | None = None,
    force: bool = False,
) -> UndoOutcome:
    """Read the report, check for drift against the current state, write the undo file.

    A report whose `ok` rows lack the before-state is refused before any request.
    """
    options.check()
    output = fill_started({"output": output})["output"]
    name = "report" if isinstance(report, pd.DataFrame) else str(report)
    to_file = output is not None and not is_stdout(output)
    if to_file and Path(output).suffix.lower() not in (".jsonl", ".ndjson"):
        raise UsageError(f"{option('output', str(output))}: the undo file is JSON Lines (*.jsonl)")
    if to_file:
        _check_undo_output(output, options.overwrite)
    frame = report if isinstance(report, pd.DataFrame) else read_report(report)
    blind = undo_manifest(frame, None, report_name=name)  # refuses a run that did not read
    keys = list(zip(*(blind.manifest[c] for c in UNDO_COLUMNS[:3]), strict=True))
    keys = [(int(p), int(r), str(s)) for p, r, s in keys]
    stats = None
    if keys:
        current, stats = await _reading(read_state(keys, options))
        result = undo_manifest(frame, current, force=force, report_name=name)
    else:
        result = blind
    if output is not None:
        write_undo(result.manifest, output)
    return UndoOutcome(result, None if output is None else Path(output), stats)


def _check_undo_output(output: str | os.PathLike, overwrite: bool) -> None:
    """Refuse to replace an existing file (it may be the undo file the run wrote itself)."""
    if Path(output).exists() and not overwrite:
        raise UsageError(
            f"{option('output', str(output))} already exists (it may be the undo file the run "
            f"wrote itself): choose another {option('output')}, or pass {option('overwrite', True)}"
        )
    check_writable(output, "output")


def write_undo(manifest: pd.DataFrame, path: str | os.PathLike) -> None:
    """The inverse manifest as a json-form JSON Lines file (replaced if it exists); ``-``
    prints it on stdout."""
    if is_stdout(path):
        sys.stdout.write("".join(undo_line(row) + "\n" for row in manifest.to_dict("records")))
        sys.stdout.flush()
        return
    with UndoWriter(path) as writer:
        for row in manifest.to_dict("records"):
            writer.write_record(row)
