"""Shared by the manifest tests: sample ids, the bad-manifest corpus, and how to run
`validate` on the command line without any network."""

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
from batchtag.manifest import read_plan

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
