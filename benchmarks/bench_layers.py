"""Where the client's CPU time goes: batchtag's layers added one at a time on top of the
minimal aiohttp loop, and batchtag's fixed start-up costs.

All layers run in this one process against the sandbox (its own process), PATCHing the same
`BATCH` snapshots, alternating, `ROUNDS` times; each figure is this process's CPU time per
request of its best batch. CPU time of one process, best of many short batches, is far less
disturbed by other work on a shared 2-core machine than whole-process wall clocks are, so
the differences between rows are the cost of each layer. The gcore SDK's update call (its
aiohttp client, the same worker shape as the loop) runs in the same rounds, best of as many
batches, for comparison.
The projection at the end combines them into the whole-process ratio of bench_throughput:
  (loop CPU/request x N + loop start-up) / (batchtag CPU/request x N + batchtag start-up).
Run: `python -m benchmarks layers`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from gcore import AsyncGcore, DefaultAioHttpClient

from batchtag.commands import ApplyOptions, build_engine, load
from batchtag.config import Settings
from batchtag.gcore import Client
from batchtag.model import PlanEntry, SharedDict, json_text
from batchtag.record import Progress, ReportWriter, Summary
from batchtag.send import Engine, EngineOptions
from benchmarks import bench_throughput, harness, mode
from benchmarks.clients import BODY

BATCH = 2000
ROUNDS = mode.pick(20, 3)
CONCURRENCY = bench_throughput.CONCURRENCY
REQUESTS = bench_throughput.REQUESTS  # the throughput benchmark's run, for the projection
NO_LIMIT = bench_throughput.NO_LIMIT


def entries(ids: list[str]) -> list[PlanEntry]:
    tags = SharedDict({harness.TAG_KEY: harness.TAG_VALUE})
    return [PlanEntry(harness.PROJECT_ID, harness.REGION_ID, i, tags=tags) for i in ids]


async def bare_loop(session: aiohttp.ClientSession, url: str, ids: list[str]) -> None:
    """benchmarks.clients.minimal_loop's requests, on a session kept across batches."""
    base = f"{url}/cloud/v1/snapshots/{harness.PROJECT_ID}/{harness.REGION_ID}/"
    data = json.dumps(BODY).encode()
    headers = {"Authorization": f"APIKey {harness.API_KEY}", "Content-Type": "application/json"}
    pending = iter(ids)

    async def worker() -> None:
        for snapshot_id in pending:
            async with session.patch(base + snapshot_id, data=data, headers=headers) as resp:
                json.loads(await resp.read())

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def client_loop(client: Client, plan: list[PlanEntry]) -> None:
    """The minimal loop's shape, through batchtag's Client."""
    pending = iter(plan)

    async def worker() -> None:
        for entry in pending:
            await client.patch_snapshot(*entry.key, json_text(entry.body()).encode())

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def sdk_loop(client: AsyncGcore, ids: list[str]) -> None:
    """The minimal loop's shape, through the gcore SDK's update call."""
    snapshots = client.cloud.volume_snapshots
    pending = iter(ids)

    async def worker() -> None:
        for snapshot_id in pending:
            await snapshots.update(
                snapshot_id,
                project_id=harness.PROJECT_ID,
                region_id=harness.REGION_ID,
                tags=BODY["tags"],
            )

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def engine_only(client: Client, plan: list[PlanEntry]) -> None:
    options = EngineOptions(concurrency=CONCURRENCY, rate=NO_LIMIT)
    await Engine(client, options, lambda result: None).run(plan)


async def engine_and_report(
    client: Client, plan: list[PlanEntry], writer: ReportWriter, summary: Summary
) -> None:
    """What `apply` runs per request: engine, report row, summary (no progress bar). One
    report for every batch, as in a run: opening and closing it (an fsync) is per run."""
    options = ApplyOptions(concurrency=CONCURRENCY, rate=NO_LIMIT, progress=False)
    engine = build_engine(client, options, writer, summary, Progress(len(plan), enabled=False))
    await engine.run(plan)


