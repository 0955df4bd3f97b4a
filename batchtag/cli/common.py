"""What every command shares: its console (lines for people, or one JSON object per line
with ``--log-format json``), errors as one line and an exit code, colour.

With ``--log-format json`` every line a command prints, on stdout and on stderr, is one
JSON object: log records (``"event": "log"``), errors (``"event": "error"``), results such
as the plan (``"event": "plan"``), and last ``{"event": "finished", "exit_code": N,
"summary": {...}}``. Results and the final event go to stdout, or to stderr when stdout
carries the command's output (``-o -``, ``--summary-json -``, an export without ``-o``),
so that output stays clean for a pipe. The group (`batchtag.cli.main`) prints the final
event however the command ended: usage errors, interrupts and crashes included.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import click

from batchtag.errors import BatchtagError

EXIT_INTERRUPTED = 130  # SIGINT/SIGTERM/SIGHUP, as the shell reports a signal-killed job
JSON = "json"


@dataclass
class Console:
    """Where one command's lines go.

    Parameters
    ----------
    json : bool
        ``--log-format json``: one JSON object per line, nothing else.
    data_on_stdout : bool
        Stdout carries the command's output (a table, the summary file): lines for people
        and events go to stderr.
    """

    json: bool = False
    data_on_stdout: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def show(self, text: str | None, event: str | None = None, **fields: Any) -> None:
        """A result: `text` for people (stdout, or stderr when stdout carries the output);
        with JSON, the `event` with `fields` instead (nothing when `event` is None)."""
        if self.json:
            if event is not None:
                self.event(event, **fields)
        elif text:
            click.echo(text, err=self.data_on_stdout)

    def note(self, text: str, event: str = "note", **fields: Any) -> None:
        """A remark on stderr (where a file went, what was skipped); with JSON, an event."""
        if self.json:
            self.event(event, message=text, **fields)
        else:
            click.echo(text, err=True)

    def event(self, name: str, *, err: bool | None = None, **fields: Any) -> None:
        """One JSON line ``{"event": name, **fields}`` (stdout unless it carries data)."""
        from batchtag.logs import json_line

        to_err = self.data_on_stdout if err is None else err
        click.echo(json_line({"event": name, **fields}), err=to_err, color=False)

    def fail_line(self, message: str) -> None:
        """An error: one masked line on stderr (``error: ...``, or an ``error`` event)."""
        import logging

        from batchtag.logs import JsonFormatter, redact

        self.error = redact(message)
        if self.json:
            record = logging.makeLogRecord(
                {"name": "batchtag.cli", "levelno": 40, "levelname": "ERROR", "msg": message}
            )
            click.echo(JsonFormatter("error").format(record), err=True)
        else:
            click.echo(f"error: {self.error}", err=True)

    def finished(self, code: int) -> None:
        """The last JSON line: how the command ended, with its summary (JSON only)."""
        if not self.json:
            return
        fields: dict[str, Any] = {"exit_code": code, "summary": self.summary}
        if self.error is not None:
            fields["error"] = self.error
        self.event("finished", **fields)


_CONSOLE = Console()


def stop_on_signals() -> None:
    """Make SIGTERM and SIGHUP stop a command the way Ctrl-C does, in every phase.

    Each is handed to the current SIGINT handler: Python's (KeyboardInterrupt), or inside
    `asyncio.run` the runner's, which cancels the command's task so its cleanup runs (temp
    files, the report lock) before the interrupt ends the command (exit 130). While an
    apply run sends, the engine's own handlers take over (it drains, then reports); the
    event loop resets them when it closes, so the command calls this again after it."""
    _STATE["ours"] = True
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, _as_ctrl_c)


_HELD: list[int] = []  # signals received while a command's modules were imported
_STATE = {"ours": False, "holding": False}


@contextlib.contextmanager
def held_signals():
    """Hold SIGINT, SIGTERM and SIGHUP while a command's modules are imported, then stop.

    An interrupt raised inside a C extension's import surfaces as an ImportError naming
    another module; held, it ends the command as an interrupt once the import is done."""
    if not _STATE["ours"]:  # not the process's own command line (a test's runner)
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, _hold)
    _STATE["holding"] = True
    try:
        yield
    finally:
        _STATE["holding"] = False
        signal.signal(signal.SIGINT, previous)
    if _HELD:
        _HELD.clear()
        raise KeyboardInterrupt


def _hold(signum: int, frame: Any) -> None:
    _HELD.append(signum)


def _as_ctrl_c(signum: int, frame: Any) -> None:
    if _STATE["holding"]:
        _HELD.append(signum)
        return
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:  # SIGINT ignored or default at the C level: stop all the same
        raise KeyboardInterrupt


def interrupted(argv: Sequence[str]) -> NoReturn:
    """End a command that a signal stopped: ``--summary-json`` (read from the command line,
    as the command may not have parsed it yet) says so, one line, exit 130."""
    path = option_value(argv, "--summary-json")
    if path:
        from batchtag.errors import BatchtagError
        from batchtag.record import error_summary, fill_started

        try:
            path = fill_started({"summary_json": path})["summary_json"]
            save_summary(error_summary("interrupted", EXIT_INTERRUPTED), path)
        except (BatchtagError, OSError):
            pass  # the summary is best effort here: the exit code still says it
    _CONSOLE.fail_line("interrupted")
    sys.exit(EXIT_INTERRUPTED)


def option_value(argv: Sequence[str], name: str) -> str | None:
    """The value of option `name` on a command line (``--x V`` or ``--x=V``), or None.

    Examples
    --------
    >>> option_value(["apply", "m.csv", "--summary-json=s.json"], "--summary-json")
    's.json'
    """
    words = list(argv)
    for at, word in enumerate(words):
        if word == "--":
            break
        if word.startswith(f"{name}="):
            return word.split("=", 1)[1]
        if word == name and at + 1 < len(words):
            return words[at + 1]
    return None


def console() -> Console:
    """The running command's console."""
    return _CONSOLE


