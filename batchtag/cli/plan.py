"""`batchtag plan`: what applying a manifest would change now, without sending a write."""

from __future__ import annotations

import sys

import click

from batchtag.cli.common import CheckCommand, fail, is_stdout, progress_option, start
from batchtag.defaults import (
    CONNECTION_OPTIONS,
    DISCOVERY_OPTIONS,
    LOGGING_OPTIONS,
    MANIFEST_OPTIONS,
    READ_OPTIONS,
)
from batchtag.errors import BatchtagError, UsageError, option
from batchtag.options import click_options


@click.command(cls=CheckCommand, check_flag="--detailed-exitcode")
@click.argument("manifest")
@click_options(
    "output",
    "overwrite",
    "detailed_exitcode",
    "limit",
    *MANIFEST_OPTIONS,
    *DISCOVERY_OPTIONS,
    *CONNECTION_OPTIONS,
    *READ_OPTIONS,
    *LOGGING_OPTIONS,
)
def plan(
    manifest: str,
    output: str | None,
    detailed_exitcode: bool,
    limit: int,
    verbose: int,
    quiet: bool,
    log_format: str,
    color: bool | None,
    **kwargs,
) -> None:
    """Show what applying MANIFEST would change now: reads the snapshots, writes nothing.

    Prints the counts per verdict (change, noop, not_found, locked, conflict), per tag key
    how many snapshots gain (+), lose (-) or change (~) it, then the first --limit
    snapshots as a compact diff. -o writes the change file, one row per (snapshot, key)
    with its old and new value (-o -: on stdout, the printed plan then goes to stderr):
    `batchtag apply FILE` applies exactly those changes where each key still holds its old
    value (the rest is a conflict). MANIFEST may be such a change file too.

    Exit codes: 0 no errors, 1 errors (snapshots not found, conflicts, writes to read-only
    tags, a scope listed with --all-regions/--all-projects that could not be read), 2 bad
    input, 3 aborted (credentials, the API unreachable). With --detailed-exitcode (for
    automation): 0 nothing to change, 2 changes present, 1 any error, bad input included.

    \b
    Example:
        batchtag plan snapshots.csv --project-id 1 --region-id 1 -o plan.parquet
        batchtag apply plan.parquet --report run1.csv   # what was reviewed, no more
        batchtag plan snapshots.csv --detailed-exitcode --limit 0
        batchtag plan ids-only.csv --project-id 1 --all-regions   # finds each snapshot
    """
    import asyncio

    from batchtag.commands import ApplyOptions, plan_diff
    from batchtag.diff import first_changes, plan_exit_code, render_plan
    from batchtag.record import fill_started

    out = start(log_format, verbose, quiet, color, data_on_stdout=is_stdout(output))
    if limit < 0:  # before anything is read: -1 is not "no limit"
        refused = UsageError(f"{option('limit', limit)}: give 0 or more snapshots to show")
        fail(refused, log_format, detailed=detailed_exitcode)
    options = ApplyOptions(**kwargs)
    options.progress = progress_option(options.progress, quiet)
    try:
        output = fill_started({"output": output})["output"]
        diff = asyncio.run(plan_diff(manifest, options, output=output, rows=limit > 0))
    except BatchtagError as error:
        fail(error, log_format, detailed=detailed_exitcode)
    out.summary = dict(diff.summary)
    if out.json:
        out.event("plan", **diff.summary, changes=first_changes(diff, limit))
    else:
        text = render_plan(diff, limit=limit, color=True)
        click.echo(text, err=out.data_on_stdout, color=click.get_current_context().color)
    if output is not None and not is_stdout(output):
        out.note(
            f"change file written to {output} ({len(diff)} rows)", event="written", path=output
        )
    sys.exit(plan_exit_code(diff.summary, detailed=detailed_exitcode))
