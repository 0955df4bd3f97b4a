"""The command line: a group that loads each command's module only when it is needed.

Commands live one per module and are registered by name in `COMMANDS` ("module:attribute"),
so adding one is one line. Nothing heavy (pandas, aiohttp) is imported until a command runs:
`batchtag --help` and `--version` stay fast.

The group also ends every command the same way: Ctrl-C that reaches Python is exit 130
with one line, and with ``--log-format json`` a usage error, an interrupt or a crash is a
JSON line too, and the last line is the ``finished`` event (`batchtag.cli.common`).
"""

from __future__ import annotations

import importlib
import sys

import click

from batchtag import __version__, errors
from batchtag.cli import common

__all__ = ["COMMANDS", "main"]

COMMANDS: dict[str, str] = {
    "validate": "batchtag.cli.validate:validate",
    "apply": "batchtag.cli.apply:apply",
    "sandbox": "batchtag.cli.sandbox:sandbox_command",
    "export": "batchtag.cli.export:export_command",
    "plan": "batchtag.cli.plan:plan",
    "undo": "batchtag.cli.undo:undo",
    "enforce": "batchtag.cli.enforce:enforce",
    "keys": "batchtag.cli.keys:keys",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use (click's LazyGroup)."""

    def __init__(self, *args, lazy_commands: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands
        self._argv: list[str] = []

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            module_name, attribute = self.lazy_commands[cmd_name].split(":")
            with common.held_signals():  # a signal mid-import ends the command cleanly
                command = getattr(importlib.import_module(module_name), attribute)
            command.name = cmd_name
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # SIGINT, SIGTERM or SIGHUP the command did not handle
            common.interrupted(self._argv)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Run a command line; with ``--log-format json`` answer everything in JSON lines,
        the last being the ``finished`` event."""
        argv = list(sys.argv[1:] if args is None else args)
        if args is None:  # the process's own command line (not a test's runner)
            common.stop_on_signals()
        self._argv = argv
        console = common.begin(argv)
        if not standalone_mode:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        if not console.json:
            try:
                code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
            except click.ClickException as error:  # as click's standalone mode shows it
                error.show()
                sys.exit(error.exit_code)
            except click.Abort as abort:  # a signal while click parsed the command line
                if isinstance(abort.__cause__, KeyboardInterrupt):
                    common.interrupted(argv)
                click.echo("Aborted!", err=True)
                sys.exit(1)
            sys.exit(code if isinstance(code, int) else 0)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except SystemExit as end:
            code = end.code
        except click.ClickException as error:  # usage: bad option, missing argument
            console.fail_line(error.format_message())
            code = error.exit_code
        except click.Abort as abort:
            if isinstance(abort.__cause__, KeyboardInterrupt):
                try:
                    common.interrupted(argv)
                except SystemExit as end:
                    code = end.code
            else:
                console.fail_line("aborted")
                code = 1
        except Exception as error:  # a bug: still one JSON line, with the traceback
            import traceback  # only here: every start-up would pay for it

            console.fail_line(f"unexpected error: {errors.first_line(error)}")
            console.event("log", err=True, level="error", exception=traceback.format_exc())
            code = 1
        code = code if isinstance(code, int) else (0 if code is None else 1)
        console.finished(code)
        sys.exit(code)


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="batchtag")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Bulk-edit the tags of Gcore Cloud volume snapshots from a manifest.

    \b
    Example:
        export GCORE_API_KEY=...  GCORE_CLOUD_PROJECT_ID=1  GCORE_CLOUD_REGION_ID=1
        batchtag validate manifest.csv
        batchtag apply manifest.csv --report run1.csv
    """
    # Messages name options the command line's way (--overwrite) during this command.
    token = errors.CALLER.set("cli")
    ctx.call_on_close(lambda: errors.CALLER.reset(token))
