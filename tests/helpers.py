"""Small helpers for tests that drive batchtag against the sandbox."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

from batchtag.client import Client, tags_dict
from batchtag.config import Settings

API_KEY = "test-key-Zq9$secret"


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


def fetch_tags(base_url: str, snapshot_id: str) -> dict[str, str]:
    return tags_dict(fetch(base_url, snapshot_id))


def env_for(sandbox) -> dict[str, str]:
    return {
        "GCORE_API_KEY": API_KEY,
        "GCORE_BASE_URL": sandbox.base_url,
        "GCORE_CLOUD_PROJECT_ID": "1",
        "GCORE_CLOUD_REGION_ID": "1",
    }
