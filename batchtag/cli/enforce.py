"""`batchtag enforce`: make the snapshots satisfy a TOML policy (export, rules, apply)."""

from __future__ import annotations

import click

from batchtag.cli.apply import ask, finish
from batchtag.cli.common import (
    CheckCommand,
    console,
    fail,
    held_signals,
    is_stdout,
    one_stdout,
    progress_option,
    start,
    stop_on_signals,
)
from batchtag.defaults import LOGGING_OPTIONS, NOT_FOR_ENFORCE, PYTHON_OPTIONS
from batchtag.errors import BatchtagError, UsageError, option
from batchtag.options import click_options

ENFORCE_OPTIONS = tuple(o.name for o in PYTHON_OPTIONS if o.name not in NOT_FOR_ENFORCE)


@click.command(cls=CheckCommand, check_flag="--check")
@click.argument("policy")
@click_options("check", "output", "limit", *ENFORCE_OPTIONS, "yes", *LOGGING_OPTIONS)
def enforce(
    policy: str,
    check: bool,
    output: str | None,
    limit: int,
    yes: bool,
    verbose: int,
    quiet: bool,
    log_format: str,
    color: bool | None,
    **kwargs,
) -> None:
    """Make the snapshots satisfy POLICY (a TOML file of tag rules).

    Exports the policy's scopes (or every region / project the API lists:
    --all-regions, --all-projects, or all_regions = true in its [scope]; and their volumes,
    when a rule copies tags from them or its where reads them), evaluates every rule, plans
    against the exported state, and applies only the changes, with all of apply's options
    and guards (--max-changes N% counts the exported snapshots). Prints the compliance
    summary: the inventory size and, per rule, the snapshots it matched, those that broke
    it (noncompliant) and, after a run, those it changed. A second run right after sends
    nothing; there is no --resume: running enforce again is the resume ({started} in
    --report, --undo-file and --summary-json gives each run its own files).

    A rename onto a key that holds a different value is refused there (a conflict, named
    with its rule and snapshot) unless the rule's rename says overwrite = true.

    Exit codes: as apply (0 ok, 1 some failed, a conflict or a scope could not be read, 2
    bad policy or conflicting rules, nothing sent, 3 aborted, 130 interrupted); with
    --check (prints the drift, first --limit snapshots; sends nothing; -o FILE writes all of
    it as a change file, which `batchtag apply FILE` applies as reviewed): 0 nothing to
    change, 2 drift, 1 any error (bad policy or option, missing key, unreachable API, a
    scope that could not be read, a conflict).

    \b
    Example:
        export GCORE_API_KEY=...
        batchtag enforce cost-policy.toml --check -o drift.csv
        batchtag enforce cost-policy.toml --max-changes 10% --report run-{started}.csv \\
            --summary-json summary.json --log-format json --yes
    """
    with held_signals():  # a signal mid-import ends the command cleanly
        from batchtag.commands import ApplyOptions

    to_stdout = is_stdout(output) or is_stdout(kwargs["summary_json"])
    start(log_format, verbose, quiet, color, data_on_stdout=to_stdout)
    if limit < 0:  # before anything is read: -1 is not "no limit"
        refused = UsageError(f"{option('limit', limit)}: give 0 or more snapshots to show")
        fail(refused, log_format, detailed=check)
    options = ApplyOptions(**kwargs)
    options.progress = progress_option(options.progress, quiet)
    try:
        one_stdout(output=output, summary_json=options.summary_json)
        options = options.stamped()
        outcome = run(policy, options, check=check, output=output, confirm=None if yes else ask)
    except BatchtagError as error:
        fail(error, log_format, options.summary_json, detailed=check)
    if outcome.run is None:
        show_check(outcome, limit)
        finish(outcome.summary, outcome.summary_json_error, outcome.exit_code, text="")
    from batchtag.commands import format_compliance
    from batchtag.record import format_summary

    text = format_summary(outcome.summary, resumable=False, forceable=False)
    console().show(None, "compliance", **compliance_fields(outcome.summary))
    text += "\n" + format_compliance(outcome.summary, ran=True)
    finish(outcome.summary, outcome.summary_json_error, outcome.exit_code, text=text)


def compliance_fields(summary: dict) -> dict:
    return {name: summary[name] for name in ("inventory", "rules", "failed_scopes")}


def run(policy: str, options, *, check: bool, output, confirm):
    """Evaluate and apply in this process's main loop, with signal handlers."""
    import asyncio

    from batchtag.commands import install_signal_handlers, run_enforce
    from batchtag.memory import gc_frozen

    try:
        with gc_frozen():
            return asyncio.run(
                run_enforce(
                    policy,
                    options,
                    check=check,
                    output=output,
                    confirm=confirm,
                    on_engine=install_signal_handlers,
                    compact=True,
                )
            )
    finally:
        stop_on_signals()  # the loop's close reset the engine's handlers to the default


def show_check(outcome, limit: int) -> None:
    """What --check prints: the plan's diff (its first `limit` snapshots), the compliance
    figures, a verdict line and where the change file went (-o); with JSON, events."""
    from batchtag.commands import format_compliance
    from batchtag.diff import first_changes, render_plan

    out = console()
    diff = outcome.diff  # (compact: its rows name no manifest row)
    summary = outcome.summary
    drift = summary["drift"]
    verdict = "drift" if drift["changes"] else "clean"
    if out.json:
        out.event("plan", **summary["plan"], changes=first_changes(diff, limit))
        out.event("compliance", **compliance_fields(summary))
    else:
        color = click.get_current_context().color
        lines = [render_plan(diff, limit=limit, color=True), format_compliance(summary, ran=False)]
        lines.append(f"{verdict}: {drift['changes']} tag changes on {drift['snapshots']} snapshots")
        click.echo("\n".join(lines), err=out.data_on_stdout, color=color)
    if outcome.output is not None and not is_stdout(outcome.output):
        written = f"change file written to {outcome.output} ({len(diff)} rows)"
        out.note(written, event="written", path=outcome.output)
