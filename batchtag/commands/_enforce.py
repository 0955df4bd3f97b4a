"""`enforce`: export the policy's scopes, evaluate its rules, plan, apply the manifest.

    policy file --load_policy--> Policy --(export)--> inventory --evaluate--> manifest
        --plan (diff against the exported state)--> diff --run_apply--> report
                                                     (with check=True: stop at the diff)

The export lists the volumes too (``with_volume``) only when a rule reads them
(`Policy.needs_volume`: a ``copy``, or a ``where`` naming a volume column).

Nothing is read twice: the plan diffs against the inventory just exported, and the apply
run takes that state too (the before-state of its report and undo file, and the minimal
bodies) instead of reading the snapshots again. The export hands the inventory over a
chunk of rows at a time, and each chunk is evaluated, planned and diffed, its state put
in the apply run's spill, before the next (`Enforcing`): memory stays flat however many
snapshots the scopes hold. A run sends the snapshot pages, the volume pages when needed,
and one PATCH per snapshot that changes.
``max_changes`` N% counts against that inventory (the snapshots of the policy's scopes).
There is no ``resume``: enforce re-reads the state every run and sends only what still
differs, so re-running it after an interrupted run is the resume.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from batchtag.commands._apply import (
    ApplyOptions,
    RunOutcome,
    parse_max_changes,
    run_apply,
    save_summary_json,
)
from batchtag.commands._compliance import changed_by_rule, compliance
from batchtag.commands._export import READ_NAMES, run_export
from batchtag.commands._plan import check_output
from batchtag.defaults import NOT_FOR_ENFORCE, PYTHON_OPTIONS
from batchtag.diff import EXIT_CHANGES, Diff, DiffCollector, entry_block, plan_exit_code, write_diff
from batchtag.errors import AbortRun, ApiError, ManifestError, Problem, UsageError, option
from batchtag.inventory import ScopeChoice, Selection, compile_where, missing_tags
from batchtag.manifest import PlanEntries, join_entries, read_plan
from batchtag.memory import release_memory
from batchtag.model import OK, TAG_PREFIX, Plan, PlanIndex, Snapshot, keys_of
from batchtag.policy import (
    KEY_COLUMNS,
    RO_PREFIX,
    SCOPE_FLAGS,
    SCOPE_KEYS,
    Evaluation,
    Policy,
    is_tag_column,
    join_manifests,
    load_policy,
)
from batchtag.read import State
from batchtag.record import EXIT_FAILED, EXIT_OK, fill_started

log = logging.getLogger("batchtag.commands._enforce")

EXIT_DRIFT = EXIT_CHANGES  # `enforce --check`: something would change (as plan's detailed code)
EXIT_CLEAN = EXIT_OK
# enforce's keyword options: every apply option but resume (running enforce again resumes).
ENFORCE_NAMES = tuple(o.name for o in PYTHON_OPTIONS if o.name not in NOT_FOR_ENFORCE)


@dataclass
class EnforceOutcome:
    """What one enforce did: the manifest (None when not kept: `run_enforce`'s `compact`),
    its diff against the exported state (with check; a run keeps only its ``summary``), the
    apply run (None with check), the exit code, and the summary (the run's, or the check's,
    with the compliance figures: ``inventory``, ``rules``; ``failed_scopes``)."""

    manifest: pd.DataFrame | None
    diff: Diff
    run: RunOutcome | None
    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)
    summary_json_error: str | None = None  # set when --summary-json could not be written
    output: str | None = None  # the drift file `check` wrote ({started} filled in)


async def run_enforce(
    policy: str | Path | Policy,
    options: ApplyOptions,
    *,
    check: bool = False,
    inventory: pd.DataFrame | None = None,
    confirm: Callable[[int, str], bool] | None = None,
    on_engine: Callable[[Any], None] | None = None,
    output: str | os.PathLike | None = None,
    compact: bool = False,
) -> EnforceOutcome:
    """Load the policy, read the inventory (unless given), evaluate, then apply.

    Everything that can be refused is refused before the first request (the policy, its
    ``where`` expressions, the options); rule conflicts before the first write. The
    inventory is evaluated, planned and diffed a chunk of rows at a time (`Enforcing`):
    no frame of the whole inventory or manifest is held, unless asked for.

    Parameters
    ----------
    policy : str, Path or Policy
        The TOML file, or a loaded policy.
    options : ApplyOptions
        The apply run's options (also the export's connection, concurrency and rate).
    check : bool
        Stop after the plan: exit code 2 when anything would change, else 0 (1 when a
        scope could not be read or the plan has errors: a conflict, such as a rename onto
        another value).
    inventory : DataFrame, optional
        Evaluate this instead of exporting the policy's scopes.
    confirm, on_engine : callable, optional
        As for `batchtag.commands._apply.run_apply`.
    output : str or PathLike, optional
        With `check`: write the full drift there, the change file `plan -o` writes
        (`batchtag apply` applies it, each key checked against the value the policy saw).
    compact : bool
        Keep no manifest frame (the outcome's is None) and give the diff's rows no
        manifest rows (``rows`` empty, as the command line shows and writes them).

    Returns
    -------
    EnforceOutcome
        The manifest, the diff, the apply run's outcome (None with `check`), the exit code
        and the summary (written to ``summary_json`` too).

    Examples
    --------
    >>> asyncio.run(run_enforce("p.toml", ApplyOptions(), check=True))  # doctest: +SKIP
    """
    policy = policy if isinstance(policy, Policy) else load_policy(policy)
    started = datetime.now(UTC)  # {started} in every file name of the run
    output = fill_started({"output": output}, started)["output"]
    check_options(options, check, output)
    options = options.stamped(started)
    enforcing = Enforcing(policy, check=check, compact=compact)
    try:
        if inventory is None:
            read = await read_inventory(policy, options, enforcing.add_all)
        else:
            read = inventory.attrs.get("export", {})
            enforcing.add_all(inventory)
            inventory = None
        found = enforcing.finish(read.get("requests", 0) - read.get("volume_requests", 0))
    except BaseException:
        enforcing.close()
        raise
    failed = list(read.get("failed_scopes", []))
    release_memory()  # the chunks' frames
    if check:
        return _checked(found, failed, options, output, compact)
    if not options.dry_run:
        check_max_changes(options.max_changes, found.diff.summary["writes"], found.size)
    # max_changes: checked above, against the inventory; the summary file: written below;
    # the manifest names every snapshot's scope (nothing to list or locate)
    settings = replace(
        options, max_changes=None, summary_json=None, all_projects=False, all_regions=False
    )
    outcome = await run_apply(
        found.manifest,
        settings,
        plan=found.plan,
        state=found.state,
        confirm=confirm,
        on_engine=on_engine,
    )
    written = outcome.summary["this_run"]["counts"].get(OK, 0)
    changed = changed_by_rule(outcome.report_path) if written else {}
    summary = dict(outcome.summary)
    summary.update(compliance(found.rules, found.size, changed))
    summary["failed_scopes"] = failed
    summary["warnings"] = found.warnings
    if failed and summary["exit_code"] == EXIT_OK:
        summary["exit_code"] = EXIT_FAILED  # a partial run
    result = EnforceOutcome(found.manifest, found.diff, outcome, summary["exit_code"], summary)
    if options.summary_json:
        result.summary_json_error = save_summary_json(summary, options.summary_json)
    return result


STATE_CHUNK = 8_192  # inventory rows evaluated, planned and diffed at a time


def inventory_chunks(inventory: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """A given inventory `STATE_CHUNK` rows at a time; in one piece when a snapshot has
    several rows (its rows then make one plan entry, as in one manifest)."""
    if len(inventory) <= STATE_CHUNK or inventory.duplicated(list(KEY_COLUMNS)).any():
        yield inventory
        return
    for start in range(0, len(inventory), STATE_CHUNK):
        yield inventory.iloc[start : start + STATE_CHUNK]


@dataclass
class Enforced:
    """What the chunks gave (`Enforcing.finish`): the policy's rule figures
    (``attrs["rules"]`` of `evaluate`), the unknown-tag warnings, the inventory's size, the
    plan, its diff and the apply run's state (None with check), the manifest when kept."""

    rules: dict[str, dict]
    warnings: list[str]
    size: int
    changes: int  # manifest rows
    plan: Plan
    diff: Diff
    state: State | None
    manifest: pd.DataFrame | None


class Enforcing:
    """The inventory a chunk of rows at a time: each chunk evaluated (`Evaluation`), its
    manifest rows planned (`read_plan`), diffed against the chunk's own rows and, for a
    run, its snapshots put in the apply run's `State` (by plan position, in the state's
    spill file); the chunk is then dropped. What the chunks add up to is made once by
    `finish`: the rules' figures and warnings, the plan (the chunks' entries joined), the
    diff.

    Each snapshot's manifest rows, plan entry and diff come from its own inventory row, so
    they are those of one evaluation of the whole inventory (rows are labelled on across
    chunks).

    Parameters
    ----------
    policy : Policy
    check : bool
        Keep the diff's rows (in a temporary file) and no state; else the reverse.
    compact : bool
        See `run_enforce`.
    """

    def __init__(self, policy: Policy, *, check: bool = False, compact: bool = False):
        self.policy = policy
        self.check, self.compact = check, compact
        self.evaluation = Evaluation(policy)
        self.warnings: list[str] | None = None
        self.size = 0
        self.manifests: list[pd.DataFrame] = []
        self.plan: Plan | None = None  # the first chunk's, without entries (rows, ops summed)
        self.parts: list[PlanEntries] = []  # each chunk's entries, compact (no index)
        self.problems: list[Problem] = []
        self.entries = 0  # plan entries so far: the next chunk's first position
        self.collector: DiffCollector | None = None
        self.state = None if check else State(None)
        self.empty: pd.DataFrame | None = None  # a chunk's manifest without rows

    def add_all(self, inventory: pd.DataFrame) -> None:
        """`add` the rows `inventory_chunks` at a time."""
        if not self.size:
            release_memory()  # what reading the inventory left, before the first chunk
        for chunk in inventory_chunks(inventory):
            self.add(chunk)
        release_memory()  # the chunks' temporaries, before the next rows come

    def add(self, inventory: pd.DataFrame) -> None:
        """Evaluate, plan and diff one chunk of inventory rows."""
        if self.warnings is None:  # every chunk has the inventory's columns
            self.warnings = unknown_tag_warnings(self.policy, inventory)
        self.size += len(inventory)
        manifest = self.evaluation.add(inventory)
        if not self.compact:
            self.manifests.append(manifest)
        if not len(manifest) and self.empty is None:
            self.empty = manifest
        if not len(manifest) or self.evaluation.conflict is not None:
            return  # (a conflict: `finish` raises it; nothing more to plan)
        try:
            plan = read_plan(manifest, form="long")
        except ManifestError as error:  # every chunk's problems, said at once by `finish`
            offset = int(manifest.index[0])
            self.problems += [
                p if p.position is None else replace(p, position=p.position + offset)
                for p in error.details
            ]
            return
        if not self.problems:
            self._diff(inventory, plan)
            if self.state is not None:  # a run: the plan's entries (a check counts them)
                self.parts.append(join_entries([plan.entries]))  # (its index is not kept)
            if self.plan is None:
                self.plan = replace(plan, entries=[], ops=dict(plan.ops))
            else:
                self.plan.rows += plan.rows
                for op, count in plan.ops.items():
                    self.plan.ops[op] = self.plan.ops.get(op, 0) + count

    def _diff(self, inventory: pd.DataFrame, plan: Plan) -> None:
        """The chunk's diff rows and state, at the plan positions its entries will have."""
        if self.collector is None:
            self.collector = self._collector(plan)
        entries, offset = plan.entries, self.entries
        self.entries += len(entries)
        chosen, snapshots = snapshots_of(inventory, entries)
        missing = np.setdiff1d(np.arange(len(entries)), chosen)  # (none: made from its rows)
        if self.state is not None:
            self.state.reserve(self.entries)
            for position, snapshot in zip(chosen.tolist(), snapshots, strict=True):
                self.state.put(offset + position, snapshot)
            self.state.put_missing(missing + offset)
        at = np.concatenate([chosen, missing])
        block = entry_block(entries, at)
        if self.compact:  # positions in the generated manifest: nothing a user wrote
            made = block.cells
            block = replace(block, cells=lambda: (*made()[:3], [None] * len(at)))
        found = [*snapshots, *[None] * len(missing)]
        self.collector.add_block(replace(block, positions=at + offset), found)

    def _collector(self, plan: Plan) -> DiffCollector:
        return DiffCollector(plan.passthrough, keep_rows=self.check, notes=plan.notes, spill=True)

    def finish(self, requests: int) -> Enforced:
        """What the chunks add up to (`requests`: what reading the snapshots cost, the
        state's ``requests``).

        Raises
        ------
        PolicyError
            Rules that conflict (`Evaluation.finish`).
        ManifestError
            Manifest rows that cannot be planned (every chunk's problems).
        """
        rules = self.evaluation.finish()
        if self.problems:
            raise ManifestError(self.problems)
        if self.plan is not None:
            entries = join_entries(self.parts) if self.state is not None else _Counted(self)
            self.parts = []
            plan = replace(self.plan, entries=entries)
        else:  # nothing changes: the plan of the (empty) manifest
            plan = read_plan(self.empty, form="long")
        collector = self.collector or self._collector(plan)
        self.collector = None
        diff = collector.finish()
        state, self.state = self.state, None
        if state is not None:
            state.bind(PlanIndex.of(plan.entries))
            state.finish()
            state.read, state.requests = len(plan.entries), requests
        manifest = None
        if not self.compact:
            manifest = join_manifests(self.manifests)
            manifest.attrs["rules"] = rules
        self.manifests = []
        changes = self.evaluation.written
        return Enforced(rules, self.warnings or [], self.size, changes, plan, diff, state, manifest)

    def close(self) -> None:
        """Drop the state (its spill file) of a run that will not apply."""
        if self.state is not None:
            self.state.close()


class _Counted(Sequence):
    """A check's plan entries: only how many there are (nothing is applied)."""

    def __init__(self, enforcing: Enforcing):
        self.count = enforcing.entries

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):
        raise IndexError("a check keeps no plan entries")


