"""The comparison clients, each run as its own process by bench_throughput:

    python -m benchmarks.clients loop|sdk-httpx|sdk-aiohttp URL IDS_FILE CONCURRENCY

Every client sends PATCH {"tags": {"env": "bench"}} once per id and parses the JSON answer
(batchtag keeps the returned tags, so it parses too). Prints one JSON line: sent, ok and the
seconds spent sending (imports and setup excluded; the parent times the whole process).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from benchmarks.harness import PROJECT_ID, REGION_ID, TAG_KEY, TAG_VALUE

BODY = {"tags": {TAG_KEY: TAG_VALUE}}


async def minimal_loop(url: str, ids: list[str], concurrency: int) -> int:
    """The ceiling of this stack: one session, `concurrency` workers, nothing else."""
    import aiohttp

    base = f"{url}/cloud/v1/snapshots/{PROJECT_ID}/{REGION_ID}/"
    data = json.dumps(BODY).encode()
    headers = {"Authorization": "APIKey bench-key", "Content-Type": "application/json"}
    pending = iter(ids)
    ok = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        for snapshot_id in pending:
            async with session.patch(base + snapshot_id, data=data, headers=headers) as resp:
                raw = await resp.read()
                if resp.status == 200 and json.loads(raw)["id"]:
                    ok += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return ok


async def sdk(url: str, ids: list[str], concurrency: int, transport: str) -> int:
    """What users would write instead: AsyncGcore, gather, and a semaphore. SDK defaults
    throughout (max_retries=2, httpx limits of 100 connections / 20 kept alive)."""
    from gcore import AsyncGcore, DefaultAioHttpClient

    http_client = DefaultAioHttpClient() if transport == "aiohttp" else None
    gate = asyncio.Semaphore(concurrency)
    ok = 0

    async with AsyncGcore(api_key="bench-key", base_url=url, http_client=http_client) as client:
        snapshots = client.cloud.volume_snapshots

        async def one(snapshot_id: str) -> None:
            nonlocal ok
            async with gate:
                snap = await snapshots.update(
                    snapshot_id, project_id=PROJECT_ID, region_id=REGION_ID, tags=BODY["tags"]
                )
            ok += snap.id == snapshot_id

        await asyncio.gather(*(one(i) for i in ids))
    return ok


def main(kind: str, url: str, ids_file: str, concurrency: int) -> None:
    ids = open(ids_file).read().split()
    # Import before the clock starts, and only what this client needs (peak RSS).
    __import__("aiohttp" if kind == "loop" else "gcore")
    start = time.perf_counter()
    if kind == "loop":
        ok = asyncio.run(minimal_loop(url, ids, concurrency))
    else:
        ok = asyncio.run(sdk(url, ids, concurrency, kind.removeprefix("sdk-")))
    seconds = time.perf_counter() - start
    print(json.dumps({"sent": len(ids), "ok": ok, "seconds": seconds}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
