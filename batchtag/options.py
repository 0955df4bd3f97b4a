"""Reusable click options, so every command spells them the same way."""

from __future__ import annotations

from collections.abc import Callable

import click

from batchtag.config import ENV_API_KEY, ENV_BASE_URL


def compose(*decorators: Callable) -> Callable:
    def apply(func: Callable) -> Callable:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


scope_options = compose(
    click.option("--project-id", type=int, help="Project for rows without a project_id column."),
    click.option("--region-id", type=int, help="Region for rows without a region_id column."),
)

manifest_options = compose(
    click.option(
        "--form",
        type=click.Choice(["long", "wide", "json"]),
        help="Manifest form (default: detected from the columns).",
    ),
    click.option(
        "--delete-marker",
        default="<delete>",
        show_default=True,
        help="Wide form: the cell value that deletes a tag.",
    ),
)

connection_options = compose(
    click.option("--base-url", envvar=ENV_BASE_URL, help=f"API base URL [env {ENV_BASE_URL}]."),
    click.option(
        "--api-key",
        envvar=ENV_API_KEY,
        show_envvar=False,
        help=f"API key [env {ENV_API_KEY}]; prefer the env var (options show in `ps`).",
    ),
    click.option(
        "--insecure-http",
        is_flag=True,
        help="Allow plain http:// to a non-loopback host (sends the key unencrypted).",
    ),
)

logging_options = compose(
    click.option("-v", "--verbose", count=True, help="More logging (-vv for debug)."),
    click.option("-q", "--quiet", is_flag=True, help="Only errors and the summary."),
    click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="json: one JSON object per log line, for schedulers.",
    ),
)