def snapshots_of(inventory: pd.DataFrame, entries: Sequence) -> tuple[np.ndarray, list[Snapshot]]:
    """The plan positions the inventory has a row for (in inventory order), and each one's
    `Snapshot` (`inventory_snapshot`, of its first row: the same snapshot twice in the
    inventory is the first row)."""
    index = PlanIndex.of(entries)
    positions = inventory_positions(inventory, index)
    tag_columns = [c for c in inventory.columns if is_tag_column(c)]
    fields = [c for c in ("name", "task_id") if c in inventory.columns] + tag_columns
    found = np.flatnonzero(positions >= 0)
    seen = np.zeros(len(index), dtype=bool)
    chosen: list[int] = []
    snapshots: list[Snapshot] = []
    for start in range(0, len(found), STATE_CHUNK):
        chunk = found[start : start + STATE_CHUNK]
        records = inventory.iloc[chunk][fields].to_dict("records")
        for position, record in zip(positions[chunk].tolist(), records, strict=True):
            if seen[position]:
                continue
            seen[position] = True
            chosen.append(position)
            snapshots.append(inventory_snapshot(record, tag_columns))
    return np.array(chosen, dtype=np.int64), snapshots


def diff_inventory(
    inventory: pd.DataFrame, plan: Plan, requests: int, *, rows: bool = True
) -> tuple[pd.DataFrame, State]:
    """The plan's diff against the inventory, and the apply run's `State` of the same
    snapshots (`snapshots_of`). A plan entry the inventory lacks is not found.

    Parameters
    ----------
    inventory : DataFrame
        The export the policy was evaluated on.
    plan : Plan
        The evaluated manifest, planned.
    requests : int
        What reading the snapshots cost (the state's ``requests``).
    rows : bool
        Keep the diff's rows; False: the frame is empty, only ``attrs["summary"]`` counts.

    Returns
    -------
    (DataFrame, State)
        `batchtag.diff.diff_plan`'s frame, and the state.
    """
    entries = plan.entries
    state = State(PlanIndex.of(entries))
    collector = DiffCollector(plan.passthrough, keep_rows=rows, notes=plan.notes)
    chosen, snapshots = snapshots_of(inventory, entries)
    for position, snapshot in zip(chosen.tolist(), snapshots, strict=True):
        collector.add(entries[position], snapshot, position)
        state.put(position, snapshot)
    missing = np.setdiff1d(np.arange(len(entries)), chosen)
    for position in missing.tolist():
        collector.add(entries[position], None, position)
    state.put_missing(missing)
    state.finish()
    state.read, state.requests = len(entries), requests
    return collector.frame(), state


