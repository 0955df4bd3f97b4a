"""Talking to a sandbox over HTTP in tests: one call, many at once, Gcore error shape."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from pathlib import Path

import aiohttp

from batchtag.sandbox import SandboxServer

AUTH = {"Authorization": "APIKey test$token"}
BASE = "/cloud/v1/snapshots"
VOLUMES = "/cloud/v1/volumes"
SAMPLE = Path(__file__).parent.parent / "samples" / "snapshots-long.csv"
STATUSES = {
    "available",
    "backing-up",
    "creating",
    "deleted",
    "deleting",
    "error",
    "error_deleting",
    "restoring",
    "unmanaging",
}


class Reply:
    def __init__(self, status: int, headers, body):
        self.status = status
        self.headers = headers
        self.body = body


async def send(session: aiohttp.ClientSession, method: str, path: str, **kwargs) -> Reply:
    async with session.request(method, path, **kwargs) as resp:
        text = await resp.text()
        body = json.loads(text) if text else None
        return Reply(resp.status, resp.headers, body)


def call(server: SandboxServer, method: str, path: str, headers=AUTH, **kwargs) -> Reply:
    async def go() -> Reply:
        async with aiohttp.ClientSession(server.base_url, headers=headers) as session:
            return await send(session, method, path, **kwargs)

    return asyncio.run(go())


def call_many(server: SandboxServer, requests: list[tuple[str, str]], headers=AUTH) -> list[Reply]:
    """Send (method, path) requests concurrently."""

    async def go() -> list[Reply]:
        async with aiohttp.ClientSession(server.base_url, headers=headers) as session:
            return await asyncio.gather(*(send(session, m, p) for m, p in requests))

    return asyncio.run(go())


def one(sid: str, project_id: int = 1, region_id: int = 1) -> str:
    return f"{BASE}/{project_id}/{region_id}/{sid}"


def volume(vid: str, project_id: int = 1, region_id: int = 1) -> str:
    return f"{VOLUMES}/{project_id}/{region_id}/{vid}"


def list_all(server, path: str, limit: int = 1000, query=()) -> tuple[int, list[dict]]:
    """(count, every result) of a list endpoint, page by page, asserting every page's count
    is the same total; `query`: more (name, value) parameters, names may repeat."""
    results, counts, offset = [], set(), 0
    while True:
        params = [("limit", limit), ("offset", offset), *query]
        page = call(server, "GET", path, params=params)
        assert page.status == 200, page.body
        counts.add(page.body["count"])
        results += page.body["results"]
        offset += limit
        if offset >= page.body["count"]:
            break
    assert len(counts) == 1
    return counts.pop(), results


def tag_map(resource: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in resource["tags"]}


def snapshot_with(server: SandboxServer, read_only: bool, user_tags: bool = True):
    for snap in server.store.snapshots():
        has_user = bool(set(snap.tags) - snap.read_only)
        if bool(snap.read_only) == read_only and has_user == user_tags:
            return snap
    raise AssertionError("the seeded store should hold such a snapshot")


def assert_gcore_error(reply: Reply, status: int, exception_class: str) -> None:
    assert reply.status == status
    assert reply.body["exception_class"] == exception_class
    assert isinstance(reply.body["message"], str) and reply.body["message"]
    assert uuid.UUID(reply.body["request_id"]).version == 4


def assert_snapshot_shape(snap: dict) -> None:
    assert set(snap) == {
        "id",
        "name",
        "description",
        "status",
        "size",
        "volume_id",
        "project_id",
        "region",
        "region_id",
        "created_at",
        "updated_at",
        "creator_task_id",
        "task_id",
        "tags",
    }
    for key in ("id", "volume_id", "creator_task_id"):
        assert uuid.UUID(snap[key]).version == 4
        assert str(uuid.UUID(snap[key])) == snap[key]
    assert isinstance(snap["name"], str) and 3 <= len(snap["name"]) <= 63
    assert snap["description"] is None or isinstance(snap["description"], str)
    assert snap["status"] in STATUSES
    assert isinstance(snap["size"], int) and snap["size"] > 0
    assert isinstance(snap["project_id"], int) and isinstance(snap["region_id"], int)
    assert isinstance(snap["region"], str) and snap["region"]
    created = datetime.fromisoformat(snap["created_at"])
    updated = datetime.fromisoformat(snap["updated_at"])
    assert created.utcoffset() is not None and updated >= created
    assert snap["task_id"] is None or uuid.UUID(snap["task_id"]).version == 4
    for tag in snap["tags"]:
        assert set(tag) == {"key", "value", "read_only"}
        assert isinstance(tag["key"], str) and isinstance(tag["value"], str)
        assert isinstance(tag["read_only"], bool)
