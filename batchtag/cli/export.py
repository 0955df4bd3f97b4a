"""`batchtag export`: the inventory of one or more scopes, a valid wide manifest."""

from __future__ import annotations

import sys

import click

from batchtag.cli.common import (
    console,
    fail,
    is_stdout,
    one_stdout,
    progress_option,
    save_summary,
    start,
)
from batchtag.config import ENV_PROJECT_ID, ENV_REGION_ID
from batchtag.defaults import CONNECTION_OPTIONS, DISCOVERY_OPTIONS, LOGGING_OPTIONS
from batchtag.errors import ApiError, BatchtagError
from batchtag.options import click_options

# The read options of export and keys (and of their Python functions, after their own).
SCOPE_FLAGS = (
    click.option(
        "--project-id",
        "project_ids",
        type=int,
        multiple=True,
        help=f"Project (repeatable) [env {ENV_PROJECT_ID}].",
    ),
    click.option(
        "--region-id",
        "region_ids",
        type=int,
        multiple=True,
        help=f"Region (repeatable) [env {ENV_REGION_ID}].",
    ),
)


def scope_flags(func):
    """--project-id/--region-id (repeatable), --scopes, --all-projects, --all-regions."""
    for decorate in reversed((*SCOPE_FLAGS, click_options("scopes", *DISCOVERY_OPTIONS))):
        func = decorate(func)
    return func


def scope_choice(project_ids, region_ids, scopes, all_projects, all_regions):
    """The `ScopeChoice` of the command line's scope options, checked (exit 2)."""
    from batchtag.inventory import ScopeChoice

    choice = ScopeChoice(project_ids or None, region_ids or None, scopes, all_projects, all_regions)
    choice.check()
    return choice


@click.command("export")
@scope_flags
@click_options(
    "output",
    "overwrite",
    "where",
    "columns",
    "long",
    "with_volume",
    "concurrency",
    "rate",
    "progress",
    "summary_json",
    *CONNECTION_OPTIONS,
    *LOGGING_OPTIONS,
)
def export_command(
    project_ids,
    region_ids,
    scopes,
    all_projects,
    all_regions,
    output,
    where,
    columns,
    long,
    with_volume,
    summary_json,
    verbose,
    quiet,
    log_format,
    color,
    **kwargs,
):
    """Write the inventory of one or more scopes: one row per snapshot, tag:<key> and
    ro:<key> columns (--with volume: also volume_name and volume_tag:<key> of the
    snapshot's volume). The file is a valid wide manifest: edit it, then apply it with
    --empty-deletes. Without -o (or with -o -) the CSV goes to stdout (JSON Lines with
    --log-format json). A scope that cannot be read (403, 404, 5xx after retries) is left
    out and named; the others are exported and the exit code is 1.

    \b
    Example:
      batchtag export --project-id 1 --region-id 1 -o inventory.parquet
      batchtag export --project-id 1 --all-regions -o project1.parquet
      batchtag export --where '`tag:cost-center`.isna() and size > 100' -o todo.csv
      batchtag export --scopes scopes.csv --columns 'snapshot_id,name,tag:*' --long
      batchtag export --with volume --where '`volume_tag:team` == "data"' -o data.csv
    """
    import asyncio

    from batchtag.commands import run_export
    from batchtag.inventory import Selection, split_columns
    from batchtag.record import fill_started
    from batchtag.tabular import STDOUT

    output = STDOUT if output is None else output
    to_stdout = is_stdout(output) or is_stdout(summary_json)
    start(log_format, verbose, quiet, color, data_on_stdout=to_stdout)
    kwargs["progress"] = progress_option(kwargs["progress"], quiet)
    try:
        one_stdout(output=output, summary_json=summary_json)
        summary_json = fill_started({"summary_json": summary_json})["summary_json"]
        selection = Selection(where, split_columns(columns), long, with_volume == "volume")
        selection.check()
        chosen = scope_choice(project_ids, region_ids, scopes, all_projects, all_regions)
        outcome = asyncio.run(run_export(chosen, selection, output, **kwargs))
    except BatchtagError as error:
        fail(error, log_format, summary_json)
    except ApiError as error:  # a read that failed for good (after its retries)
        fail(BatchtagError(str(error)), log_format, summary_json)
    finish(outcome, "stdout" if is_stdout(output) else outcome.output, summary_json)


def finish(outcome, target: str, summary_json: str | None) -> None:
    """Write the summary JSON (when asked), say what was exported on stderr (and which
    scopes could not be read); exit 0, or 1 when the export is partial: a scope was left
    out, or a listing stayed inconsistent after its re-reads (the output holds what was
    seen)."""
    out = console()
    summary = outcome.as_dict()
    out.summary = summary
    problem = save_summary(summary, summary_json) if summary_json else None
    volumes = "" if outcome.volumes is None else f"{outcome.volumes} volumes, "
    text = (
        f"exported {outcome.rows} rows ({outcome.snapshots} snapshots, {volumes}"
        f"{len(outcome.scopes)} scope(s), {outcome.requests} requests) to {target}"
    )
    if outcome.failed:
        text += f"; {len(outcome.failed)} scope(s) could not be read and were left out"
    out.note(text, event="exported", rows=outcome.rows, snapshots=outcome.snapshots)
    if outcome.stats.missing:
        out.fail_line(
            f"the listing kept changing while it was re-read: {target} holds the "
            f"{outcome.snapshots} snapshots seen, ~{outcome.stats.missing} may be missing; "
            "export again when the scope is quieter"
        )
    if problem:
        out.fail_line(problem)
    sys.exit(outcome.exit_code or (1 if problem else 0))