def inventory_positions(inventory: pd.DataFrame, index: PlanIndex) -> np.ndarray:
    """The plan position of each inventory row (-1: the plan has no entry for it)."""
    out = np.full(len(inventory), -1, dtype=np.int64)
    if not len(inventory) or not len(index):
        return out
    projects = inventory["project_id"].to_numpy(dtype=np.int64)
    regions = inventory["region_id"].to_numpy(dtype=np.int64)
    ids = inventory["snapshot_id"]
    for project, region in set(zip(projects.tolist(), regions.tolist(), strict=True)):
        rows = np.flatnonzero((projects == project) & (regions == region))
        keys = keys_of(str(i) for i in ids.iloc[rows])
        out[rows] = index.positions((project, region), keys)
    return out


def _checked(found: Enforced, failed, options, output, compact: bool) -> EnforceOutcome:
    """The outcome of ``check``: the drift file written, the summary of what would change."""
    diff = found.diff
    if output is not None:
        if compact:  # its rows name no manifest row already
            write_diff(diff, output)
        else:
            drift = diff.frame()
            drift["rows"] = None  # positions in the generated manifest: nothing a user wrote
            write_diff(drift, output)
    plan_summary = diff.summary
    code = EXIT_FAILED if failed else plan_exit_code(plan_summary)
    summary = {
        **compliance(found.rules, found.size),
        "drift": {"changes": found.changes, "snapshots": len(found.plan.entries)},
        "plan": plan_summary,
        "failed_scopes": failed,
        "warnings": found.warnings,
        "exit_code": code,
    }
    written = None if output is None else str(output)
    result = EnforceOutcome(found.manifest, diff, None, code, summary, output=written)
    if options.summary_json:
        result.summary_json_error = save_summary_json(summary, options.summary_json)
    return result


