"""What every command shares: turning a library error into one line and an exit code."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from batchtag.errors import BatchtagError


def fail(error: BatchtagError) -> NoReturn:
    """Print `error` as one masked line on stderr and exit with its code."""
    from batchtag.logs import redact

    click.echo(f"error: {redact(str(error))}", err=True)
    sys.exit(error.exit_code)
