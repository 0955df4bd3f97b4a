"""`batchtag.enforce` and `batchtag.enforce_async`: make the snapshots satisfy a policy."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from batchtag.api._functions import make_options, run_blocking
from batchtag.commands import ENFORCE_NAMES, run_enforce
from batchtag.defaults import document_options
from batchtag.errors import BatchtagError
from batchtag.logs import redact
from batchtag.policy import Policy
from batchtag.record import read_report, save_error_summary


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
        A TOML policy file (see `batchtag.policy._policy`) or a loaded policy.
    check : bool
        Only evaluate: return the manifest of what would change, send nothing.
    inventory : DataFrame, optional
        An export to evaluate instead of reading the policy's scopes (exported with
        ``with_volume=True`` when a rule reads the volumes: `Policy.needs_volume`).

    Returns
    -------
    DataFrame
        The report of the apply run (``attrs["summary"]``: the run's summary with the
        compliance figures ``inventory`` and ``rules`` -- per rule ``matched``,
        ``noncompliant``, ``changed`` -- and ``failed_scopes``; ``attrs["manifest"]``), or
        with ``check=True`` the manifest (empty when the snapshots already comply; its
        ``attrs["diff"]`` is the plan's diff, as `batchtag.plan` returns it, and
        ``attrs["summary"]`` the compliance figures and the exit code).

    Examples
    --------
    >>> drift = await batchtag.enforce_async("cost-policy.toml", check=True)  # doctest: +SKIP
    """
    settings = make_options(options, ENFORCE_NAMES, "enforce")
    try:
        outcome = await run_enforce(policy, settings, check=check, inventory=inventory)
    except BatchtagError as error:  # the summary file says so, as on the command line
        if settings.summary_json:
            save_error_summary(settings.summary_json, redact(str(error)), error.exit_code)
        raise error.with_traceback(None) from None
    if outcome.summary_json_error:
        warnings.warn(outcome.summary_json_error, RuntimeWarning, stacklevel=2)
    if outcome.run is None:
        outcome.manifest.attrs["diff"] = outcome.diff
        outcome.manifest.attrs["summary"] = outcome.summary
        return outcome.manifest
    report = read_report(outcome.run.report_path)
    report.attrs["summary"] = outcome.summary
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
