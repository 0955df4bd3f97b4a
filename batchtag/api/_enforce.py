"""`batchtag.enforce` and `batchtag.enforce_async`: make the snapshots satisfy a policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from batchtag.api._functions import make_options, run_blocking
from batchtag.commands import ENFORCE_NAMES, run_enforce
from batchtag.defaults import document_options
from batchtag.policy import Policy
from batchtag.record import read_report


async def enforce_async(
    policy: str | Path | Policy,
    /,
    *,
    check: bool = False,
    output: str | Path | None = None,
    inventory: pd.DataFrame | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Make the snapshots satisfy a policy, from async code.

    Parameters
    ----------
    policy : str, Path or Policy
        A TOML policy file (see `batchtag.policy._policy`) or a loaded policy.
    check : bool
        Only evaluate: return the manifest of what would change, send nothing.
    output : str or Path, optional
        With ``check``: write the plan as a change file (.csv, .parquet, .jsonl), which
        `batchtag.apply` applies where each key still holds what the policy saw.
    inventory : DataFrame, optional
        An export to evaluate instead of reading the policy's scopes (exported with
        ``with_volume=True`` when a rule reads the volumes: `Policy.needs_volume`).

    Returns
    -------
    DataFrame
        The report of the apply run (``attrs["summary"]``, ``attrs["manifest"]``), or with
        ``check=True`` the manifest (empty when the snapshots already comply; its
        ``attrs["diff"]`` is the plan's diff, as `batchtag.plan` returns it).

    Examples
    --------
    >>> drift = await batchtag.enforce_async("cost-policy.toml", check=True)  # doctest: +SKIP
    """
    settings = make_options(options, ENFORCE_NAMES, "enforce")
    outcome = await run_enforce(policy, settings, check=check, output=output, inventory=inventory)
    if outcome.run is None:
        outcome.manifest.attrs["diff"] = outcome.diff
        return outcome.manifest
    report = read_report(outcome.run.report_path)
    report.attrs["summary"] = outcome.run.summary
    report.attrs["manifest"] = outcome.manifest
    return report


def enforce(policy: str | Path | Policy, /, **options: Any) -> pd.DataFrame:
    return run_blocking(lambda _: enforce_async(policy, **options), "batchtag-enforce")


document_options(enforce_async, ENFORCE_NAMES)
document_options(
    enforce,
    like=enforce_async,
    summary="Make the snapshots satisfy a policy, from sync code (a notebook's running event\n"
    "loop is fine: the run then gets its own loop in a helper thread).",
)
