"""Latency-bound runs, as a user meets them: the sandbox answers each request after 50 ms
on average (jitter 50%-150%), concurrency 64, 12,800 PATCHes, whole processes.

With 64 requests in flight and 50 ms each, Little's law caps any client at
64 / 0.05 s = 1,280 requests/s; round trips, not client CPU, bound the run. Figures:
- batchtag apply in its default mode (the state read first: list pages, then PATCHes) vs
  the minimal blind aiohttp loop, whole process (imports included): target >= 0.95x;
- batchtag's sending phase with its list pages counted vs the Little's-law limit: target
  >= 0.95. The phase runs from the sandbox's first request (the first list page) to the
  end of its summary's sending phase, and its requests are the PATCHes and the pages; the
  summary's own rate (PATCHes from the first entry ready) is shown beside it;
- the gcore SDK (DefaultAioHttpClient) for comparison, no target;
- `--rate 500` against the same sandbox: achieved rate over the steady seconds of the
  sandbox's timeline, target within 2% of 500.
Every client is run `ROUNDS` times, alternating, and its best whole-process run is kept.
Run: `python -m benchmarks latency`.
"""

from __future__ import annotations

import time

from benchmarks import bench_throughput, harness, mode

LATENCY_MS = 50
CONCURRENCY = bench_throughput.CONCURRENCY  # the clients are started with it
REQUESTS = mode.pick(12_800, 1_280)
ROUNDS = bench_throughput.ROUNDS  # every client, the SDK too
LIMIT = CONCURRENCY / (LATENCY_MS / 1000)  # Little's law: requests/s
RATE = 500
RATE_SECONDS = mode.pick(8, 4)
SANDBOX_ARGS = ("--latency-ms", str(LATENCY_MS))
KINDS = ("loop", "batchtag", "sdk-aiohttp")


def run(rounds: int = ROUNDS) -> dict:
    best = bench_throughput.best_of(KINDS, rounds, REQUESTS, *SANDBOX_ARGS)
    return {"rows": [best[kind] for kind in KINDS], "rate": rate_row()}


def rate_row() -> dict:
    """batchtag apply --rate RATE against the latency sandbox."""
    with harness.sandbox(RATE * RATE_SECONDS, *SANDBOX_ARGS) as sandbox:
        ids = sandbox.snapshot_ids()
        sandbox.reset()  # zero the timeline clock
        harness.batchtag_apply(sandbox.url, ids, RATE, CONCURRENCY)
        per_second = [sum(s.values()) for s in harness.timeline(sandbox.stats())]
    steady = per_second[1:-1]  # the first and last seconds are partial
    achieved = sum(steady) / len(steady) if steady else 0.0
    return {"configured": RATE, "achieved": achieved, "per_second": per_second}


def ratios(result: dict) -> dict[str, float]:
    by_kind = {r["kind"]: r for r in result["rows"]}
    loop, batchtag, sdk = by_kind["loop"], by_kind["batchtag"], by_kind["sdk-aiohttp"]
    return {
        "vs_loop": batchtag["rps"] / loop["rps"],
        "sending_vs_limit": with_pages(batchtag) / LIMIT,
        "summary_sending_vs_limit": batchtag["in_run_rps"] / LIMIT,
        "loop_sending_vs_limit": loop["in_run_rps"] / LIMIT,
        # diagnostics: the same sending phase against what the loop made of the machine in
        # this run, and the first PATCH's lead over the first request (the first page)
        "sending_vs_loop": with_pages(batchtag) / loop["in_run_rps"],
        "lead_s": batchtag["lead_s"],
        "sdk_vs_loop": sdk["rps"] / loop["rps"],
        "rate": result["rate"]["achieved"] / RATE,
    }


def with_pages(row: dict) -> float:
    """Requests/s of a client's sending phase with its reads before the first PATCH counted:
    (PATCHes + list pages) over its own sending time plus the lead from its first request
    to its first PATCH (the sandbox's clock)."""
    sending = row["requests"] / row["in_run_rps"] if row["in_run_rps"] else 0.0
    seconds = sending + row["lead_s"]
    return (row["requests"] + row["pages"]) / seconds if seconds else 0.0


def table(result: dict) -> str:
    rows = result["rows"]
    loop = rows[0]
    lines = [
        f"{'client':32} {'requests':>8} {'wall s':>7} {'req/s':>7} {'vs loop':>7}"
        f" {'in-run/s':>8} {'/ limit':>7} {'CPU us/req':>10} {'peak MB':>7}"
    ]
    for r in rows:
        lines.append(
            f"{r['name']:32} {r['requests']:>8,} {r['wall']:>7.2f} {r['rps']:>7,.0f}"
            f" {r['rps'] / loop['rps']:>7.2f} {r['in_run_rps']:>8,.0f}"
            f" {r['in_run_rps'] / LIMIT:>7.2f} {r['cpu_us']:>10,.0f} {r['peak_mb']:>7.0f}"
        )
        if r["errors"]:
            lines.append(f"  {r['name']}: {r['errors']} non-200 responses")
    rate = result["rate"]
    lines.append(f"Little's-law limit: {CONCURRENCY} / {LATENCY_MS} ms = {LIMIT:,.0f} requests/s")
    for r in rows:
        if r["pages"]:
            lines.append(
                f"{r['name']}: {r['pages']} list pages, first PATCH {r['lead_s']:.3f} s after"
                f" the first request; sending with the pages {with_pages(r):,.0f}/s"
                f" ({with_pages(r) / LIMIT:.3f} of the limit)"
            )
    lines.append(
        f"--rate {RATE}: achieved {rate['achieved']:,.1f}/s over the steady seconds;"
        f" per second {rate['per_second']}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    start = time.perf_counter()
    print(table(run()))
    print(f"({time.perf_counter() - start:.0f} s)")
