"""`enforce`: export the policy's scopes, evaluate its rules, apply the resulting manifest.

    policy file --load_policy--> Policy --(export)--> inventory --evaluate--> manifest
        --run_apply--> report          (or, with check=True: stop at the manifest)

TODO(integrator): once `batchtag plan` lands, put the plan step between evaluate and apply
(print the diff; `check` becomes plan's detailed exit code) and count ``max_changes`` N% on
the exported inventory rather than on the scopes of the changed snapshots.
"""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from batchtag.errors import UsageError, option
from batchtag.policy import SCOPE_KEYS, Policy, load_policy
from batchtag.policy_eval import evaluate
from batchtag.runner import ApplyOptions, RunOutcome, run_apply

EXIT_DRIFT = 2  # `enforce --check`: something would change (like `plan --detailed-exitcode`)
EXIT_CLEAN = 0


@dataclass
class EnforceOutcome:
    """What one enforce did: the manifest, the apply run (None with check) and the exit code."""

    manifest: pd.DataFrame
    run: RunOutcome | None
    exit_code: int


async def run_enforce(
    policy: str | Path | Policy,
    options: ApplyOptions,
    *,
    check: bool = False,
    inventory: pd.DataFrame | None = None,
    confirm: Callable[[int], bool] | None = None,
    on_engine: Callable[[Any], None] | None = None,
) -> EnforceOutcome:
    """Load the policy, read the inventory (unless given), evaluate, then apply.

    Everything that can be refused is refused before the first request: the policy, its
    ``where`` expressions and the options; rule conflicts before the first write.

    Parameters
    ----------
    policy : str, Path or Policy
        The TOML file, or a loaded policy.
    options : ApplyOptions
        The apply run's options (also the export's connection, concurrency and rate).
    check : bool
        Stop after evaluating: exit code 2 when anything would change, else 0.
    inventory : DataFrame, optional
        Evaluate this instead of exporting the policy's scopes.
    confirm, on_engine : callable, optional
        As for `batchtag.runner.run_apply`.

    Returns
    -------
    EnforceOutcome
        The manifest, the apply run's outcome (None with `check`) and the exit code.

    Examples
    --------
    >>> outcome = asyncio.run(run_enforce("cost-policy.toml", ApplyOptions(), check=True))
    ... # doctest: +SKIP
    """
    policy = policy if isinstance(policy, Policy) else load_policy(policy)
    options.check()
    if inventory is None:
        inventory = await read_inventory(policy, options)
    manifest = evaluate(policy, inventory)
    if check:
        return EnforceOutcome(manifest, None, EXIT_DRIFT if len(manifest) else EXIT_CLEAN)
    outcome = await run_apply(manifest, options, confirm=confirm, on_engine=on_engine)
    return EnforceOutcome(manifest, outcome, outcome.exit_code)


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
    """The current inventory of the policy's scopes (the export of the export issue)."""
    try:
        from batchtag.export import export_async
    except ImportError:  # TODO(integrator): remove once the export branch is merged
        raise NotImplementedError(
            "enforce needs batchtag.export (not merged yet); pass inventory= to evaluate "
            "an inventory you already have"
        ) from None
    return await export_async(
        **scopes(policy, options),
        base_url=options.base_url,
        api_key=options.api_key,
        insecure_http=options.insecure_http,
        concurrency=options.concurrency,
        rate=options.rate,
        progress=options.progress,
    )


async def enforce_async(
    policy: str | Path | Policy,
    /,
    *,
    check: bool = False,
    inventory: pd.DataFrame | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Make the snapshots satisfy a policy, from async code.

    Parameters
    ----------
    policy : str, Path or Policy
        A TOML policy file (see `batchtag.policy`) or a loaded policy.
    check : bool
        Only evaluate: return the manifest of what would change, send nothing.
    inventory : DataFrame, optional
        An export to evaluate instead of reading the policy's scopes.
    **options
        Every option of `batchtag.apply` (report, dry_run, max_changes, ...).

    Returns
    -------
    DataFrame
        The report of the apply run (``attrs["summary"]``, ``attrs["manifest"]``), or with
        ``check=True`` the manifest (empty when the snapshots already comply).

    Examples
    --------
    >>> drift = await batchtag.enforce_async("cost-policy.toml", check=True)  # doctest: +SKIP
    """
    from batchtag.library import APPLY_NAMES, make_options
    from batchtag.report import load_report

    settings = make_options(options, APPLY_NAMES, "enforce")
    outcome = await run_enforce(policy, settings, check=check, inventory=inventory)
    if outcome.run is None:
        return outcome.manifest
    report = load_report(outcome.run.report_path)
    report.attrs["summary"] = outcome.run.summary
    report.attrs["manifest"] = outcome.manifest
    return report


def enforce(policy: str | Path | Policy, /, **options: Any) -> pd.DataFrame:
    """Blocking `enforce_async` (same arguments); inside a running event loop (Jupyter) it
    runs on its own loop in a helper thread.

    Examples
    --------
    >>> report = batchtag.enforce("cost-policy.toml", max_changes="10%")  # doctest: +SKIP
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(enforce_async(policy, **options))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="batchtag-enforce") as pool:
        return pool.submit(asyncio.run, enforce_async(policy, **options)).result()


class _CallableModule(types.ModuleType):
    """Importing this module binds it to the package attribute ``batchtag.enforce`` (the
    import system sets submodules there), so calling it must run `enforce` (as export)."""

    def __call__(self, policy: str | Path | Policy, /, **options: Any) -> pd.DataFrame:
        return enforce(policy, **options)


sys.modules[__name__].__class__ = _CallableModule