def unknown_tag_warnings(policy: Policy, inventory: pd.DataFrame) -> list[str]:
    """A warning (logged, and returned for the summary) for each tag a rule's ``where``
    names that no snapshot of the inventory has, with the closest keys. Keys the rule
    writes or removes itself are left out: once the snapshots comply, a rule such as
    ``where = "`tag:tmp`.notna()"`` with ``delete = ["tmp"]`` finds none, as it should."""
    tags = [c for c in inventory.columns if is_tag_column(c)]
    user = [c.split(":", 1)[1] for c in tags if not c.startswith(RO_PREFIX)]
    read_only = [c.split(":", 1)[1] for c in tags if c.startswith(RO_PREFIX)]
    out = []
    for rule in policy.rules:
        if rule.where is None:
            continue
        own = [*rule.set, *rule.delete, *rule.lower, *rule.upper, *rule.rename]
        own += [*rule.rename.values(), *(rule.copy.keys if rule.copy is not None else ())]
        named = [c for c in compile_where(rule.where).columns if not written(c, own)]
        for text in missing_tags(named, user, read_only):
            out.append(f"{rule.label}: {text}")
            log.warning("%s", out[-1])
    return out


def written(column: str, keys: Iterable[str]) -> bool:
    """Whether `column` is the ``tag:`` column of one of `keys` (fnmatch patterns too, as a
    copy rule names them)."""
    return column.startswith(TAG_PREFIX) and any(
        fnmatch.fnmatchcase(column[len(TAG_PREFIX) :], key) for key in keys
    )


