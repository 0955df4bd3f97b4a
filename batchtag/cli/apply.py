"""`batchtag apply`: send a manifest's changes and write a per-snapshot report."""

from __future__ import annotations

import sys

import click

from batchtag.cli.common import (
    console,
    fail,
    held_signals,
    is_stdout,
    progress_option,
    start,
    stop_on_signals,
)
from batchtag.defaults import LOGGING_OPTIONS, PYTHON_OPTIONS
from batchtag.errors import BatchtagError
from batchtag.options import click_options

CONFIRM_ABOVE = 1000  # interactive runs changing more snapshots than this ask first
SUMMARY_FILE_FAILED = 3  # exit code when the run went fine but --summary-json failed


@click.command()
@click.argument("manifest")
@click_options(*(o.name for o in PYTHON_OPTIONS), "yes", *LOGGING_OPTIONS)
def apply(
    manifest: str,
    yes: bool,
    verbose: int,
    quiet: bool,
    log_format: str,
    color: bool | None,
    **kwargs,
) -> None:
    """Apply MANIFEST to the API and write a per-snapshot report.

    {started} in --report, --undo-file and --summary-json is the run's start (UTC,
    YYYYmmddTHHMMSSZ); --summary-json - prints the summary on stdout.

    Exit codes: 0 all ok/noop/planned, 1 some failed/not_found (or a scope that could not
    be read), 2 bad input (nothing sent), 3 aborted (or the run ended 0 but --summary-json
    could not be written; the summary is printed first), 130 interrupted (Ctrl-C, SIGTERM,
    SIGHUP; resumable).

    \b
    Example:
        export GCORE_API_KEY=...
        batchtag apply snapshots.csv --project-id 1 --region-id 1 --report run1.csv
        batchtag apply snapshots.csv --dry-run --check-current
        batchtag apply snapshots.csv --resume run1.csv
    """
    with held_signals():  # a signal mid-import ends the command cleanly
        from batchtag.commands import ApplyOptions

    start(log_format, verbose, quiet, color, data_on_stdout=is_stdout(kwargs["summary_json"]))
    options = ApplyOptions(**kwargs)
    options.progress = progress_option(options.progress, quiet)
    try:
        options = options.stamped()
        outcome = run(manifest, options, confirm=None if yes else ask)
    except BatchtagError as error:
        fail(error, log_format, options.summary_json)
    finish(outcome.summary, outcome.summary_json_error, outcome.exit_code)


def finish(summary: dict, problem: str | None, code: int, text: str | None = None) -> None:
    """Show the run's summary (`text`, default the apply summary), then `problem` (the
    ``--summary-json`` file could not be written) and exit with the run's code (3 when
    only the summary file failed)."""
    from batchtag.record import format_summary

    out = console()
    out.summary = summary
    out.show(format_summary(summary) if text is None else text, "summary", **summary)
    if problem:
        out.fail_line(problem)
        sys.exit(code or SUMMARY_FILE_FAILED)
    sys.exit(code)


def run(manifest: str, options, confirm):
    """Validate, then run the engine in this process's main loop with signal handlers."""
    import asyncio

    from batchtag.commands import install_signal_handlers, load, locates, run_apply
    from batchtag.memory import cheap_exit, gc_frozen

    cheap_exit()
    options.check()
    plan = None if locates(options) else load(manifest, options)  # (else found, then loaded)
    try:
        with gc_frozen():
            return asyncio.run(
                run_apply(
                    manifest, options, plan=plan, confirm=confirm, on_engine=install_signal_handlers
                )
            )
    finally:
        stop_on_signals()  # the loop's close reset the engine's handlers to the default


def interactive() -> bool:
    """Someone can answer a prompt: a terminal on both ends, and lines for people (with
    ``--log-format json`` nobody reads a question)."""
    return sys.stdin.isatty() and sys.stdout.isatty() and not console().json


def ask(count: int, target: str) -> bool:
    """Confirm big interactive runs, naming the API host, the scopes and how many snapshots
    will change; never prompt when nobody can answer."""
    if count <= CONFIRM_ABOVE or not interactive():
        return True
    return click.confirm(
        f"This will change {count} snapshots on {target}. Continue?", default=False
    )
