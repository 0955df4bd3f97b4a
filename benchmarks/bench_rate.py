"""Rate fidelity of the shared limiter in real time: achieved vs configured requests/s.

Only the limiter is measured (no network): 32 tasks call `acquire()` in a loop for a few
seconds, as the workers of a run would, and every grant inside the window is counted.
Run: `python -m benchmarks.bench_rate`.
"""

from __future__ import annotations

import asyncio
import time

from batchtag.gcore import RateLimiter
from benchmarks import mode

RATES = (50, 500, 2_000, 5_000)
TASKS = 32
SECONDS = mode.pick(3.0, 1.0)


async def measure(rate: float, tasks: int = TASKS, seconds: float = SECONDS) -> dict:
    limiter = RateLimiter(rate)
    start = time.monotonic()
    end = start + seconds
    granted = 0

    async def worker() -> None:
        nonlocal granted
        while True:
            await limiter.acquire()
            if time.monotonic() >= end:
                return
            granted += 1

    await asyncio.gather(*(worker() for _ in range(tasks)))
    achieved = granted / seconds
    return {
        "configured": rate,
        "achieved": round(achieved, 1),
        "ratio": round(achieved / rate, 4),
        "burst": limiter.burst,
        "tasks": tasks,
        "seconds": seconds,
    }


def run(rates: tuple[float, ...] = RATES) -> list[dict]:
    """One row per configured rate."""
    return [asyncio.run(measure(rate)) for rate in rates]


def table(rows: list[dict]) -> str:
    lines = [f"{'configured/s':>12} {'achieved/s':>11} {'ratio':>7} {'within 3%':>9}"]
    for row in rows:
        ok = "yes" if abs(row["ratio"] - 1) <= 0.03 else "NO"
        lines.append(
            f"{row['configured']:>12,} {row['achieved']:>11,.1f} {row['ratio']:>7.3f} {ok:>9}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(f"rate fidelity: limiter only, {TASKS} tasks, {SECONDS:.0f} s each")
    print(table(run()))
