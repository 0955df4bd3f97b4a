"""`batchtag sandbox`: run the local Gcore API emulator."""

from __future__ import annotations

import ipaddress
import os
import ssl

import click

SHARE = click.FloatRange(0.0, 1.0)


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback IP (IPv6 with or without brackets)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(ctx: click.Context, param: click.Parameter, host: str) -> str:
    # The sandbox accepts any token and answers with fake data: never expose it.
    if not is_loopback(host):
        raise click.BadParameter(f"{host!r} is not a loopback address; use 127.0.0.1")
    return host


# The data and fault knobs, passed to SandboxConfig under their Python names:
# (flag, type, default, metavar, help); a default shown in --help unless it means "off".
KNOBS = (
    ("--seed", int, 0, None, "Seed for the data and every random fault."),
    ("--snapshots", click.IntRange(0), 200, None, "Snapshots per project/region."),
    (
        "--volumes",
        click.IntRange(0),
        None,
        "N",
        "Volumes per project/region (default: a quarter of --snapshots, at least 1).",
    ),
    (
        "--latency-ms",
        click.FloatRange(0),
        0.0,
        None,
        "Mean added latency per request, with jitter (50%-150%).",
    ),
    (
        "--rate-limit",
        click.FloatRange(0, min_open=True),
        None,
        "RPS",
        "Answer 429 above this many requests per second.",
    ),
    (
        "--lock-rate",
        SHARE,
        0.0,
        "F",
        "Share of snapshots locked by a task (409 on PATCH until it clears).",
    ),
    (
        "--lock-ms",
        click.FloatRange(0),
        1000.0,
        "MS",
        "A lock clears this long after the first request for it.",
    ),
    ("--error-rate", SHARE, 0.0, "F", "Share of requests answered with a random 500/502/503."),
    (
        "--drop-rate",
        SHARE,
        0.0,
        "F",
        "Share of requests whose connection is closed with no response.",
    ),
)


def knob_options(command):
    """Stack one click option per `KNOBS` row onto `command`."""
    for flag, kind, default, metavar, text in reversed(KNOBS):
        shown = default not in (None, 0.0) or flag == "--seed"
        option = click.option(
            flag, type=kind, default=default, show_default=shown, metavar=metavar, help=text
        )
        command = option(command)
    return command


@click.command("sandbox")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on; 0 picks a free port (printed at start).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    callback=check_host,
    help="Loopback address to listen on.",
)
@knob_options
@click.option(
    "--project-id",
    "project_ids",
    type=int,
    multiple=True,
    help="Project id (repeatable; default 1).",
)
@click.option(
    "--region-id", "region_ids", type=int, multiple=True, help="Region id (repeatable; default 1)."
)
@click.option(
    "--fail-scope",
    "fail_scopes",
    multiple=True,
    metavar="P/R[:STATUS]",
    help="Every request to project P / region R answers STATUS (default 500; any 4xx or "
    "5xx, e.g. 1/2:403). Repeatable.",
)
@click.option("--api-key", default=None, help="Accept only this token (default: any).")
@click.option(
    "--no-retry-after", is_flag=True, help="Send 429 without Retry-After / retry-after-ms headers."
)
@click.option(
    "--error-should-retry",
    type=click.Choice(["true", "false"]),
    default=None,
    help="Send x-should-retry with this value on injected 5xx.",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Serve https with this certificate chain (PEM); needs --tls-key unless it holds the key.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The private key (PEM) of --tls-cert.",
)
@click.option(
    "--color/--no-color",
    default=None,
    help="Colour the output (default: on a terminal, unless NO_COLOR is set).",
)
def sandbox_command(
    port: int,
    host: str,
    project_ids: tuple[int, ...],
    region_ids: tuple[int, ...],
    fail_scopes: tuple[str, ...],
    api_key: str | None,
    no_retry_after: bool,
    error_should_retry: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    color: bool | None,
    **knobs: float | int | None,
) -> None:
    """Run a local emulator of the Gcore snapshot and volume API (in memory, loopback only).

    Serves list, get and PATCH of /cloud/v1/snapshots/{project_id}/{region_id} and of
    /cloud/v1/volumes/{project_id}/{region_id} (list filters tag_key, tag_key_value),
    GET /cloud/v1/projects and /cloud/v1/regions (its scopes), plus GET /_sandbox/stats,
    POST /_sandbox/reset and POST /_sandbox/mutate (someone else creates/deletes
    snapshots: {"project_id": 1, "region_id": 1, "create": N, "delete": M}).
    Stop it with Ctrl-C.

    \b
    Example:
        batchtag sandbox --port 8080 --snapshots 500 --lock-rate 0.1 --error-rate 0.05
        GCORE_BASE_URL=http://127.0.0.1:8080 GCORE_API_KEY=any batchtag apply m.csv
    """
    if color is not None or os.environ.get("NO_COLOR"):  # what it prints is plain text anyway
        click.get_current_context().color = bool(color)
    if api_key is not None and not api_key.strip():
        raise click.BadParameter("must not be empty", param_hint="--api-key")
    if tls_key is not None and tls_cert is None:
        raise click.UsageError("--tls-key needs --tls-cert")
    from batchtag.sandbox.app import SandboxConfig  # imported here: see sandbox/__init__.py
    from batchtag.sandbox.scopes import failing_scopes
    from batchtag.sandbox.server import serve

    projects, regions = list(project_ids) or [1], list(region_ids) or [1]
    try:
        failing_scopes(fail_scopes, projects, regions)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--fail-scope") from None
    config = SandboxConfig(
        project_ids=projects,
        region_ids=regions,
        fail_scopes=list(fail_scopes),
        api_key=api_key,
        retry_after=not no_retry_after,
        error_should_retry=None if error_should_retry is None else error_should_retry == "true",
        tls_cert=tls_cert,
        tls_key=tls_key,
        **knobs,  # seed, snapshots, volumes, latency_ms, rate_limit, lock_rate, lock_ms, ...
    )
    try:
        serve(config, port=port, host=host)
    except ssl.SSLError as error:
        raise click.ClickException(f"cannot use --tls-cert/--tls-key: {error}") from None
    except OSError as error:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {error.strerror or error}"
        ) from None
