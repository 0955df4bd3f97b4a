"""Adaptive throttling: the sandbox allows 300 requests/s, batchtag is told 2,000.

The sandbox (own process) answers 429 with Retry-After / retry-after-ms above its limit.
Per-second figures come from the sandbox's own timeline (`GET /_sandbox/stats`), whose
clock is zeroed by a reset just before batchtag starts; second 0 of the run is the first
second with any response. "After 5 s" means from the sixth of those seconds on.
Targets: successful requests/s >= 90% of the limit, 429s <= 2% of responses after 5 s.
Run: `python -m benchmarks adaptive`.
"""

from __future__ import annotations

from benchmarks import harness, mode

LIMIT = 300
TOLD = 2_000
SECONDS = mode.pick(15, 8)  # snapshots for about this long at the server's limit
WARMUP = 5


def run(limit: int = LIMIT, told: int = TOLD, seconds: int = SECONDS) -> dict:
    snapshots = limit * seconds
    with harness.sandbox(snapshots, "--rate-limit", str(limit)) as sandbox:
        ids = sandbox.snapshot_ids()
        sandbox.reset()  # zero the timeline clock and refill the server's bucket
        done = harness.batchtag_apply(sandbox.url, ids, told)
        per_second = harness.timeline(sandbox.stats())
    return figures(per_second, done["summary"], limit, told)


def figures(per_second: list[dict[str, int]], summary: dict, limit: int, told: int) -> dict:
    after = per_second[WARMUP:]
    steady = after[:-1]  # the last second is partial
    ok_after = sum(s.get("200", 0) for s in steady)
    throttled = sum(s.get("429", 0) for s in after)
    answered = sum(sum(s.values()) for s in after)
    return {
        "limit": limit,
        "told": told,
        "seconds": len(per_second),
        "ok": summary["counts"]["ok"],
        "total": summary["total"],
        "ok_rate_steady": ok_after / len(steady) if steady else 0.0,
        "ok_rate_run": summary["rate_per_s"] or 0.0,
        "throttled_total": sum(s.get("429", 0) for s in per_second),
        "throttled_share_after": throttled / answered if answered else 0.0,
        "rate_changes": summary["rate_changes"],
        "per_second": [(s.get("200", 0), s.get("429", 0)) for s in per_second],
    }


def table(r: dict) -> str:
    steady = r["ok_rate_steady"] / r["limit"]
    lines = [
        f"sandbox limit {r['limit']}/s, batchtag --rate {r['told']}:"
        f" {r['ok']}/{r['total']} ok in {r['seconds']} s, {r['rate_changes']} rate changes",
        f"{'figure':40} {'value':>9} {'target':>9} {'result':>7}",
        f"{'successful req/s after 5 s (steady)':40} {r['ok_rate_steady']:>9.1f} {'':>9} {'':>7}",
        f"{'  / server limit':40} {steady:>9.1%} {'>= 90%':>9} {verdict(steady >= 0.9):>7}",
        f"{'successful req/s, whole run':40} {r['ok_rate_run']:>9.1f} {'':>9} {'':>7}",
        f"{'  / server limit':40} {r['ok_rate_run'] / r['limit']:>9.1%} {'':>9} {'':>7}",
        f"{'429 share after 5 s':40} {r['throttled_share_after']:>9.2%} {'<= 2%':>9}"
        f" {verdict(r['throttled_share_after'] <= 0.02):>7}",
        f"{'429s, whole run':40} {r['throttled_total']:>9} {'':>9} {'':>7}",
        "per second (200/429): " + " ".join(f"{ok}/{no}" for ok, no in r["per_second"]),
    ]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


if __name__ == "__main__":
    print(table(run()))
