"""`batchtag validate`: check a manifest without any network."""

from __future__ import annotations

import json
import sys

import click

from batchtag.cli.common import fail, start
from batchtag.defaults import LOGGING_OPTIONS, MANIFEST_OPTIONS
from batchtag.errors import BatchtagError
from batchtag.options import click_options


@click.command()
@click.argument("manifest")
@click_options(*MANIFEST_OPTIONS, "as_json", *LOGGING_OPTIONS)
def validate(
    manifest: str,
    as_json: bool,
    verbose: int,
    quiet: bool,
    log_format: str,
    color: bool | None,
    **manifest_options,
) -> None:
    """Check MANIFEST without any network: a summary, or every problem (exit 2).

    \b
    Example:
        batchtag validate snapshots.csv --project-id 1 --region-id 1
        batchtag validate edited-export.csv --empty-deletes --json
    """
    from batchtag.commands import ApplyOptions, load
    from batchtag.manifest import describe_manifest, format_validation

    out = start(log_format, verbose, quiet, color)
    try:
        result = describe_manifest(load(manifest, ApplyOptions(**manifest_options)))
    except BatchtagError as error:
        fail(error, log_format)
    out.summary = result
    if as_json and not out.json:
        click.echo(json.dumps(result, indent=2))
    else:
        out.show(format_validation(result), "validation", **result)
    sys.exit(0)
