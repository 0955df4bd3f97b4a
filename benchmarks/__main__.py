"""`make bench`: every benchmark, then one combined table of figures against targets.

    python -m benchmarks [throughput|latency|layers|memory|rate|adaptive|validate|startup|export|rerun|plan ...]   # no argument: all

Each section prints its own detailed table as it finishes; the combined table at the end
has one row per figure: what it measures, the figure, its target and whether it is met
("info": shown without a target). Ratios compare clients measured in the same run.
"""

from __future__ import annotations

import sys
import time

from benchmarks import harness

Row = tuple[str, str, str, bool | None]  # figure, measured, target, met (None: information)


def throughput() -> list[Row]:
    from benchmarks import bench_throughput as bench

    print(
        f"== throughput: concurrency {bench.CONCURRENCY}, zero latency, whole processes,"
        f" every client best of {bench.ROUNDS}"
    )
    result = bench.run()
    print(bench.table(result))
    r = bench.ratios(result)
    return [
        info("zero latency: batchtag / loop, whole process", f"{r['vs_loop']:.2f}x"),
        info("zero latency: same, sending phase", f"{r['vs_loop_in_run']:.2f}x"),
        info("zero latency: batchtag / SDK best, whole process", f"{r['vs_sdk']:.1f}x"),
    ]


def latency() -> list[Row]:
    from benchmarks import bench_latency as bench

    print(
        f"== latency-bound: sandbox {bench.LATENCY_MS} ms, concurrency {bench.CONCURRENCY},"
        f" {bench.REQUESTS:,} PATCHes, whole processes, every client best of {bench.ROUNDS}"
    )
    result = bench.run()
    print(bench.table(result))
    r = bench.ratios(result)
    return [
        target("latency: batchtag / loop, whole process", r["vs_loop"], ">= 0.95x", 0.95, "x"),
        target(
            "latency: batchtag sending / Little's limit", r["sending_vs_limit"], ">= 0.95", 0.95
        ),
        info("latency: loop sending / Little's limit", f"{r['loop_sending_vs_limit']:.2f}"),
        info("latency: SDK (aiohttp) / loop, whole process", f"{r['sdk_vs_loop']:.2f}x"),
        (
            f"latency: --rate {bench.RATE} achieved / configured",
            f"{r['rate']:.3f}",
            "1 +- 2%",
            abs(r["rate"] - 1) <= 0.02,
        ),
    ]


def layers() -> list[Row]:
    from benchmarks import bench_layers as bench

    print(
        f"== where the CPU goes: batchtag's layers over the minimal loop, in one process,"
        f" best of {bench.ROUNDS} batches of {bench.BATCH:,}"
    )
    result = bench.run()
    print(bench.table(result))
    cpu = result["per_request"]
    ratio = cpu["apply"] / cpu["loop"]
    return [
        (
            "CPU per request: apply / loop, zero latency",
            f"{ratio:.2f}x",
            "<= 1.3x",
            ratio <= 1.3,
        ),
        info("  projected zero-latency whole process", f"{bench.projection(result):.2f}x"),
    ]


def memory() -> list[Row]:
    from benchmarks import bench_memory as bench

    sizes = ", ".join(f"{n:,}" for n in bench.SIZES)
    print(f"== memory: wide manifest apply and --resume, {sizes} snapshots, peak RSS")
    rows = bench.run()
    print(bench.table(rows))
    big = rows[-1]
    out = []
    for step in ("apply", "resume"):
        peak = big[step]["peak_mb"]
        name = f"memory: {step} peak RSS at {big['size']:,}"
        out.append((name, f"{peak:.0f} MB", f"<= {bench.TARGET_MB} MB", peak <= bench.TARGET_MB))
    growth = bench.growth(rows)
    name = f"memory: apply peak {big['size']:,} / {rows[0]['size']:,}"
    out.append(target(name, growth, f"<= {bench.GROWTH}x", bench.GROWTH, "x", below=True))
    return out


def rate() -> list[Row]:
    from benchmarks import bench_rate, bench_rate_live

    print(
        f"== rate fidelity, limiter only: {bench_rate.TASKS} tasks, {bench_rate.SECONDS:.0f} s each"
    )
    limiter_rows = bench_rate.run()
    print(bench_rate.table(limiter_rows))
    print("== rate fidelity, real requests: batchtag apply against the sandbox")
    live_rows = bench_rate_live.run()
    print(bench_rate_live.table(live_rows))
    out = []
    for label, rows in (("limiter", limiter_rows), ("live", live_rows)):
        for r in rows:
            ratio = r["ratio"]
            name = f"rate {label} {r['configured']:,}/s: achieved / configured"
            out.append((name, f"{ratio:.3f}", "1 +- 3%", abs(ratio - 1) <= 0.03))
    return out


