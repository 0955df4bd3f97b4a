"""Small helpers for tests that drive batchtag against the sandbox."""

from __future__ import annotations

import asyncio
import csv
import errno
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner, Result

from batchtag.cli import main
from batchtag.config import ENV_API_KEY, ENV_BASE_URL, ENV_PROJECT_ID, ENV_REGION_ID, Settings
from batchtag.gcore import Client
from batchtag.model import Snapshot

API_KEY = "test-key-Zq9$secret"
SID = "aaaaaaaa-0000-4000-8000-000000000001"  # a valid snapshot id no sandbox holds
SID2 = "aaaaaaaa-0000-4000-8000-000000000002"
NO_ENV: dict[str, str] = {}  # pass as `env=` so no GCORE_* variable of the caller leaks in


def invoke(args: list[str], sandbox, **env: str) -> Result:
    """Run the CLI in-process against `sandbox` (its URL, key and scope in the env)."""
    return CliRunner().invoke(main, args, env={**env_for(sandbox), **env}, catch_exceptions=False)


def invoke_on(sb, args: list[str], **env: str) -> Result:
    """Run the CLI in-process against a `batchtag.sandbox(...)` (its URL, key, first scope)."""
    scope = {
        ENV_API_KEY: sb.api_key,
        ENV_BASE_URL: sb.url,
        ENV_PROJECT_ID: str(sb.project_id),
        ENV_REGION_ID: str(sb.region_id),
    }
    return CliRunner().invoke(main, args, env={**scope, **env}, catch_exceptions=False)


def closed_url() -> str:
    """A loopback URL nothing listens on (a connection to it is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def patches(sandbox) -> int:
    """PATCH requests the sandbox has received so far."""
    return sandbox.stats()["requests"].get("PATCH", 0)


def wait_until(condition: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    """Poll `condition` until true; fail after `timeout` seconds (a deadline, not a sleep-assert)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def write_long_csv(path: Path, rows: list[dict]) -> Path:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def set_rows(ids: list[str], key: str = "batch", value: str = "one") -> list[dict]:
    return [{"snapshot_id": sid, "op": "set", "key": key, "value": value} for sid in ids]


def fetch(base_url: str, snapshot_id: str, project_id: int = 1, region_id: int = 1) -> dict:
    async def get() -> dict:
        async with Client(Settings(base_url, API_KEY)) as client:
            return await client.get_snapshot(project_id, region_id, snapshot_id)

    return asyncio.run(get())


def tags_dict(snapshot: dict, *, user_only: bool = False) -> dict[str, str]:
    """A snapshot JSON's tags as {key: value} (only the user tags with `user_only`)."""
    decoded = Snapshot.from_wire(snapshot)
    return decoded.user_tags if user_only else decoded.all_tags


def fetch_tags(base_url: str, snapshot_id: str) -> dict[str, str]:
    return tags_dict(fetch(base_url, snapshot_id))


def change_state(sandbox, snapshot_id: str, tags: dict[str, str], name: str | None = None) -> None:
    """Give a snapshot exactly these user tags (and `name`) through the API, as someone else
    would between two runs (read-only tags stay)."""

    async def go() -> None:
        async with Client(Settings(sandbox.base_url, API_KEY)) as client:
            body: dict = {"tags": None}
            await client.patch_snapshot(1, 1, snapshot_id, json.dumps(body).encode())
            body = {"tags": tags} if tags else {}
            if name is not None:
                body["name"] = name
            if body:
                await client.patch_snapshot(1, 1, snapshot_id, json.dumps(body).encode())

    asyncio.run(go())


def tags_of(sandbox, snapshot_id: str) -> dict[str, str]:
    """A snapshot's user tags, read through the API."""
    return tags_dict(fetch(sandbox.base_url, snapshot_id), user_only=True)


def env_for(sandbox) -> dict[str, str]:
    return {
        ENV_API_KEY: API_KEY,
        ENV_BASE_URL: sandbox.base_url,
        ENV_PROJECT_ID: "1",
        ENV_REGION_ID: "1",
    }


def scope_of(sandbox, **options) -> dict:
    """Keywords pointing the Python API at `sandbox`, scope 1/1, plus `options`."""
    return {
        "base_url": sandbox.base_url,
        "api_key": API_KEY,
        "project_id": 1,
        "region_id": 1,
        **options,
    }


def live_examples(count: int, timeout: float | None = None):
    """Hypothesis settings for a property run against a live sandbox: `count` examples (each
    costs real requests), no per-example deadline, fixtures shared across examples; with
    `timeout`, the whole test's bound in seconds (pytest-timeout)."""
    import pytest
    from hypothesis import HealthCheck, settings

    slow = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
    chosen = settings(max_examples=count, deadline=None, suppress_health_check=slow)
    if timeout is None:
        return chosen
    return lambda test: pytest.mark.timeout(timeout)(chosen(test))


class FullDisk:
    """A temporary file on a full disk: every write fails as the OS says it."""

    def __init__(self, *args, **kwargs):
        pass

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self):
        pass
