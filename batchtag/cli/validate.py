"""`batchtag validate`: check a manifest without any network."""

from __future__ import annotations

import json

import click

from batchtag.cli.common import fail
from batchtag.defaults import MANIFEST_OPTIONS
from batchtag.errors import BatchtagError
from batchtag.options import click_options


@click.command()
@click.argument("manifest")
@click_options(*MANIFEST_OPTIONS, "as_json")
def validate(manifest: str, as_json: bool, **manifest_options) -> None:
    """Check MANIFEST without any network: a summary, or every problem (exit 2).

    \b
    Example:
        batchtag validate snapshots.csv --project-id 1 --region-id 1
        batchtag validate edited-export.csv --empty-deletes --json
    """
    from batchtag.commands import ApplyOptions, load
    from batchtag.manifest import describe_manifest, format_validation

    try:
        result = describe_manifest(load(manifest, ApplyOptions(**manifest_options)))
    except BatchtagError as error:
        fail(error)
    click.echo(json.dumps(result, indent=2) if as_json else format_validation(result))
