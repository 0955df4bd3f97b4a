"""How soon a small run sends: `batchtag apply` of a 10-row CSV manifest, start to first request.

The sandbox notes the Unix time of each method's first request (`first_at` in its stats);
the bench notes the time just before it starts the process, so the figure is the whole
start-up (interpreter, imports, reading the manifest, opening the report) up to the moment
the request reaches the server. Against it, in the same run: `python -c pass` and a minimal
client that imports aiohttp and sends one PATCH (the floor of this stack on this machine
right now). Best of `ROUNDS` each, alternating, the sandbox reset before every run.

    python -m benchmarks.bench_first_request
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import harness, mode
from benchmarks.bench_startup import entry_point

ROWS = 10
ROUNDS = mode.pick(9, 3)
TARGET_S = 0.35

# One PATCH with nothing but aiohttp: what any client of this stack pays before it sends.
MINIMAL = """
import asyncio, sys, aiohttp
async def main(url):
    async with aiohttp.ClientSession() as session:
        async with session.patch(url, json={"tags": {"env": "bench"}},
                                 headers={"Authorization": "APIKey bench-key"}) as resp:
            await resp.read()
asyncio.run(main(sys.argv[1]))
"""


def first_request(sandbox: harness.Sandbox, command: list[str], env: dict) -> dict[str, float]:
    """Run `command` once against a freshly reset sandbox: seconds from its start to the
    sandbox's first request and first PATCH, and to its exit."""
    sandbox.reset()
    start = time.time()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.time() - start
    if done.returncode:
        raise RuntimeError(f"{command[:3]} exited {done.returncode}: {done.stderr[-2000:]}")
    first = sandbox.stats()["first_at"]
    if "PATCH" not in first:
        raise RuntimeError(f"{command[:3]} sent no PATCH: {done.stdout[-500:]}")
    return {"request": min(first.values()) - start, "patch": first["PATCH"] - start, "wall": wall}


def run() -> dict[str, dict[str, float]]:
    """Per client, its best (least disturbed) run of `ROUNDS`: request, patch, wall seconds."""
    with harness.sandbox(ROWS * 2) as sandbox, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ids = sandbox.snapshot_ids()[:ROWS]
        manifest = harness.write_manifest(ids, folder / "manifest.csv")
        env = harness.client_env(sandbox.url)
        apply = [*entry_point(), "apply", str(manifest), "--yes", "--no-progress"]
        apply += ["--report", str(folder / "report.csv"), "--overwrite"]
        url = f"{sandbox.url}/cloud/v1/snapshots/{harness.PROJECT_ID}/{harness.REGION_ID}/{ids[0]}"
        clients = {
            "batchtag apply": apply,
            "aiohttp, one PATCH": [sys.executable, "-c", MINIMAL, url],
        }
        best: dict[str, dict[str, float]] = {"python -c pass": {"wall": float("inf")}}
        for _ in range(ROUNDS):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            python = best["python -c pass"]
            python["wall"] = min(python["wall"], time.perf_counter() - start)
            for name, command in clients.items():
                got = first_request(sandbox, command, env)
                if name not in best or got["request"] < best[name]["request"]:
                    best[name] = got
    return best


def table(best: dict[str, dict[str, float]]) -> str:
    lines = [f"{'client':22} {'1st request s':>14} {'1st PATCH s':>12} {'exit s':>8}"]
    for name, r in best.items():
        request, patch = r.get("request"), r.get("patch")
        cells = [f"{v:14.3f}" if v is not None else f"{'-':>14}" for v in (request,)]
        cells += [f"{patch:12.3f}" if patch is not None else f"{'-':>12}", f"{r['wall']:8.3f}"]
        lines.append(f"{name:22} {' '.join(cells)}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(run()))
