"""The command line: parses options and calls the library; nothing else lives here."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from batchtag import __version__, planner, summary
from batchtag.cli_export import export_command
from batchtag.errors import BatchtagError
from batchtag.logs import redact, setup_logging
from batchtag.memory import gc_frozen
from batchtag.options import connection_options, logging_options, manifest_options, scope_options
from batchtag.runner import ApplyOptions, install_signal_handlers, load, run_apply
from batchtag.sandbox.cli import sandbox_command

CONFIRM_ABOVE = 1000  # interactive runs changing more snapshots than this ask first


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="batchtag")
def main() -> None:
    """Bulk-edit the tags of Gcore Cloud volume snapshots from a manifest."""


def fail(error: BatchtagError) -> None:
    click.echo(f"error: {redact(str(error))}", err=True)
    sys.exit(error.exit_code)


@main.command()
@click.argument("manifest")
@manifest_options
@scope_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def validate(manifest, form, delete_marker, project_id, region_id, as_json):
    """Check MANIFEST without any network: a summary, or every problem (exit 2)."""
    options = ApplyOptions(
        form=form, delete_marker=delete_marker, project_id=project_id, region_id=region_id
    )
    try:
        result = planner.summarize(load(manifest, options))
    except BatchtagError as error:
        fail(error)
    click.echo(json.dumps(result, indent=2) if as_json else planner.format_summary(result))


@main.command()
@click.argument("manifest")
@click.option(
    "--report", type=click.Path(dir_okay=False), help="Report path (.csv/.parquet/.jsonl)."
)
@click.option("--resume", type=click.Path(dir_okay=False), help="Continue this report's run.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --report file.")
@click.option("--dry-run", is_flag=True, help="Send no writes; report rows are `planned`.")
@click.option("--concurrency", type=int, default=16, show_default=True, help="Requests in flight.")
@click.option("--rate", type=float, default=20.0, show_default=True, help="Requests per second.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Read timeout (s).")
@click.option("--connect-timeout", type=float, default=10.0, show_default=True)
@click.option(
    "--lock-budget",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds to keep retrying a snapshot locked by a task (409).",
)
@click.option(
    "--retries",
    "transient_retries",
    type=int,
    default=3,
    show_default=True,
    help="Retries for 5xx, timeouts and dropped connections.",
)
@click.option(
    "--check-current",
    is_flag=True,
    help="Read each snapshot first and skip writes that change nothing (noop).",
)
@click.option("--max-changes", help="Refuse (exit 3) when more than N or N% would change.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--summary-json", type=click.Path(dir_okay=False), help="Also write the summary here."
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@manifest_options
@scope_options
@connection_options
@logging_options
def apply(manifest, yes, verbose, quiet, log_format, **kwargs):
    """Apply MANIFEST to the API and write a per-snapshot report."""
    setup_logging(-1 if quiet else verbose, log_format)
    options = ApplyOptions(**kwargs)
    if quiet and options.progress is None:
        options.progress = False
    try:
        options.check()
        plan = load(manifest, options)
        with gc_frozen():
            outcome = asyncio.run(
                run_apply(
                    manifest,
                    options,
                    plan=plan,
                    confirm=None if yes else ask,
                    on_engine=install_signal_handlers,
                )
            )
    except BatchtagError as error:
        fail(error)
    click.echo(summary.format_summary(outcome.summary))
    sys.exit(outcome.exit_code)


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def ask(count: int) -> bool:
    """Confirm big interactive runs; never prompt when nobody can answer."""
    if count <= CONFIRM_ABOVE or not interactive():
        return True
    return click.confirm(f"This will change {count} snapshots. Continue?", default=False)


main.add_command(sandbox_command)
main.add_command(export_command)
