"""Shared fixtures: a running sandbox (the local Gcore API emulator) for any test, and
`both_paths` (manifest_helpers): a test run with small CSV manifests read both ways."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from manifest_helpers import both_paths  # noqa: F401  (a fixture, used by name)

from batchtag.sandbox import SandboxConfig, SandboxServer

# The HTTP client honours proxy variables (trust_env): keep the machine's out of the tests,
# so every request goes straight to the loopback sandbox (proxy tests set their own).
for _name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_name, None)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A sandbox with the default config (seed 0, 200 snapshots in project 1 / region 1)."""
    with SandboxServer(SandboxConfig()) as server:
        yield server


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Start sandboxes with custom knobs, e.g. `make_sandbox(rate_limit=5, seed=3)`."""
    servers: list[SandboxServer] = []

    def make(**config_fields) -> SandboxServer:
        server = SandboxServer(SandboxConfig(**config_fields))
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[SandboxServer]:
    """One default sandbox for a whole test module (for tests that only read, or count
    requests relative to a starting figure)."""
    with SandboxServer(SandboxConfig()) as server:
        yield server
