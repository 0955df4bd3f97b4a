"""Shared pieces of the live benchmarks: the sandbox in its own process, and clients run as
child processes whose wall clock, CPU time and peak RSS are measured.

Peak RSS is the child's own VmHWM, read inside the child at exit: `ru_maxrss` from wait4
is not usable, because a vfork+exec child inherits the parent's high-water mark.
"""

from __future__ import annotations

import compileall
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from samples.demo import sandbox_process

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-key"
PROJECT_ID = 1
REGION_ID = 1
TAG_KEY, TAG_VALUE = "env", "bench"  # every client sends {"tags": {"env": "bench"}}

# Runs `python -m <module> args...` and writes the process's VmHWM (kB) to $BENCH_HWM_FILE
# at exit, so batchtag's own CLI is measured unchanged.
HWM_WRAPPER = r"""
import atexit, os, runpy, sys

def hwm():
    status = open("/proc/self/status").read()
    kb = int(status.split("VmHWM:")[1].split()[0])
    with open(os.environ["BENCH_HWM_FILE"], "w") as fh:
        fh.write(str(kb))

atexit.register(hwm)
module = sys.argv[1]
sys.argv = [module] + sys.argv[2:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def compile_bytecode() -> None:
    """Compile batchtag and the benchmarks to bytecode first, as `pip install` does for an
    installed package: with PYTHONDONTWRITEBYTECODE set (as on the CI machines) an editable
    install would otherwise compile its sources again in every measured process."""
    for folder in ("batchtag", "benchmarks"):
        compileall.compile_dir(ROOT / folder, quiet=1)


@dataclass
class Sandbox:
    proc: subprocess.Popen
    url: str

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=60) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict:
        return self.get("/_sandbox/stats")

    def reset(self) -> None:
        """Reseed the store (same ids) and zero the stats and the timeline clock."""
        request = urllib.request.Request(self.url + "/_sandbox/reset", method="POST")
        urllib.request.urlopen(request, timeout=60).read()

    def pages(self) -> Iterator[list[dict]]:
        """Every snapshot of the scope, a list page (1,000) at a time, in listing order."""
        base = f"/cloud/v1/snapshots/{PROJECT_ID}/{REGION_ID}?limit=1000&offset="
        offset = 0
        while True:
            request = urllib.request.Request(
                self.url + base + str(offset), headers={"Authorization": f"APIKey {API_KEY}"}
            )
            with urllib.request.urlopen(request, timeout=60) as resp:
                page = json.loads(resp.read())
            yield page["results"]
            offset += len(page["results"])
            if not page["results"] or offset >= page["count"]:
                return

    def snapshot_ids(self) -> list[str]:
        return [s["id"] for page in self.pages() for s in page]

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system


@contextmanager
def sandbox(snapshots: int, *extra: str):
    """The sandbox in its own process, stopped in every case."""
    with sandbox_process("--snapshots", str(snapshots), *extra) as (proc, url):
        yield Sandbox(proc, url)


# Another checkout's batchtag as the client (`BENCH_CLIENT_PATH=/path/to/checkout`), against
# this tree's sandbox and bench: the previous version measured beside this one.
CLIENT_PATH = os.environ.get("BENCH_CLIENT_PATH", "")


def client_env(url: str) -> dict[str, str]:
    """The environment of a measured client: the sandbox's URL and key, and the checkout
    it imports batchtag from (`CLIENT_PATH`, when set)."""
    path = {"PYTHONPATH": os.pathsep.join([CLIENT_PATH, str(ROOT)])} if CLIENT_PATH else {}
    return dict(
        os.environ,
        **path,
        GCORE_API_KEY=API_KEY,
        GCORE_BASE_URL=url,
        GCORE_CLOUD_PROJECT_ID=str(PROJECT_ID),
        GCORE_CLOUD_REGION_ID=str(REGION_ID),
    )


@dataclass
class ChildRun:
    wall: float  # seconds, process start to exit
    cpu: float  # user + system seconds of the child
    peak_mb: float
    code: int
    stdout: str
    stderr: str


def best_runs(rounds: int, runners: dict, tmp: Path) -> dict[str, dict[str, float]]:
    """Run each of `runners` (name -> callable(folder) -> ChildRun) `rounds` times, alternating,
    each in its own folder under `tmp`; keep every runner's fastest run as its figures."""
    best: dict[str, ChildRun] = {}
    for _ in range(rounds):
        for name, runner in runners.items():
            folder = Path(tmp) / name
            folder.mkdir(exist_ok=True)
            child = runner(folder)
            if name not in best or child.wall < best[name].wall:
                best[name] = child
    return {name: {"wall": c.wall, "cpu": c.cpu, "peak_mb": c.peak_mb} for name, c in best.items()}