def check_options(
    options: ApplyOptions, check: bool = False, output: str | os.PathLike | None = None
) -> None:
    """Refuse, before any request, bad option values, the apply options that enforce
    does not take (`NOT_FOR_ENFORCE`), and an output (the drift file) without `check`."""
    options.check()
    if output is not None:
        if not check:
            raise UsageError(
                f"{option('output')} writes the drift of {option('check', True)}; a run "
                f"writes {option('report')} and {option('undo_file')}"
            )
        check_output(output, overwrite=options.overwrite)
    parse_max_changes(options.max_changes)
    for name, why in NOT_FOR_ENFORCE.items():
        if getattr(options, name):
            raise UsageError(f"enforce takes no {option(name)}: {why}")


def check_max_changes(limit: str | int | None, to_send: int, inventory_size: int) -> None:
    """The max-changes guard of enforce: N% counts against the exported inventory.

    Raises
    ------
    AbortRun
        When the plan would change more snapshots than allowed (exit 3, nothing sent).

    Examples
    --------
    >>> check_max_changes("10%", 10, 100)
    >>> check_max_changes("10%", 11, 100)
    Traceback (most recent call last):
    ...
    batchtag.errors.AbortRun: refusing to start: the policy would change 11 of 100 snapshots, more than max_changes='10%' (10)
    """
    parsed = parse_max_changes(limit)
    if parsed is None:
        return
    number, percent = parsed
    allowed = math.floor(inventory_size * number / 100) if percent else int(number)
    if to_send > allowed:
        raise AbortRun(
            f"refusing to start: the policy would change {to_send} of {inventory_size} "
            f"snapshots, more than {option('max_changes', limit)} ({allowed})"
        )


