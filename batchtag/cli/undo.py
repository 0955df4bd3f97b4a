"""`batchtag undo`: the manifest that reverts a run, from its report."""

from __future__ import annotations

import sys

import click

from batchtag.cli.common import fail, is_stdout, progress_option, start
from batchtag.defaults import CONNECTION_OPTIONS, LOGGING_OPTIONS, READ_OPTIONS
from batchtag.errors import BatchtagError
from batchtag.options import click_options

CONFLICTS_SHOWN = 5  # skipped snapshots listed in the printed summary
SKIPPED_WORDS = {
    "conflict": "conflict (changed since the run: left alone)",
    "not_found": "not found",
    "skipped": "cannot be undone",
}
EXIT_SKIPPED = 1  # some snapshots could not be reverted (conflict, not found)


@click.command()
@click.argument("report")
@click_options("output", "force", "overwrite", *CONNECTION_OPTIONS, *READ_OPTIONS, *LOGGING_OPTIONS)
def undo(
    report: str,
    output: str | None,
    force: bool,
    verbose: int,
    quiet: bool,
    log_format: str,
    color: bool | None,
    **kwargs,
) -> None:
    """Write the change file that reverts the run of REPORT; apply it to undo the run.

    Per ok snapshot, each user tag the run changed (and its name) goes back to its value
    before the run; read-only tags are never touched. Only the keys the run changed are
    compared with what the run left: a later change to another key is kept, a later
    change to one of them makes the snapshot a conflict, left out (and listed) unless
    --force. Rows the run wrote blind (--no-check-current) cannot be undone: they are
    listed, the rest is still reverted. A report still being written by a running apply
    is refused unless --force. Default output: REPORT's name with .undo.jsonl (run1.csv ->
    run1.undo.jsonl; -o takes .csv, .parquet, .jsonl); an existing file is never replaced
    (--overwrite writes a new one beside it); -o - prints it.

    Exit codes: 0 everything can be reverted, 1 some snapshots were skipped (conflict,
    not found, cannot be undone), 2 bad input (nothing written), 3 aborted (credentials,
    the API unreachable).

    \b
    Example:
        batchtag undo run1.csv
        batchtag apply run1.undo.jsonl --report undo1.csv
    """
    import asyncio

    from batchtag.commands import ApplyOptions, default_undo_path, run_undo

    out = start(log_format, verbose, quiet, color, data_on_stdout=is_stdout(output))
    options = ApplyOptions(**kwargs)
    options.progress = progress_option(options.progress, quiet)
    target = output if output is not None else str(default_undo_path(report))
    try:
        outcome = asyncio.run(
            run_undo(report, options, output=target, force=force, shown=CONFLICTS_SHOWN)
        )
    except BatchtagError as error:
        fail(error, log_format)
    out.summary = outcome.as_dict()
    out.show(format_undo(outcome), "undo", **out.summary)
    sys.exit(EXIT_SKIPPED if len(outcome.skipped) else 0)


def format_undo(outcome) -> str:
    """`N to revert -> FILE`, then the skipped snapshots (the first few, with why)."""
    summary = outcome.as_dict()
    written = "stdout" if is_stdout(summary["output"]) else summary["output"]
    lines = [f"undo: {summary['revert']} snapshot(s) to revert, written to {written}"]
    if summary["kept"]:
        lines.append(f"  ({summary['kept']} exists and is kept)")
    skipped = outcome.skipped
    for status, count in summary["skipped"].items():
        lines.append(f"  {count} {SKIPPED_WORDS.get(status, status)}")
    for project_id, region_id, snapshot_id, status, error in skipped.rows[:CONFLICTS_SHOWN]:
        lines.append(f"    {status} {project_id}/{region_id}/{snapshot_id}: {error}")
    if len(skipped) > CONFLICTS_SHOWN:
        lines.append(f"    ... and {len(skipped) - CONFLICTS_SHOWN} more")
    if summary["revert"] and not is_stdout(summary["output"]):
        lines.append(f"apply it to revert: batchtag apply {summary['output']}")
    return "\n".join(lines)
