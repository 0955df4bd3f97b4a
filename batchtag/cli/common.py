"""What every command shares: turning a library error into one line and an exit code."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from batchtag.errors import BatchtagError


def echo_error(message: str, log_format: str = "text") -> None:
    """One masked error line on stderr: ``error: ...``, or one JSON object with
    ``--log-format json`` (``{"level": "error", "message": ...}``, like the log lines).

    Parameters
    ----------
    message : str
        The error, one line (a manifest's problem list stays one JSON object).
    log_format : {"text", "json"}
        The command's ``--log-format``.

    Examples
    --------
    >>> echo_error("refusing to start")  # doctest: +SKIP
    error: refusing to start
    """
    import logging

    from batchtag.logs import JsonFormatter, redact

    if log_format == "json":
        record = logging.makeLogRecord(
            {"name": "batchtag.cli", "levelno": logging.ERROR, "levelname": "ERROR", "msg": message}
        )
        click.echo(JsonFormatter().format(record), err=True)
    else:
        click.echo(f"error: {redact(message)}", err=True)


def fail(
    error: BatchtagError, log_format: str = "text", summary_json: str | None = None
) -> NoReturn:
    """Print `error` as one masked line on stderr and exit with its code.

    Parameters
    ----------
    error : BatchtagError
        What ended the command; its ``exit_code`` is the process's.
    log_format : {"text", "json"}
        The command's ``--log-format`` (see `echo_error`).
    summary_json : str, optional
        The command's ``--summary-json``: replaced (atomically) by a summary saying this
        exit code and why (``error``), so a scheduler never reads an earlier run's.
    """
    if summary_json:
        from batchtag.logs import redact
        from batchtag.record import save_error_summary

        save_error_summary(summary_json, redact(str(error)), error.exit_code)
    echo_error(str(error), log_format)
    sys.exit(error.exit_code)