def inventory_snapshot(row: Mapping[str, Any], tag_columns: Iterable[str]) -> Snapshot:
    """One inventory row as the `Snapshot` the diff and the state read: user tags, then
    read-only ones (``ro:`` columns), each in the inventory's column order."""
    user: list[str] = []
    read_only: list[str] = []
    for column in tag_columns:
        value = row[column]
        if isinstance(value, str):
            (read_only if column.startswith(RO_PREFIX) else user).extend(
                (column.split(":", 1)[1], value)
            )
    task_id = row.get("task_id")
    task_id = task_id if isinstance(task_id, str) else None
    return Snapshot(row.get("name"), task_id, len(user) // 2, (*user, *read_only))


def scopes(policy: Policy, options: ApplyOptions) -> ScopeChoice:
    """The scopes to export: the policy's [scope] (ids, or every project / region the API
    lists), narrowed by the caller's option when it names one of its values; without a
    [scope], the options (or the env). An option outside the policy's list, or one that
    would widen it (``all_regions`` over a policy's ``region_id``), is refused."""
    out: dict[str, Any] = {}
    for name, every in zip(SCOPE_KEYS, SCOPE_FLAGS, strict=True):
        from_policy, given = getattr(policy, name), getattr(options, name)
        if from_policy is not None and given is not None and given not in from_policy:
            raise UsageError(
                f"{option(name, given)} is outside the policy's [scope] "
                f"{name} = {list(from_policy)} ({policy.source})"
            )
        if from_policy is not None and getattr(options, every):
            raise UsageError(
                f"{option(every)} would widen the policy's [scope] "
                f"{name} = {list(from_policy)} ({policy.source})"
            )
        if given is not None:
            out[name] = given
        elif from_policy is not None:
            out[name] = list(from_policy)
        else:
            out[every] = getattr(policy, every) or getattr(options, every)
    return ScopeChoice(**out)


async def read_inventory(
    policy: Policy, options: ApplyOptions, each: Callable[[pd.DataFrame], None]
) -> dict[str, Any]:
    """Read the current inventory of the policy's scopes (as `export` reads it), handing it
    to `each` a chunk of rows at a time; returns what the export did
    (`ExportOutcome.as_dict`). A scope that cannot be read is left out
    (``failed_scopes``); when none can, or a read fails for good otherwise, the run aborts
    (exit 3) before anything is sent."""
    reading = {name: getattr(options, name) for name in READ_NAMES}
    chosen = scopes(policy, options)
    chosen.check()
    try:
        outcome = await run_export(
            chosen,
            Selection(with_volume=policy.needs_volume),
            None,
            each=each,
            **reading,
        )
    except ApiError as error:  # the reads' retries are spent: nothing was sent
        raise AbortRun(f"cannot read the inventory: {error}") from None
    return outcome.as_dict()
