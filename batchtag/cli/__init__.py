"""The command line: a group that loads each command's module only when it is needed.

Commands live one per module and are registered by name in `COMMANDS` ("module:attribute"),
so adding one is one line. Nothing heavy (pandas, aiohttp) is imported until a command runs:
`batchtag --help` and `--version` stay fast.
"""

from __future__ import annotations

import importlib

import click

from batchtag import __version__, errors

__all__ = ["COMMANDS", "main"]

COMMANDS: dict[str, str] = {
    "validate": "batchtag.cli.validate:validate",
    "apply": "batchtag.cli.apply:apply",
    "sandbox": "batchtag.cli.sandbox:sandbox_command",
    "export": "batchtag.cli.export:export_command",
    "plan": "batchtag.cli.plan:plan",
    "undo": "batchtag.cli.undo:undo",
    "enforce": "batchtag.cli.enforce:enforce",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use (click's LazyGroup)."""

    def __init__(self, *args, lazy_commands: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            module_name, attribute = self.lazy_commands[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            command.name = cmd_name
            return command
        return super().get_command(ctx, cmd_name)


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
