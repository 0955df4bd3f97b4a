"""Rate fidelity with real requests: batchtag apply --rate R against a zero-latency sandbox
with no rate limit, each in its own process.

Achieved = PATCH responses per second over the steady window: the whole seconds of the
sandbox's timeline between the first and the last second with any response (both partial,
so dropped). The whole-run figure (sent / engine elapsed, from batchtag's summary) includes
the start and the tail. Target: within 3% of the configured rate.
Run: `python -m benchmarks rate` (with the limiter-only figures of bench_rate).
"""

from __future__ import annotations

from benchmarks import harness, mode

RATES = (50, 500, 2_000)
SECONDS = mode.pick(6, 3)  # snapshots for about this long at each rate


def measure(rate: int, seconds: int = SECONDS) -> dict:
    with harness.sandbox(rate * seconds) as sandbox:
        ids = sandbox.snapshot_ids()
        sandbox.reset()  # zero the timeline clock
        done = harness.batchtag_apply(sandbox.url, ids, rate)
        per_second = harness.timeline(sandbox.stats())
    steady = [sum(s.values()) for s in per_second[1:-1]]
    achieved = sum(steady) / len(steady) if steady else 0.0
    return {
        "configured": rate,
        "achieved": achieved,
        "ratio": achieved / rate,
        "whole_run": done["summary"]["rate_per_s"] or 0.0,
        "window": len(steady),
        "per_second": [sum(s.values()) for s in per_second],
    }


def run(rates: tuple[int, ...] = RATES) -> list[dict]:
    return [measure(rate) for rate in rates]


def table(rows: list[dict]) -> str:
    lines = [
        f"{'configured/s':>12} {'achieved/s':>11} {'ratio':>7} {'within 3%':>9}"
        f" {'whole run/s':>11} {'window s':>8}  per second"
    ]
    for r in rows:
        ok = "yes" if abs(r["ratio"] - 1) <= 0.03 else "NO"
        lines.append(
            f"{r['configured']:>12,} {r['achieved']:>11,.1f} {r['ratio']:>7.3f} {ok:>9}"
            f" {r['whole_run']:>11,.1f} {r['window']:>8}  {r['per_second']}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(run()))