def begin(argv: Sequence[str]) -> Console:
    """A fresh console for a command line, JSON when it asks for ``--log-format json``
    (read from the words themselves, so that a line click refuses is answered in JSON)."""
    global _CONSOLE
    _CONSOLE = Console(json=wants_json(argv))
    return _CONSOLE


def wants_json(argv: Sequence[str]) -> bool:
    """Whether a command line asks for ``--log-format json``.

    Examples
    --------
    >>> wants_json(["apply", "m.csv", "--log-format=json"]), wants_json(["apply"])
    (True, False)
    """
    words = list(argv)
    for at, word in enumerate(words):
        if word == "--":
            break
        if word == f"--log-format={JSON}" or (
            word == "--log-format" and words[at + 1 : at + 2] == [JSON]
        ):
            return True
    return False


def start(
    log_format: str = "text",
    verbose: int = 0,
    quiet: bool = False,
    color: bool | None = None,
    *,
    data_on_stdout: bool = False,
) -> Console:
    """Set up the command: logging, colour, what stdout carries; returns its console.

    Parameters
    ----------
    log_format : {"text", "json"}
        ``--log-format``: with JSON, tables written to stdout are JSON Lines.
    verbose, quiet
        ``-v`` (count) and ``-q``.
    color : bool or None
        ``--color/--no-color`` (None: off with ``NO_COLOR``, else on a terminal).
    data_on_stdout : bool
        Stdout carries the command's output (see `Console`).
    """
    from batchtag.logs import COLOR, color_choice, setup_logging
    from batchtag.tabular import JSONL, STDOUT_FORMAT

    setup_logging(-1 if quiet else verbose, log_format)
    console = _CONSOLE
    console.json = log_format == JSON
    console.data_on_stdout = data_on_stdout
    tokens = [COLOR.set(color)]
    if console.json:
        tokens.append(STDOUT_FORMAT.set(JSONL.name))
    context = click.get_current_context(silent=True)
    if context is not None:  # back to the defaults once the command is done
        context.color = False if console.json else color_choice(color)
        context.call_on_close(lambda: [t.var.reset(t) for t in reversed(tokens)])
    return console


def is_stdout(path: str | None) -> bool:
    """Whether an output option means stdout (`batchtag.tabular.is_stdout`, imported only
    when a command runs: ``batchtag --help`` loads every command module)."""
    from batchtag.tabular import is_stdout as means_stdout

    return means_stdout(path)


def one_stdout(**outputs: str | None) -> None:
    """Refuse two outputs on stdout (``-o - --summary-json -``): they would mix."""
    from batchtag.errors import UsageError

    named = [f"--{name.replace('_', '-')} -" for name, path in outputs.items() if is_stdout(path)]
    if len(named) > 1:
        raise UsageError(f"{' and '.join(named)}: only one output can go to stdout")


def progress_option(requested: bool | None, quiet: bool) -> bool | None:
    """The progress bar a command runs with: never with JSON lines (a bar is not JSON) or
    ``-q``; else as asked (None: on a terminal)."""
    if _CONSOLE.json:
        return False
    if quiet and requested is None:
        return False
    return requested


def echo_error(message: str, log_format: str = "text") -> None:
    """One masked error line on stderr (see `Console.fail_line`)."""
    _CONSOLE.json = _CONSOLE.json or log_format == JSON
    _CONSOLE.fail_line(message)


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
    from batchtag.logs import redact
    from batchtag.record import error_summary, fill_started

    code = DETAILED_ERROR if detailed else error.exit_code
    summary = error_summary(redact(str(error)), code)
    if summary_json:
        try:  # ({started} is filled when the run starts: an error before that fills it here)
            summary_json = fill_started({"summary_json": summary_json})["summary_json"]
        except BatchtagError:
            summary_json = None  # the name itself is the error
    if summary_json:
        save_summary(summary, summary_json)
    if not _CONSOLE.summary:
        _CONSOLE.summary = summary
    echo_error(str(error), log_format)
    sys.exit(code)


def save_summary(summary: Mapping[str, Any], path: str) -> str | None:
    """Write ``--summary-json`` (``-``: one line on stdout); a one-line error if it failed."""
    from batchtag.commands import save_summary_json

    return save_summary_json(dict(summary), path)