LAYERS = {
    "loop": "minimal aiohttp loop",
    "client": "+ batchtag Client",
    "engine": "+ engine (limiter, retries, results)",
    "apply": "+ report row, summary (apply)",
}
SDK = "gcore SDK update (DefaultAioHttpClient)"  # measured alongside, not a layer


async def measure_layers(url: str, ids: list[str], folder: Path) -> dict[str, float]:
    plan = entries(ids)
    settings = Settings(url, harness.API_KEY)
    best = dict.fromkeys([*LAYERS, "sdk"], float("inf"))
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    gcore = AsyncGcore(api_key=harness.API_KEY, base_url=url, http_client=DefaultAioHttpClient())
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        Client(settings, connections=CONCURRENCY) as client,
        gcore,
    ):
        path = folder / "report.csv"
        writer, summary = ReportWriter(path, fingerprint="bench"), Summary(path)
        runs = {
            "loop": lambda: bare_loop(session, url, ids),
            "client": lambda: client_loop(client, plan),
            "engine": lambda: engine_only(client, plan),
            "apply": lambda: engine_and_report(client, plan, writer, summary),
            "sdk": lambda: sdk_loop(gcore, ids),
        }
        for kind in runs:  # warm up: connections, first-call costs
            await runs[kind]()
        for _ in range(ROUNDS):
            for kind in runs:
                start = time.process_time()
                await runs[kind]()
                best[kind] = min(best[kind], (time.process_time() - start) / len(ids))
        writer.close()
    return best


def import_seconds(statement: str, tries: int = 5) -> float:
    """Best wall clock of a fresh interpreter running `statement`."""
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True, cwd=harness.ROOT)
        best = min(best, time.perf_counter() - start)
    return best


def plan_seconds(requests: int, folder: Path) -> float:
    """Reading, validating and fingerprinting a manifest of `requests` snapshots."""
    ids = [f"00000000-0000-4000-8000-{i:012x}" for i in range(requests)]
    manifest = harness.write_manifest(ids, folder / "manifest.csv")
    options = ApplyOptions(project_id=harness.PROJECT_ID, region_id=harness.REGION_ID)
    start = time.perf_counter()
    load(str(manifest), options).fingerprint()
    return time.perf_counter() - start


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with harness.sandbox(BATCH) as sandbox:
            ids = sandbox.snapshot_ids()
            per_request = asyncio.run(measure_layers(sandbox.url, ids, folder))
        startup = {
            "loop": import_seconds("import aiohttp"),
            "batchtag": import_seconds("import batchtag.cli.apply, batchtag.commands._apply"),
            "plan": plan_seconds(REQUESTS, folder),
        }
    return {"per_request": per_request, "startup": startup, "aiohttp": aiohttp.__version__}


def projection(result: dict, requests: int = REQUESTS) -> float:
    """Whole-process batchtag / loop throughput these figures imply for `requests`."""
    cpu, start = result["per_request"], result["startup"]
    loop = cpu["loop"] * requests + start["loop"]
    batchtag = cpu["apply"] * requests + start["batchtag"] + start["plan"]
    return loop / batchtag


def table(result: dict) -> str:
    cpu, start = result["per_request"], result["startup"]
    lines = [f"{'layer':40} {'CPU us/req':>10} {'added':>7}"]
    previous = None
    for kind, name in LAYERS.items():
        added = "" if previous is None else f"{(cpu[kind] - cpu[previous]) * 1e6:+7.1f}"
        lines.append(f"{name:40} {cpu[kind] * 1e6:>10.1f} {added:>7}")
        previous = kind
    lines.append(f"{SDK:40} {cpu['sdk'] * 1e6:>10.1f}")
    lines += [
        f"start-up: python + aiohttp {start['loop']:.2f} s; python + batchtag (pandas, pyarrow,"
        f" aiohttp, ...) {start['batchtag']:.2f} s; plan + fingerprint of"
        f" {REQUESTS:,} snapshots {start['plan']:.2f} s",
        f"projected whole-process batchtag / loop at {REQUESTS:,} requests:"
        f" {projection(result):.2f}x (aiohttp {result['aiohttp']})",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(run()))