def adaptive() -> list[Row]:
    from benchmarks import bench_adaptive as bench

    print(f"== adaptive: sandbox limit {bench.LIMIT}/s, batchtag told {bench.TOLD}/s")
    r = bench.run()
    print(bench.table(r))
    share = r["ok_rate_steady"] / r["limit"]
    throttled = r["throttled_share_after"]
    return [
        ("adaptive: successful / limit after 5 s", f"{share:.1%}", ">= 90%", share >= 0.9),
        ("adaptive: 429 share after 5 s", f"{throttled:.2%}", "<= 2%", throttled <= 0.02),
    ]


def validate() -> list[Row]:
    from benchmarks import bench_validate as bench

    print("== validate: 1M-row long-form manifest, one process per measurement")
    results = bench.run()
    print(bench.table_text(results))
    out = []
    for r in results:
        if r["name"].startswith("validate"):
            ok = r["seconds"] < 10 and r["peak_rss_mb"] < 600
            measured = f"{r['seconds']:.1f} s, {r['peak_rss_mb']:.0f} MB"
            out.append((r["name"], measured, "< 10 s, < 600 MB", ok))
    return out


def startup() -> list[Row]:
    from benchmarks import bench_startup as bench

    print(f"== start-up: whole process, best of {bench.ROUNDS}, bytecode compiled")
    results = bench.run()
    print(bench.table(results))
    return [
        (
            f"start-up: {name}",
            f"{results[name]:.3f} s",
            f"<= {bench.TARGET_S} s",
            results[name] <= bench.TARGET_S,
        )
        for name in bench.COMMANDS
    ]


def export() -> list[Row]:
    from benchmarks import bench_export as bench

    print(
        f"== export: {bench.SNAPSHOTS:,} snapshots, one scope, to Parquet, best of {bench.ROUNDS}"
    )
    result = bench.run()
    print(bench.table(result))
    r, peak = bench.ratio(result), result["batchtag"]["peak_mb"]
    return [
        ("export: batchtag / minimal paging loop", f"{r:.2f}x", ">= 0.8x", r >= 0.8),
        ("export: batchtag peak RSS", f"{peak:.0f} MB", "<= 400 MB", peak <= 400),
    ]


def rerun() -> list[Row]:
    from benchmarks import bench_rerun as bench

    print(f"== re-run: {bench.SNAPSHOTS:,} snapshots, 1% changed, every request counted")
    r = bench.run()
    print(bench.table(r))
    ok = r["requests"] <= bench.TARGET
    return [("re-run 100k, 1% changed: requests", f"{r['requests']:,}", f"<= {bench.TARGET:,}", ok)]


def plan() -> list[Row]:
    from benchmarks import bench_plan as bench

    print(f"== plan: {bench.SNAPSHOTS:,}-row manifest on a {bench.SNAPSHOTS:,}-snapshot scope")
    result = bench.run()
    print(bench.table(result))
    r, peak = bench.ratio(result), result["plan"]["peak_mb"]
    return [
        ("plan: wall time / export's", f"{r:.2f}x", "<= 1.5x", r <= 1.5),
        ("plan: peak RSS", f"{peak:.0f} MB", "<= 600 MB", peak <= 600),
    ]


def target(
    name: str, value: float, wanted: str, bound: float, unit: str = "", below: bool = False
) -> Row:
    """A row whose figure must be at least (or, `below`, at most) `bound`."""
    ok = value <= bound if below else value >= bound
    return (name, f"{value:.2f}{unit}", wanted, ok)


def info(name: str, measured: str) -> Row:
    """A row shown for information: no target."""
    return (name, measured, "-", None)


def combined(rows: list[Row]) -> str:
    lines = [f"{'figure':50} {'measured':>16} {'target':>16}  result"]
    for name, measured, wanted, ok in rows:
        result = "info" if ok is None else "met" if ok else "NOT MET"
        lines.append(f"{name:50} {measured:>16} {wanted:>16}  {result}")
    return "\n".join(lines)


SECTIONS = {
    "throughput": throughput,
    "latency": latency,
    "layers": layers,
    "memory": memory,
    "rate": rate,
    "adaptive": adaptive,
    "validate": validate,
    "startup": startup,
    "export": export,
    "rerun": rerun,
    "plan": plan,
}


def main(argv: list[str]) -> int:
    chosen = argv or list(SECTIONS)
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        print(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    harness.compile_bytecode()
    rows: list[Row] = []
    for name, section in SECTIONS.items():
        if name in chosen:
            rows += section()
            print(flush=True)
    print("== summary")
    print(combined(rows))
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
