"""Click options built from the option table (`batchtag.defaults`), so each is defined once.

A command stacks the options it takes by name::

    @click.command()
    @click_options("report", "dry_run", *MANIFEST_OPTIONS)
    def my_command(report, dry_run, form, ...): ...
"""

from __future__ import annotations

from collections.abc import Callable

import click

from batchtag.defaults import (
    OPTIONS,
    Option,
)

_TYPES = {"int": int, "float": float, "str": str}


def click_option(option: Option) -> Callable:
    """The click decorator for one table entry."""
    decls = [option.short] if option.short else []
    kwargs: dict = {"help": option.help}
    if option.kind == "toggle":
        decls.append(f"{option.cli_flag}/--no-{option.cli_flag[2:]}")
        kwargs["default"] = option.default
    else:
        decls.append(option.cli_flag)
        kwargs["default"] = option.default
        if option.kind == "flag":
            kwargs["is_flag"] = True
        elif option.kind == "count":
            kwargs["count"] = True
        elif option.kind == "path":
            kwargs["type"] = click.Path(dir_okay=False)
        elif option.choices:
            kwargs["type"] = click.Choice(list(option.choices))
        else:
            kwargs["type"] = _TYPES[option.kind]
        kwargs["show_default"] = option.default not in (None, False, 0)
    decls.append(option.dest or option.name)
    if option.envvar:
        kwargs["envvar"] = option.envvar
        kwargs["show_envvar"] = False
    return click.option(*decls, **kwargs)


def click_options(*names: str) -> Callable:
    """Stack the named options on a command, in the order given (first name on top)."""

    def decorate(func: Callable) -> Callable:
        for name in reversed(names):
            func = click_option(OPTIONS[name])(func)
        return func

    return decorate
