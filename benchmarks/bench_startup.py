"""Start-up: whole-process wall time of `batchtag --help`, `--version`, `sandbox --help`.

Best of ROUNDS runs each (the machine is shared: the best run is the least disturbed), with
bytecode compiled first (see harness.compile_bytecode), against `python -c pass`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from benchmarks import mode

ROUNDS = mode.pick(7, 3)
TARGET_S = 0.25
COMMANDS = {
    "batchtag --help": ["--help"],
    "batchtag --version": ["--version"],
    "batchtag sandbox --help": ["sandbox", "--help"],
}


def entry_point() -> list[str]:
    """The installed console script next to this interpreter, else `python -m batchtag`."""
    script = Path(sys.executable).with_name("batchtag")
    return [str(script)] if script.exists() else [sys.executable, "-m", "batchtag"]


def best_seconds(command: list[str]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - start)
    return best


def run() -> dict[str, float]:
    results = {"python -c pass": best_seconds([sys.executable, "-c", "pass"])}
    for name, args in COMMANDS.items():
        results[name] = best_seconds([*entry_point(), *args])
    return results


def table(results: dict[str, float]) -> str:
    base = results["python -c pass"]
    lines = [f"{'command':28} {'seconds':>8} {'over python':>12}"]
    for name, seconds in results.items():
        lines.append(f"{name:28} {seconds:8.3f} {seconds - base:+12.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(run()))
