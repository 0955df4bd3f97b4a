"""`batchtag export`: the inventory of one or more scopes, a valid wide manifest."""

from __future__ import annotations

import sys

import click

from batchtag.cli.common import echo_error, fail
from batchtag.config import ENV_PROJECT_ID, ENV_REGION_ID
from batchtag.defaults import CONNECTION_OPTIONS, LOGGING_OPTIONS
from batchtag.errors import ApiError, BatchtagError
from batchtag.options import click_options


@click.command("export")
@click.option(
    "--project-id",
    "project_ids",
    type=int,
    multiple=True,
    help=f"Project (repeatable) [env {ENV_PROJECT_ID}].",
)
@click.option(
    "--region-id",
    "region_ids",
    type=int,
    multiple=True,
    help=f"Region (repeatable) [env {ENV_REGION_ID}].",
)
@click_options(
    "scopes",
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
    output,
    where,
    columns,
    long,
    with_volume,
    summary_json,
    verbose,
    quiet,
    log_format,
    **kwargs,
):
    """Write the inventory of one or more scopes: one row per snapshot, tag:<key> and
    ro:<key> columns (--with volume: also volume_name and volume_tag:<key> of the
    snapshot's volume). The file is a valid wide manifest: edit it, then apply it with
    --empty-deletes. Without -o (or with -o -) the CSV goes to stdout.

    \b
    Example:
      batchtag export --project-id 1 --region-id 1 -o inventory.parquet
      batchtag export --where '`tag:cost-center`.isna() and size > 100' -o todo.csv
      batchtag export --scopes scopes.csv --columns 'snapshot_id,name,tag:*' --long
      batchtag export --with volume --where '`volume_tag:team` == "data"' -o data.csv
    """
    import asyncio

    from batchtag.commands import run_export
    from batchtag.inventory import STDOUT, Selection, resolve_scopes, split_columns
    from batchtag.logs import setup_logging

    setup_logging(-1 if quiet else verbose, log_format)
    if quiet and kwargs["progress"] is None:
        kwargs["progress"] = False
    output = STDOUT if output is None else output
    try:
        selection = Selection(where, split_columns(columns), long, with_volume == "volume")
        selection.check()
        chosen = resolve_scopes(project_ids or None, region_ids or None, scopes)
        outcome = asyncio.run(run_export(chosen, selection, output, **kwargs))
    except BatchtagError as error:
        fail(error, log_format, summary_json)
    except ApiError as error:  # a read that failed for good (after its retries)
        fail(BatchtagError(str(error)), log_format, summary_json)
    finish(outcome, "stdout" if output == STDOUT else output, summary_json, log_format)


EXIT_INCOMPLETE = 1  # a listing stayed inconsistent: the output may lack some snapshots


def finish(outcome, target: str, summary_json: str | None, log_format: str = "text") -> None:
    """Write the summary JSON (when asked), say what was exported on stderr; exit 0, or 1
    when a listing stayed inconsistent after its re-reads (the output holds what was seen)."""
    code = EXIT_INCOMPLETE if outcome.stats.missing else 0
    if summary_json:
        from batchtag.record import write_summary_json

        write_summary_json({**outcome.as_dict(), "exit_code": code}, summary_json)
    volumes = "" if outcome.volumes is None else f"{outcome.volumes} volumes, "
    click.echo(
        f"exported {outcome.rows} rows ({outcome.snapshots} snapshots, {volumes}"
        f"{len(outcome.scopes)} scope(s), {outcome.requests} requests) to {target}",
        err=True,
    )
    if code:
        echo_error(
            f"the listing kept changing while it was re-read: {target} holds the "
            f"{outcome.snapshots} snapshots seen, ~{outcome.stats.missing} may be missing; "
            "export again when the scope is quieter",
            log_format,
        )
    sys.exit(code)
