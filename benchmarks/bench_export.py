"""Export of one big scope to Parquet: `batchtag export` vs a minimal aiohttp paging loop.

Both run as whole processes against the same sandbox process, one after the other, twice
(alternating, best of two): the loop fetches the first page, then every other page with
`CONCURRENCY` workers, and writes each page with pyarrow as it arrives; batchtag runs its
CLI unchanged (`export -o FILE.parquet`).

    python -m benchmarks.bench_export loop URL OUT CONCURRENCY   # the loop, as a child
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import harness, mode

SNAPSHOTS = mode.pick(1_000_000, 20_000)
CONCURRENCY = 8
ROUNDS = 2
PAGE = 1000


async def minimal_loop(url: str, out: str, concurrency: int) -> int:
    """The ceiling of this stack: concurrent pages, each written by pyarrow on arrival."""
    import aiohttp
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = f"{url}/cloud/v1/snapshots/{harness.PROJECT_ID}/{harness.REGION_ID}"
    headers = {"Authorization": f"APIKey {harness.API_KEY}"}
    writer: pq.ParquetWriter | None = None
    written = 0

    async def page(session: aiohttp.ClientSession, offset: int) -> dict:
        async with session.get(f"{base}?limit={PAGE}&offset={offset}", headers=headers) as resp:
            return json.loads(await resp.read())

    def write(results: list[dict]) -> None:
        nonlocal writer, written
        table = pa.Table.from_pylist(results)
        if writer is None:
            writer = pq.ParquetWriter(out, table.schema)
        writer.write_table(table.cast(writer.schema))
        written += len(results)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        first = await page(session, 0)
        write(first["results"])
        offsets = iter(range(PAGE, first["count"], PAGE))

        async def worker() -> None:
            for offset in offsets:
                write((await page(session, offset))["results"])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    if writer is not None:
        writer.close()
    return written


def run_loop(url: str, folder: Path) -> harness.ChildRun:
    out = folder / "loop.parquet"
    args = ["loop", url, str(out), str(CONCURRENCY)]
    child = harness.run_child("benchmarks.bench_export", args, harness.client_env(url), folder)
    if child.code != 0:
        raise RuntimeError(f"loop failed: {child.stderr[-2000:]}")
    return child


def run_batchtag(url: str, folder: Path) -> harness.ChildRun:
    out = folder / "batchtag.parquet"
    out.unlink(missing_ok=True)  # no --overwrite: a previous version (BENCH_CLIENT_PATH) has none
    args = ["export", "-o", str(out), "--no-progress"]
    args += ["--concurrency", str(CONCURRENCY)]
    args += ["--rate", "1000000"]
    child = harness.run_child("batchtag", args, harness.client_env(url), folder)
    if child.code != 0:
        raise RuntimeError(f"batchtag export failed: {child.stderr[-2000:]}")
    return child


def run() -> dict:
    """Best of `ROUNDS` alternating runs of each; rates in snapshots per second."""
    with harness.sandbox(SNAPSHOTS) as sandbox, tempfile.TemporaryDirectory() as tmp:
        runners = {
            name: lambda folder, name=name, runner=runner: counted(
                name, runner(sandbox.url, folder), folder
            )
            for name, runner in (("loop", run_loop), ("batchtag", run_batchtag))
        }
        return harness.best_runs(ROUNDS, runners, Path(tmp))


def counted(name: str, child: harness.ChildRun, folder: Path) -> harness.ChildRun:
    """`child`, after checking it wrote every snapshot."""
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(folder / f"{name}.parquet").metadata.num_rows
    if rows != SNAPSHOTS:
        raise RuntimeError(f"{name} wrote {rows} rows, not {SNAPSHOTS}")
    return child


def ratio(result: dict) -> float:
    """batchtag's rate over the loop's (same rows, so the inverse ratio of wall times)."""
    return result["loop"]["wall"] / result["batchtag"]["wall"]


def table(result: dict) -> str:
    return harness.figures_table(result, "client", rate_of=SNAPSHOTS)


if __name__ == "__main__":
    if sys.argv[1:2] == ["loop"]:
        started = time.perf_counter()
        count = asyncio.run(minimal_loop(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        print(json.dumps({"rows": count, "seconds": time.perf_counter() - started}))
    else:
        print(table(run()))
