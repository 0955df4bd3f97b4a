"""pytest plugin (entry point `pytest11`): the `batchtag_sandbox` fixture for users' suites.

    def test_tags(batchtag_sandbox):
        report = batchtag.apply(manifest)          # GCORE_* env vars point at the sandbox
        assert batchtag_sandbox.stats()["writes"] == 3

    @pytest.mark.batchtag_sandbox(snapshots=10, lock_rate=0.5)
    def test_locks(batchtag_sandbox): ...

The marker's keywords are `batchtag.sandbox(...)` options. Loaded by every pytest run where
batchtag is installed, so this module imports nothing heavy until the fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from batchtag.sandbox.context import Sandbox

MARKER = "batchtag_sandbox"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): batchtag.sandbox() options for the {MARKER} fixture",
    )


@pytest.fixture
def batchtag_sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A running batchtag sandbox for one test (fresh state, free port, env vars set).

    Configure it with ``@pytest.mark.batchtag_sandbox(snapshots=..., lock_rate=...)``.
    """
    from batchtag.sandbox.context import sandbox

    marker = request.node.get_closest_marker(MARKER)
    options = dict(marker.kwargs) if marker is not None else {}
    with sandbox(**options) as running:
        yield running
