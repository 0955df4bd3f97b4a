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


# Checks meant for automation (`plan --detailed-exitcode`, `enforce --check`) exit as
# `terraform plan -detailed-exitcode` does: 0 clean, 2 changes or drift, and 1 for any error
# (bad input, a missing key, an API that cannot be reached): 2 must mean drift only.
DETAILED_ERROR = 1


class CheckCommand(click.Command):
    """A command with a check flag for automation (`check_flag`): given it, a command-line
    usage error (an unknown option, a bad value) exits `DETAILED_ERROR` too, not click's 2."""

    def __init__(self, *args, check_flag: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.check_flag = check_flag

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        checking = self.check_flag in args  # (parsing consumes `args`)
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            if checking:
                error.exit_code = DETAILED_ERROR
            raise


def fail(
    error: BatchtagError,
    log_format: str = "text",
    summary_json: str | None = None,
    *,
    detailed: bool = False,
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
    detailed : bool
        A check for automation: every error exits `DETAILED_ERROR` (1), since 2 says drift.
    """
    code = DETAILED_ERROR if detailed else error.exit_code
    if summary_json:
        from batchtag.logs import redact
        from batchtag.record import save_error_summary

        save_error_summary(summary_json, redact(str(error)), code)
    echo_error(str(error), log_format)
    sys.exit(code)
