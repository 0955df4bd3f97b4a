"""`batchtag.enforce` and `batchtag.enforce_async`: make the snapshots satisfy a policy."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from batchtag.api._functions import make_options, report_of
from batchtag.api._interrupt import Resume, finish, run_blocking
from batchtag.commands import ENFORCE_NAMES, run_enforce
from batchtag.defaults import document_options
from batchtag.errors import BatchtagError, Interrupted
from batchtag.logs import redact
from batchtag.policy import Policy
from batchtag.record import conform, save_error_summary


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
        The report of the apply run (``attrs["summary"]``: the run's summary with the
        compliance figures ``inventory`` and ``rules`` -- per rule ``matched``,
        ``noncompliant``, ``changed`` -- and ``failed_scopes``; ``attrs["manifest"]``), or
        with ``check=True`` the manifest (long form with a ``rule`` column; empty when the
        snapshots already comply; its ``attrs["diff"]`` is the plan's diff, as
        `batchtag.plan` returns it, and ``attrs["summary"]`` the compliance figures and the
        exit code).

    Raises
    ------
    PolicyError
        A policy that cannot be read, or rules that conflict; nothing was sent.
    UsageError
        Bad options; nothing was sent.
    AbortRun
        Nothing could be sent (credentials, max_changes, an unreadable inventory); a run
        that aborts once sending returns its report (``attrs["summary"]["aborted"]``).
    Interrupted
        (`enforce` only) Ctrl-C stopped the run: ``error.report`` is the report so far
        (None before the apply started), ``error.resume()`` runs enforce again, which
        sends only what still differs.

    Examples
    --------
    >>> drift = await batchtag.enforce_async("cost-policy.toml", check=True)  # doctest: +SKIP
    """
    return await _enforce(policy, check, output, inventory, options, [])


async def _enforce(policy, check, output, inventory, options, engines) -> pd.DataFrame:
    settings = make_options(options, ENFORCE_NAMES, "enforce")
    try:
        outcome = await run_enforce(
            policy,
            settings,
            check=check,
            output=output,
            inventory=inventory,
            on_engine=engines.append,
        )
    except BatchtagError as error:  # the summary file says so, as on the command line
        if settings.summary_json:
            save_error_summary(settings.summary_json, redact(str(error)), error.exit_code)
        raise error.with_traceback(None) from None
    if outcome.summary_json_error:
        warnings.warn(outcome.summary_json_error, RuntimeWarning, stacklevel=2)
    manifest = conform(outcome.manifest)
    if outcome.run is None:
        manifest.attrs["diff"] = outcome.diff.frame()
        manifest.attrs["summary"] = outcome.summary
        return manifest
    report = report_of(outcome.run, abort=False)  # raises Interrupted after a Ctrl-C
    report.attrs["summary"] = outcome.summary
    report.attrs["manifest"] = manifest
    return report


def enforce(policy: str | Path | Policy, /, **options: Any) -> pd.DataFrame:
    check, inventory = options.pop("check", False), options.pop("inventory", None)
    output = options.pop("output", None)
    try:
        return run_blocking(
            lambda engines: _enforce(policy, check, output, inventory, options, engines),
            "batchtag-enforce",
        )
    except Interrupted as error:
        given = {**options, **({"check": check} if check else {})}
        if output is not None:
            given["output"] = output
        if inventory is not None:
            given["inventory"] = inventory
        resume = Resume(enforce, "batchtag.enforce", policy, given)
        raise finish(error, resume, "enforce").with_traceback(None) from None
    except BatchtagError as error:
        raise error.with_traceback(None) from None


document_options(enforce_async, ENFORCE_NAMES)
document_options(
    enforce,
    like=enforce_async,
    summary="Make the snapshots satisfy a policy, from sync code (a notebook's running event\n"
    "loop is fine: the run then gets its own loop in a helper thread).",
    example=""">>> drift = batchtag.enforce("cost-policy.toml", check=True)  # doctest: +SKIP""",
)
