"""Applying manifests to a live sandbox in tests, and reading back what each snapshot holds."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pandas as pd
from helpers import API_KEY, tags_dict

import batchtag
from batchtag.config import Settings
from batchtag.gcore import Client

KEYS = ["k1", "k2", "k3", "k4"]  # user keys of these tests (the sandbox's ro keys differ)


def run(sandbox, manifest, folder: Path, name: str = "r", **options) -> pd.DataFrame:
    """`batchtag.apply` against the sandbox; options override the defaults here."""
    options = {"project_id": 1, "region_id": 1, "rate": 2000, "concurrency": 8, **options}
    return batchtag.apply(
        manifest,
        report=folder / f"{name}.csv",
        base_url=sandbox.base_url,
        api_key=API_KEY,
        **options,
    )


def endpoints(sandbox) -> dict[str, int]:
    counts = sandbox.stats()["endpoints"]
    return {k: counts.get(k, 0) for k in ("list", "get", "patch")}


def snapshot(sandbox, sid: str) -> dict:
    return sandbox.store.find(1, 1, sid).to_json()


def user_state(sandbox, sid: str) -> tuple[dict, str]:
    snap = snapshot(sandbox, sid)
    return tags_dict(snap, user_only=True), snap["name"]


def ro_state(sandbox, sid: str) -> dict:
    snap = snapshot(sandbox, sid)
    return {t["key"]: t["value"] for t in snap["tags"] if t["read_only"]}


def put_tags(sandbox, wanted: dict[str, dict[str, str]]) -> None:
    """Give each snapshot exactly these user tags (two PATCHes each: clear, then set)."""

    async def go() -> None:
        async with Client(Settings(sandbox.base_url, API_KEY)) as client:
            for sid, tags in wanted.items():
                await client.patch_snapshot(1, 1, sid, b'{"tags": null}')
                if tags:
                    await client.patch_snapshot(1, 1, sid, json.dumps({"tags": tags}).encode())

    asyncio.run(go())


def with_user_tags(sandbox, count: int) -> list[str]:
    """Snapshots that have user tags (and read-only ones first)."""
    snaps = [s for s in sandbox.store.snapshots() if set(s.tags) - s.read_only]
    snaps.sort(key=lambda s: not s.read_only)
    return [s.id for s in snaps[:count]]


def sets(ids: list[str]) -> pd.DataFrame:
    """A wide manifest setting k1=new on each of `ids`."""
    return pd.DataFrame({"snapshot_id": ids, "tag:k1": "new"})
