"""`batchtag export`: the click command (temporary home until the cli/ package lands)."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from batchtag.config import ENV_PROJECT_ID, ENV_REGION_ID
from batchtag.defaults import default
from batchtag.errors import CALLER, ApiError, BatchtagError
from batchtag.logs import redact, setup_logging
from batchtag.options import connection_options, logging_options


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
@click.option(
    "--scopes",
    type=click.Path(dir_okay=False),
    help="CSV/JSONL file with project_id,region_id pairs (instead of the two options).",
)
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    help="Output .csv/.parquet/.jsonl; - is CSV on stdout.",
)
@click.option(
    "--where", help="pandas query over the columns, e.g. \"`tag:env` == 'prod' and size > 100\"."
)
@click.option("--columns", help="Comma-separated columns to keep; patterns like 'tag:*' work.")
@click.option(
    "--long", "long_", is_flag=True, help="One row per (snapshot, tag): key, value, read_only."
)
@click.option(
    "--concurrency",
    type=int,
    default=default("concurrency"),
    show_default=True,
    help="Requests in flight.",
)
@click.option(
    "--rate", type=float, default=default("rate"), show_default=True, help="Requests per second."
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@click.option(
    "--summary-json", type=click.Path(dir_okay=False), help="Also write the summary here."
)
@connection_options
@logging_options
def export_command(
    project_ids,
    region_ids,
    scopes,
    output,
    where,
    columns,
    long_,
    summary_json,
    verbose,
    quiet,
    log_format,
    **kwargs,
):
    """Write the inventory of one or more scopes: one row per snapshot, tag:<key> and
    ro:<key> columns. The file is a valid wide manifest: edit it, then apply it.

    \b
    Example:
      batchtag export --project-id 1 --region-id 1 -o inventory.parquet
      batchtag export --where '`tag:cost-center`.isna() and size > 100' -o todo.csv
      batchtag export --scopes scopes.csv --columns 'snapshot_id,name,tag:*' --long
    """
    from batchtag.export import run_export
    from batchtag.inventory import Selection, resolve_scopes, split_columns

    setup_logging(-1 if quiet else verbose, log_format)
    progress = kwargs.pop("progress")
    if quiet and progress is None:
        progress = False
    token = CALLER.set("cli")  # messages spell options the CLI way; reset for in-process callers
    try:
        selection = Selection(where, split_columns(columns), long_)
        selection.check()
        chosen = resolve_scopes(project_ids or None, region_ids or None, scopes)
        outcome = asyncio.run(run_export(chosen, selection, output, progress=progress, **kwargs))
    except (BatchtagError, ApiError) as error:
        click.echo(f"error: {redact(str(error))}", err=True)
        sys.exit(getattr(error, "exit_code", 1))
    finally:
        CALLER.reset(token)
    summary = outcome.as_dict()
    if summary_json:
        with open(summary_json, "w") as fh:
            json.dump(summary, fh, indent=2)
    target = "stdout" if output == "-" else output
    click.echo(
        f"exported {outcome.rows} rows ({outcome.snapshots} snapshots, {len(chosen)} scope(s), "
        f"{outcome.stats.requests} requests) to {target}",
        err=True,
    )
