"""`enforce`: export the policy's scopes, evaluate its rules, plan, apply the manifest.

    policy file --load_policy--> Policy --(export)--> inventory --evaluate--> manifest
        --plan (diff against the exported state)--> diff --run_apply--> report
                                                     (with check=True: stop at the diff)

The export lists the volumes too (``with_volume``) only when a rule reads them
(`Policy.needs_volume`: a ``copy``, or a ``where`` naming a volume column).

Nothing is read twice: the plan diffs against the inventory just exported, and the apply
run takes that state too (the before-state of its report and undo file, and the minimal
bodies) instead of reading the snapshots again. A run sends the snapshot pages, the volume
pages when needed, and one PATCH per snapshot that changes.
``max_changes`` N% counts against that inventory (the snapshots of the policy's scopes).
There is no ``resume``: enforce re-reads the state every run and sends only what still
differs, so re-running it after an interrupted run is the resume.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from batchtag.commands._apply import ApplyOptions, RunOutcome, parse_max_changes, run_apply
from batchtag.commands._export import READ_NAMES, run_export
from batchtag.commands._plan import check_output
from batchtag.defaults import NOT_FOR_ENFORCE, PYTHON_OPTIONS
from batchtag.diff import EXIT_CHANGES, diff_plan, plan_exit_code
from batchtag.errors import AbortRun, ApiError, UsageError, option
from batchtag.inventory import Selection, resolve_scopes
from batchtag.manifest import read_plan
from batchtag.model import Plan, PlanIndex
from batchtag.policy import (
    KEY_COLUMNS,
    RO_PREFIX,
    SCOPE_KEYS,
    Policy,
    evaluate,
    is_tag_column,
    load_policy,
)
from batchtag.read import State
from batchtag.record import EXIT_OK, write_changes

EXIT_DRIFT = EXIT_CHANGES  # `enforce --check`: something would change (as plan's detailed code)
EXIT_CLEAN = EXIT_OK
# enforce's keyword options: every apply option but resume (running enforce again resumes).
ENFORCE_NAMES = tuple(o.name for o in PYTHON_OPTIONS if o.name not in NOT_FOR_ENFORCE)


@dataclass
class EnforceOutcome:
    """What one enforce did: the manifest, its diff against the exported state, the apply
    run (None with check) and the exit code."""

    manifest: pd.DataFrame
    diff: pd.DataFrame
    run: RunOutcome | None
    exit_code: int


async def run_enforce(
    policy: str | Path | Policy,
    options: ApplyOptions,
    *,
    check: bool = False,
    output: str | Path | None = None,
    inventory: pd.DataFrame | None = None,
    confirm: Callable[[int], bool] | None = None,
    on_engine: Callable[[Any], None] | None = None,
) -> EnforceOutcome:
    """Load the policy, read the inventory (unless given), evaluate, then apply.

    Everything that can be refused is refused before the first request (the policy, its
    ``where`` expressions, the options); rule conflicts before the first write.

    Parameters
    ----------
    policy : str, Path or Policy
        The TOML file, or a loaded policy.
    options : ApplyOptions
        The apply run's options (also the export's connection, concurrency and rate).
    check : bool
        Stop after the plan: exit code 2 when anything would change, 1 on a conflict (a
        refused rename), else 0.
    output : str or Path, optional
        With `check`: write the plan as a change file (`batchtag apply` applies it, each
        key checked against the value the policy saw).
    inventory : DataFrame, optional
        Evaluate this instead of exporting the policy's scopes.
    confirm, on_engine : callable, optional
        As for `batchtag.commands._apply.run_apply`.

    Returns
    -------
    EnforceOutcome
        The manifest, the diff, the apply run's outcome (None with `check`), the exit code.

    Examples
    --------
    >>> asyncio.run(run_enforce("p.toml", ApplyOptions(), check=True))  # doctest: +SKIP
    """
    policy = policy if isinstance(policy, Policy) else load_policy(policy)
    check_options(options)
    if output is not None:
        if not check:
            raise UsageError(
                f"{option('output')} writes the plan of {option('check', True)}; an enforce "
                f"that applies keeps its way back in {option('undo_file')}"
            )
        check_output(output, overwrite=options.overwrite)
    if inventory is None:
        inventory = await read_inventory(policy, options)
    manifest = evaluate(policy, inventory)
    plan = read_plan(manifest, form="long")
    current = inventory_state(inventory, plan)
    diff = diff_plan(plan, current)
    if check:
        if output is not None:
            write_changes(diff, output)
        return EnforceOutcome(manifest, diff, None, plan_exit_code(diff.attrs["summary"]))
    if not options.dry_run:
        check_max_changes(options.max_changes, diff.attrs["summary"]["writes"], len(inventory))
    settings = replace(options, max_changes=None)  # checked above, against the inventory
    read = inventory.attrs.get("export", {})
    known = known_state(plan, current, read.get("requests", 0) - read.get("volume_requests", 0))
    outcome = await run_apply(
        manifest, settings, plan=plan, state=known, confirm=confirm, on_engine=on_engine
    )
    return EnforceOutcome(manifest, diff, outcome, outcome.exit_code)


def known_state(plan: Plan, snapshots: Mapping[tuple, dict[str, Any]], requests: int) -> State:
    """The apply run's `State` from snapshots known already (`inventory_state`): a plan
    entry the inventory lacks is not found. `requests`: what reading them cost."""
    state = State(PlanIndex.of(plan.entries))
    for entry in plan.entries:
        state.put(state.index.position(entry), snapshots.get(entry.key))
    state.finish()
    state.read, state.requests = len(plan.entries), requests
    return state


def check_options(options: ApplyOptions) -> None:
    """Refuse, before any request, bad option values and the apply options that enforce
    does not take (`NOT_FOR_ENFORCE`)."""
    options.check()
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


def inventory_state(inventory: pd.DataFrame, plan: Plan) -> dict[tuple, dict[str, Any]]:
    """The current state of the plan's snapshots, as snapshot JSON, from the inventory
    (``name``, ``task_id`` and ``tags`` from its tag:/ro: columns): the plan's diff needs
    no second read."""
    wanted = {entry.key for entry in plan.entries}
    tag_columns = [c for c in inventory.columns if is_tag_column(c)]
    ids = zip(*(inventory[c] for c in KEY_COLUMNS), strict=True)
    keys = [(int(p), int(r), str(s)) for p, r, s in ids]
    rows = [i for i, key in enumerate(keys) if key in wanted]
    fields = [c for c in ("name", "task_id") if c in inventory.columns] + tag_columns
    records = inventory.iloc[rows][fields].to_dict("records")
    return {keys[i]: snapshot_json(r, tag_columns) for i, r in zip(rows, records, strict=True)}


def snapshot_json(row: Mapping[str, Any], tag_columns: Iterable[str]) -> dict[str, Any]:
    """One inventory row as the API's snapshot object (the fields a diff reads)."""
    tags = [
        {"key": c.split(":", 1)[1], "value": row[c], "read_only": c.startswith(RO_PREFIX)}
        for c in tag_columns
        if isinstance(row[c], str)
    ]
    task_id = row.get("task_id")
    task_id = task_id if isinstance(task_id, str) else None
    return {"name": row.get("name"), "task_id": task_id, "tags": tags}


