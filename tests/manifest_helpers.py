"""Shared by the manifest tests: sample ids, the bad-manifest corpus, how to run `validate`
on the command line without any network, and the two ways a CSV manifest is read.

It reaches inside `batchtag.manifest` on purpose (tests/test_layout.py lists it): the
`both_paths` fixture sets the small-file reader's cut-over, so a test runs once with small
CSV files read the short way and once with every file read the full way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from batchtag import errors
from batchtag.cli import main
from batchtag.config import ENV_PROJECT_ID, ENV_REGION_ID
from batchtag.errors import ManifestError
from batchtag.manifest import _small, read_plan

CORPUS = Path(__file__).parent / "data" / "manifests"
SID = "aaaaaaaa-0000-4000-8000-000000000001"
SID2 = "aaaaaaaa-0000-4000-8000-000000000002"
NO_ENV: dict[str, str] = {}
SCOPE_VARS = (ENV_PROJECT_ID, ENV_REGION_ID)
# no key, no scope, and a base URL where nothing listens: validate must not care
NO_NETWORK: dict[str, str | None] = {
    "GCORE_BASE_URL": "http://127.0.0.1:9",
    "GCORE_API_KEY": None,
    **dict.fromkeys(SCOPE_VARS),
}


def problems_of(source, **options) -> list[str]:
    """The rendered problems `read_plan` raises for `source` (no environment by default)."""
    options.setdefault("env", NO_ENV)
    with pytest.raises(ManifestError) as caught:
        read_plan(source, **options)
    return [str(p) for p in caught.value.details]


def validate(*args, env=None, stdin=None) -> Result:
    """`batchtag validate ARGS` with no network, no key and no scope in the environment."""
    return CliRunner().invoke(
        main, ["validate", *map(str, args)], env={**NO_NETWORK, **(env or {})}, input=stdin
    )


@contextmanager
def cli_caller(monkeypatch: pytest.MonkeyPatch | None = None) -> Iterator[None]:
    """Messages name options the CLI way (`--form`), as the CLI entry point sets them; with
    `monkeypatch`, library calls in this process see no scope env vars either (as the CLI
    runs here with NO_NETWORK)."""
    for var in SCOPE_VARS if monkeypatch is not None else ():
        monkeypatch.delenv(var, raising=False)
    token = errors.CALLER.set("cli")
    try:
        yield
    finally:
        errors.CALLER.reset(token)


@pytest.fixture(params=["small", "full"])
def both_paths(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test twice: small CSV files planned the short way (the default), then every
    manifest the full way (the cut-over below any file's size). Plans and problems must not
    tell the two apart."""
    if request.param == "full":
        monkeypatch.setattr(_small, "SMALL_BYTES", -1)
    return request.param


@contextmanager
def full_way() -> Iterator[None]:
    """Inside, every manifest is read the full way (the small-file reader takes none)."""
    kept = _small.SMALL_BYTES
    _small.SMALL_BYTES = -1
    try:
        yield
    finally:
        _small.SMALL_BYTES = kept