def figures_table(result: dict[str, dict[str, float]], first: str, rate_of: int = 0) -> str:
    """Wall, CPU and peak RSS of each run (and items per second when `rate_of` is given)."""
    rate_head = f" {'items/s':>9}" if rate_of else ""
    lines = [f"{first:10} {'wall s':>8}{rate_head} {'cpu s':>7} {'peak MB':>8}"]
    for name, r in result.items():
        rate = f" {rate_of / r['wall']:9,.0f}" if rate_of else ""
        lines.append(f"{name:10} {r['wall']:8.1f}{rate} {r['cpu']:7.1f} {r['peak_mb']:8.0f}")
    return "\n".join(lines)


def run_child(module: str, args: list[str], env: dict[str, str], folder: Path) -> ChildRun:
    """Run `python -m module args` with its output in files (no pipe to drain while waiting)."""
    hwm = folder / "hwm.txt"
    out, err = folder / "stdout.txt", folder / "stderr.txt"
    # -P: the working folder (this checkout) is not put first, so CLIENT_PATH's batchtag runs.
    safe = ["-P"] if CLIENT_PATH else []
    command = [sys.executable, *safe, "-c", HWM_WRAPPER, module, *args]
    with open(out, "w") as fo, open(err, "w") as fe:
        start = time.perf_counter()
        proc = subprocess.Popen(
            command, stdout=fo, stderr=fe, env=dict(env, BENCH_HWM_FILE=str(hwm)), cwd=ROOT
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_kb = int(hwm.read_text()) if hwm.exists() else 0
    return ChildRun(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_mb=peak_kb / 1024,
        code=proc.returncode,
        stdout=out.read_text(),
        stderr=err.read_text(),
    )


def write_manifest(ids: list[str], path: Path) -> Path:
    lines = ["snapshot_id,op,key,value"] + [f"{i},set,{TAG_KEY},{TAG_VALUE}" for i in ids]
    path.write_text("\n".join(lines) + "\n")
    return path


def batchtag_apply(url: str, ids: list[str], rate: float, concurrency: int = 64) -> dict:
    """The real CLI, whole process; returns the child's figures and its summary JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest = write_manifest(ids, folder / "manifest.csv")
        summary_path = folder / "summary.json"
        args = ["batchtag", "apply", str(manifest), "--report", str(folder / "report.csv")]
        args += ["--yes", "--no-progress", "--concurrency", str(concurrency)]
        args += ["--rate", str(rate), "--project-id", str(PROJECT_ID)]
        args += ["--region-id", str(REGION_ID), "--summary-json", str(summary_path)]
        child = run_child(args[0], args[1:], client_env(url), folder)
        if not summary_path.exists():
            raise RuntimeError(f"batchtag apply failed ({child.code}): {child.stderr[-2000:]}")
        summary = json.loads(summary_path.read_text())
    return {"child": child, "summary": summary}


def counted(before: dict, after: dict, field: str) -> dict[str, int]:
    """The sandbox's counts of `field` ("responses" by status, "endpoints": list, get,
    patch) between two stats snapshots."""
    old = before.get(field, {})
    return {k: v - old.get(k, 0) for k, v in after.get(field, {}).items() if v - old.get(k, 0)}


def timeline(stats: dict) -> list[dict[str, int]]:
    """Per-second responses by status, from the first second that had any."""
    seconds = [row["responses"] for row in stats["timeline"]]
    while seconds and not seconds[0]:
        seconds.pop(0)
    return seconds