def scopes(policy: Policy, options: ApplyOptions) -> dict[str, Any]:
    """project_id / region_id for the export: the policy's [scope], narrowed by the caller's
    option when it names one of its values; without a [scope], the option (or the env)."""
    out: dict[str, Any] = {}
    for name in SCOPE_KEYS:
        from_policy, given = getattr(policy, name), getattr(options, name)
        if from_policy is not None and given is not None and given not in from_policy:
            raise UsageError(
                f"{option(name, given)} is outside the policy's [scope] "
                f"{name} = {list(from_policy)} ({policy.source})"
            )
        if given is not None:
            out[name] = given
        elif from_policy is not None:
            out[name] = list(from_policy)
    return out


async def read_inventory(policy: Policy, options: ApplyOptions) -> pd.DataFrame:
    """The current inventory of the policy's scopes (as `export` reads it); a read that
    fails after its retries aborts the run (exit 3) before anything is sent."""
    reading = {name: getattr(options, name) for name in READ_NAMES}
    chosen = scopes(policy, options)
    try:
        outcome = await run_export(
            resolve_scopes(chosen.get("project_id"), chosen.get("region_id"), None),
            Selection(with_volume=policy.needs_volume),
            None,
            collect=True,
            **reading,
        )
    except ApiError as error:  # the reads' retries are spent: nothing was sent
        raise AbortRun(f"cannot read the inventory: {error}") from None
    outcome.frame.attrs["export"] = outcome.as_dict()
    return outcome.frame
