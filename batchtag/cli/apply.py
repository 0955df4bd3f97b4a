"""`batchtag apply`: send a manifest's changes and write a per-snapshot report."""

from __future__ import annotations

import sys

import click

from batchtag.cli.common import echo_error, fail
from batchtag.defaults import LOGGING_OPTIONS, PYTHON_OPTIONS
from batchtag.errors import BatchtagError
from batchtag.options import click_options

CONFIRM_ABOVE = 1000  # interactive runs changing more snapshots than this ask first
SUMMARY_FILE_FAILED = 3  # exit code when the run went fine but --summary-json failed


@click.command()
@click.argument("manifest")
@click_options(*(o.name for o in PYTHON_OPTIONS), "yes", *LOGGING_OPTIONS)
def apply(manifest: str, yes: bool, verbose: int, quiet: bool, log_format: str, **kwargs) -> None:
    """Apply MANIFEST to the API and write a per-snapshot report.

    Exit codes: 0 all ok/noop/planned, 1 some failed/not_found, 2 bad input (nothing
    sent), 3 aborted (or the run ended 0 but --summary-json could not be written; the
    summary is printed first), 130 interrupted (Ctrl-C, SIGTERM, SIGHUP; resumable).

    \b
    Example:
        export GCORE_API_KEY=...
        batchtag apply snapshots.csv --project-id 1 --region-id 1 --report run1.csv
        batchtag apply snapshots.csv --dry-run --check-current
        batchtag apply snapshots.csv --resume run1.csv
    """
    from batchtag.commands import ApplyOptions
    from batchtag.logs import setup_logging

    setup_logging(-1 if quiet else verbose, log_format)
    options = ApplyOptions(**kwargs)
    if quiet and options.progress is None:
        options.progress = False
    try:
        outcome = run(manifest, options, confirm=None if yes else ask)
    except BatchtagError as error:
        fail(error, log_format, options.summary_json)
    from batchtag.record import format_summary

    click.echo(format_summary(outcome.summary))
    if outcome.summary_json_error:
        echo_error(outcome.summary_json_error, log_format)
        sys.exit(outcome.exit_code or SUMMARY_FILE_FAILED)
    sys.exit(outcome.exit_code)


def run(manifest: str, options, confirm):
    """Validate, then run the engine in this process's main loop with signal handlers."""
    import asyncio

    from batchtag.commands import install_signal_handlers, load, run_apply
    from batchtag.memory import cheap_exit, gc_frozen

    cheap_exit()
    options.check()
    plan = load(manifest, options)
    with gc_frozen():
        return asyncio.run(
            run_apply(
                manifest, options, plan=plan, confirm=confirm, on_engine=install_signal_handlers
            )
        )


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def ask(count: int) -> bool:
    """Confirm big interactive runs; never prompt when nobody can answer."""
    if count <= CONFIRM_ABOVE or not interactive():
        return True
    return click.confirm(f"This will change {count} snapshots. Continue?", default=False)
