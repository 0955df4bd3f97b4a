"""`batchtag keys`: the tag keys of the snapshots in some scopes, with how many have each."""

from __future__ import annotations

import json
import sys

import click

from batchtag.cli.common import console, fail, progress_option, start
from batchtag.cli.export import scope_choice, scope_flags
from batchtag.defaults import CONNECTION_OPTIONS, LOGGING_OPTIONS
from batchtag.errors import ApiError, BatchtagError
from batchtag.options import click_options


@click.command()
@scope_flags
@click_options(
    "values", "as_json", "concurrency", "rate", "progress", *CONNECTION_OPTIONS, *LOGGING_OPTIONS
)
def keys(
    project_ids,
    region_ids,
    scopes,
    all_projects,
    all_regions,
    values,
    as_json,
    verbose,
    quiet,
    log_format,
    color,
    **kwargs,
):
    """List the tag keys the snapshots have, with the number of snapshots having each
    (read-only keys marked); --values KEY lists one key's values instead. Reads the
    scopes as export does (a scope that cannot be read is left out: exit 1).

    \b
    Example:
      batchtag keys --project-id 1 --region-id 1
      batchtag keys --all-regions --values env --json
    """
    import asyncio

    from batchtag.commands import run_keys

    start(log_format, verbose, quiet, color)
    kwargs["progress"] = progress_option(kwargs["progress"], quiet)
    try:
        chosen = scope_choice(project_ids, region_ids, scopes, all_projects, all_regions)
        outcome = asyncio.run(run_keys(chosen, key=values, **kwargs))
    except BatchtagError as error:
        fail(error, log_format)
    except ApiError as error:  # a read that failed for good (after its retries)
        fail(BatchtagError(str(error)), log_format)
    out = console()
    out.summary = outcome.as_dict()
    if as_json and not out.json:
        click.echo(json.dumps(out.summary, indent=2))
    else:
        out.show(format_keys(outcome), "keys", **out.summary)
    sys.exit(outcome.exit_code)


def format_keys(outcome) -> str:
    """A table: key (or value), snapshots; then how many snapshots in how many scopes."""
    rows = outcome.rows()
    name = "key" if outcome.key is None else "value"
    cells = [
        (str(r[name]) + (" (read-only)" if r["read_only"] else ""), r["snapshots"]) for r in rows
    ]
    width = max([len(name.upper()), *(len(c) for c, _ in cells)])
    lines = [f"{name.upper():<{width}}  SNAPSHOTS"]
    lines += [f"{c:<{width}}  {n:>9}" for c, n in cells]
    what = f"tag {outcome.key!r}: " if outcome.key is not None else ""
    having = sum(n for _, n in cells) if outcome.key is not None else None
    tail = f"{what}{outcome.snapshots} snapshots in {len(outcome.scopes)} scope(s)"
    if having is not None:
        tail += f", {outcome.snapshots - having} without it"
    if outcome.failed:
        tail += f"; {len(outcome.failed)} scope(s) could not be read and were left out"
    return "\n".join([*lines, tail])
