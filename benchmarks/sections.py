"""The sections of `make bench`: each runs its benchmark, prints the benchmark's own detailed
table, and returns its figures against their targets (rows of the final table).

Targets come from issues 15 (latency, CPU, memory, start-up), 12 (plan, re-run), 11
(export), 25 (inherit), 22 (breadth: many tags, keys and rules), 27 (first request,
resume, plan -o, the sweep of every command) and 23 (change files); rate, adaptive and validate keep the targets of
earlier issues. Every figure is measured in the run that prints it: ratios compare clients
measured in the same run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from types import ModuleType
from typing import Any

from benchmarks.figures import Figure, at_least, at_most, within
from benchmarks.mode import label


def shown(bench: ModuleType, heading: str) -> Any:
    """Print `heading`, run the benchmark module `bench`, print its detailed table; return
    its result."""
    print(f"== {heading}", flush=True)
    result = bench.run()
    print(bench.table(result), flush=True)
    return result


def peak(name: str, what: str, run: dict, bound_mb: float) -> Figure:
    """The peak RSS (VmHWM) figure of a measured process `run` (its "peak_mb")."""
    return Figure(f"{name}: peak RSS", f"VmHWM of {what}", run["peak_mb"], "MB", at_most(bound_mb))


def throughput() -> list[Figure]:
    from benchmarks import bench_throughput as bench

    setup = (
        f"{label(bench.REQUESTS)} PATCHes, sandbox at zero latency, concurrency"
        f" {bench.CONCURRENCY}, every client best of {bench.ROUNDS}"
    )
    r = bench.ratios(shown(bench, f"throughput: {setup}"))
    return [
        Figure(
            "zero latency: batchtag / loop, whole process",
            f"requests/s of whole processes (start-up included), batchtag apply vs a minimal"
            f" aiohttp loop; {setup}; not what a user meets",
            r["vs_loop"],
        ),
        Figure(
            "zero latency: batchtag / loop, sending phase",
            "the same, each client's own timing of its sending phase",
            r["vs_loop_in_run"],
        ),
        Figure(
            "zero latency: batchtag / SDK best, whole process",
            "batchtag apply vs the faster of the gcore SDK's two HTTP clients, same run",
            r["vs_sdk"],
        ),
    ]


def latency() -> list[Figure]:
    from benchmarks import bench_latency as bench

    setup = (
        f"sandbox at {bench.LATENCY_MS} ms, concurrency {bench.CONCURRENCY},"
        f" {label(bench.REQUESTS)} PATCHes, every client best of {bench.ROUNDS}"
    )
    r = bench.ratios(shown(bench, f"latency-bound: {setup}"))
    limit = f"Little's limit {bench.CONCURRENCY} / {bench.LATENCY_MS} ms = {bench.LIMIT:,.0f}/s"
    return [
        Figure(
            "latency: batchtag / loop, whole process",
            f"requests/s of whole processes (start-up included), batchtag apply in its default"
            f" mode (the state read first) vs a minimal blind aiohttp loop; {setup}",
            r["vs_loop"],
            target=at_least(0.95),
        ),
        Figure(
            "latency: batchtag sending / Little's limit",
            "batchtag's sending phase in the default mode with its list pages counted (PATCHes"
            " and pages, from the first list request to the end of sending) vs the"
            f" {limit}",
            r["sending_vs_limit"],
            unit="",
            target=at_least(0.95),
        ),
        Figure(
            "latency: batchtag summary's rate / Little's limit",
            "the same run's summary rate: PATCHes only, from the first entries ready",
            r["summary_sending_vs_limit"],
            unit="",
        ),
        Figure(
            "latency: loop sending / Little's limit",
            "the same for the minimal loop: what the machine allows right now",
            r["loop_sending_vs_limit"],
            unit="",
        ),
        Figure(
            "latency: batchtag sending / loop sending",
            "batchtag's sending phase with its list pages counted vs the minimal loop's, same"
            " run: what batchtag costs beyond what the machine allowed then",
            r["sending_vs_loop"],
            unit="",
        ),
        Figure(
            "latency: batchtag first PATCH after its first request",
            "the sandbox's clock, from batchtag's first list page request to its first PATCH:"
            " one list page round trip, then the engine starts",
            r["lead_s"] * 1000,
            unit="ms",
        ),
        Figure(
            "latency: SDK (aiohttp) / loop, whole process",
            "the gcore SDK with its aiohttp client vs the minimal loop, same run",
            r["sdk_vs_loop"],
        ),
        Figure(
            f"latency: --rate {bench.RATE} achieved / configured",
            "batchtag apply --rate against the same sandbox: PATCH responses per second over"
            " the steady seconds of the sandbox's timeline",
            r["rate"],
            unit="",
            target=within(1, 0.02),
        ),
    ]


def layers() -> list[Figure]:
    from benchmarks import bench_layers as bench

    heading = (
        f"where the CPU goes: batchtag's layers over the minimal loop, in one process,"
        f" best of {bench.ROUNDS} batches of {label(bench.BATCH)}"
    )
    result = shown(bench, heading)
    cpu = result["per_request"]
    return [
        Figure(
            "CPU per request: apply / loop, zero latency",
            f"client CPU time per PATCH in one process, best of {bench.ROUNDS} batches:"
            " apply's engine, report row and summary vs the minimal aiohttp loop",
            cpu["apply"] / cpu["loop"],
            target=at_most(1.3),
        ),
        Figure(
            "CPU per request: gcore SDK (aiohttp) / loop",
            "the same for the gcore SDK's update call, same batches, same best-of",
            cpu["sdk"] / cpu["loop"],
        ),
        Figure(
            "CPU: projected whole-process batchtag / loop",
            f"the zero-latency ratio these CPU and start-up figures imply at"
            f" {label(bench.REQUESTS)} PATCHes",
            bench.projection(result),
        ),
    ]


def memory() -> list[Figure]:
    from benchmarks import bench_memory as bench

    sizes = ", ".join(label(n) for n in bench.SIZES)
    rows = shown(bench, f"memory: wide manifest apply and --resume, {sizes} snapshots")
    big, small = rows[-1], rows[0]
    figures = [
        peak(
            f"memory: {step} at {label(big['size'])}",
            f"`{COMMANDS.get(step, 'batchtag ' + step)}` at {label(big['size'])} snapshots: a"
            " wide manifest (one tag, one passthrough column), a sandbox of as many",
            big[step],
            PEAK_MB.get(step, bench.TARGET_MB),
        )
        for step in steps(big)
    ]
    figures.append(
        Figure(
            f"memory: apply peak {label(big['size'])} / {label(small['size'])}",
            "the same apply's peak RSS at the largest size vs the smallest",
            bench.growth(rows),
            target=at_most(bench.GROWTH),
        )
    )
    return figures


# The memory section's steps (parts of a row with a "peak_mb"): their commands, and the
# bound of those whose target is not bench_memory.TARGET_MB (issue 12: plan 1M <= 600 MB).
COMMANDS = {"apply": "batchtag apply", "resume": "batchtag apply --resume", "plan": "batchtag plan"}
PLAN_PEAK_MB = 600
PEAK_MB = {"plan": PLAN_PEAK_MB}


def steps(row: dict) -> list[str]:
    """The commands a memory row measured (apply, resume, ...): its parts with a peak."""
    return [step for step, part in row.items() if isinstance(part, dict) and "peak_mb" in part]


def rate() -> list[Figure]:
    from benchmarks import bench_rate, bench_rate_live

    heading = (
        f"rate fidelity, limiter only: {bench_rate.TASKS} tasks, {bench_rate.SECONDS:.0f} s each"
    )
    limiter = shown(bench_rate, heading)
    live = shown(bench_rate_live, "rate fidelity, real requests: batchtag apply, a sandbox")
    measures = {
        "limiter": "the shared limiter alone, granted acquire() per second",
        "live": "batchtag apply against a zero-latency sandbox, PATCH responses per second",
    }
    return [
        Figure(
            f"rate {kind} {r['configured']:,}/s: achieved / configured",
            measures[kind],
            r["ratio"],
            unit="",
            target=within(1, 0.03),
        )
        for kind, rows in (("limiter", limiter), ("live", live))
        for r in rows
    ]


def adaptive() -> list[Figure]:
    from benchmarks import bench_adaptive as bench

    heading = f"adaptive: sandbox limit {bench.LIMIT}/s, batchtag told {bench.TOLD}/s"
    r = shown(bench, heading)
    return [
        Figure(
            f"adaptive: successful / limit after {bench.WARMUP} s",
            f"a sandbox answering 429 above {bench.LIMIT}/s, batchtag told {bench.TOLD}/s:"
            " successful requests per second over the limit",
            r["ok_rate_steady"] / r["limit"],
            unit="%",
            target=at_least(0.9),
        ),
        Figure(
            f"adaptive: 429 share after {bench.WARMUP} s",
            "the same run: 429s among all responses",
            r["throttled_share_after"],
            unit="%",
            target=at_most(0.02),
        ),
    ]


def validate() -> list[Figure]:
    from benchmarks import bench_validate as bench

    heading = f"validate: {label(bench.ROWS)}-row long-form manifest, one process per measurement"
    figures = []
    for r in shown(bench, heading):
        if r["name"].startswith("validate"):
            what = f"validating a {label(bench.ROWS)}-row long-form manifest (read_plan, summary)"
            name = f"{r['name']} {label(bench.ROWS)}"
            figures.append(Figure(f"{name}: time", what, r["seconds"], "s", at_most(10)))
            figures.append(peak(name, what, {"peak_mb": r["peak_rss_mb"]}, 600))
    return figures


def startup() -> list[Figure]:
    from benchmarks import bench_startup as bench

    results = shown(bench, f"start-up: whole process, best of {bench.ROUNDS}, bytecode compiled")
    what = f"wall time of the whole process, best of {bench.ROUNDS}"
    limit = at_most(bench.TARGET_S)
    return [Figure(f"start-up: {n}", what, results[n], "s", limit) for n in bench.COMMANDS]


def export() -> list[Figure]:
    from benchmarks import bench_export as bench

    size = label(bench.SNAPSHOTS)
    ratio = Figure(
        f"export {size}: batchtag / minimal paging loop",
        f"snapshots/s of `batchtag export -o FILE.parquet` vs a minimal aiohttp loop that"
        f" pages concurrently and writes with pyarrow; whole processes, best of {bench.ROUNDS}",
        0.0,
        target=at_least(0.8),
    )
    heading = f"export: {size} snapshots, one scope, to Parquet, best of {bench.ROUNDS}"
    return ratio_and_peak(bench, heading, ratio, ("batchtag", "batchtag export"), 400)


def rerun() -> list[Figure]:
    from benchmarks import bench_rerun as bench

    size = label(bench.SNAPSHOTS)
    r = shown(bench, f"re-run: {size} snapshots, 1% changed, every request counted")
    return [
        Figure(
            f"re-run {size}, 1% changed: requests",
            "every request the sandbox saw from `batchtag apply` with its defaults (list pages"
            " and PATCHes); the manifest re-states every name and changes 1%",
            r["requests"],
            unit="requests",
            target=at_most(bench.TARGET),
        )
    ]


def plan() -> list[Figure]:
    from benchmarks import bench_plan as bench

    size = label(bench.SNAPSHOTS)
    ratio = Figure(
        f"plan {size}: wall time / export's",
        f"`batchtag plan` of a {size}-row manifest vs `batchtag export` of the same scope,"
        " whole processes, same sandbox",
        0.0,
        target=at_most(1.5),
    )
    heading = f"plan: {size}-row manifest on a {size}-snapshot scope vs export of it"
    return ratio_and_peak(bench, heading, ratio, ("plan", "batchtag plan"), PLAN_PEAK_MB)


def inherit() -> list[Figure]:
    from benchmarks import bench_inherit as bench

    size = f"{label(bench.SNAPSHOTS)} snapshots, {label(bench.VOLUMES)} volumes"
    r = shown(bench, f"inherit: enforce with a copy rule vs export --with volume + apply, {size}")
    pair = "`batchtag export --with volume` then `batchtag apply` of the same changes"
    return [
        Figure(
            f"inherit {label(bench.SNAPSHOTS)}: enforce / export + apply, wall time",
            f"`batchtag enforce` with a copy rule (fill cost-center and team from the volume)"
            f" vs {pair}; whole processes, same sandbox, same run",
            bench.ratio(r),
            target=at_most(bench.TARGET),
        ),
        Figure(
            f"inherit {label(bench.SNAPSHOTS)}: enforce requests",
            "every request the sandbox saw from enforce: snapshot pages, volume pages, PATCHes",
            r["enforce"]["requests"],
            unit="requests",
        ),
        Figure(
            f"inherit {label(bench.SNAPSHOTS)}: export + apply requests",
            f"the same for {pair} (apply reads the state again)",
            r["export + apply"]["requests"],
            unit="requests",
        ),
    ]


def first_request() -> list[Figure]:
    from benchmarks import bench_first_request as bench

    heading = (
        f"first request: `batchtag apply` of a {bench.ROWS}-row CSV manifest, start to the"
        f" sandbox's first request, best of {bench.ROUNDS}"
    )
    best = shown(bench, heading)
    apply, floor = best["batchtag apply"], best["aiohttp, one PATCH"]
    what = (
        f"seconds from the process's start to the sandbox's first request, best of {bench.ROUNDS}"
    )
    return [
        Figure(
            f"first request: apply of {bench.ROWS} rows",
            f"{what}: `batchtag apply` of a {bench.ROWS}-row CSV manifest (default mode: its"
            " scope's list page comes first)",
            apply["request"],
            "s",
            at_most(bench.TARGET_S),
        ),
        Figure(
            f"first request: apply of {bench.ROWS} rows, first PATCH",
            "the same run, to its first PATCH",
            apply["patch"],
            "s",
        ),
        Figure(
            "first request: aiohttp alone",
            f"{what}: a process that imports aiohttp and sends one PATCH (this stack's floor"
            " on this machine now)",
            floor["request"],
            "s",
        ),
        Figure(
            "first request: apply / aiohttp alone",
            "the two figures above, same run",
            apply["request"] / floor["request"],
        ),
    ]


def resume() -> list[Figure]:
    from benchmarks import bench_resume as bench

    size = label(bench.SNAPSHOTS)
    result = shown(bench, f"resume: a {size}-row wide manifest, its CSV report half done")
    what = (
        f"seconds from the start of `batchtag apply --resume` (a {size}-snapshot plan, its"
        " CSV report's first half `ok`) to the sandbox's first PATCH"
    )
    modes = {
        "blind": "--no-check-current: the manifest and the report are all it reads first",
        "default": "default mode: the state is read first, the done half's list pages too",
    }
    figures = [
        Figure(
            f"resume {size} half done: first PATCH, {mode}",
            f"{what}; {how}",
            result[mode]["first_patch"],
            "s",
            at_most(bench.TARGET_S),
        )
        for mode, how in modes.items()
    ]
    figures.append(
        peak(
            f"resume {size} half done",
            f"the blind resume, from its start to {bench.SETTLE:,} PATCHes sent (then interrupted)",
            result["blind"],
            bench.TARGET_MB,
        )
    )
    return figures


def plan_output() -> list[Figure]:
    from benchmarks import bench_plan_output as bench

    size = label(bench.SNAPSHOTS)
    heading = f"plan -o: a {size}-row manifest changing every snapshot, with and without -o"
    result = shown(bench, heading)
    figures = [
        Figure(
            f"plan {size} -o {suffix[1:]}: wall / without -o",
            f"`batchtag plan --limit 0 -o diff{suffix}` vs the same plan without -o, whole"
            f" processes, best of {bench.ROUNDS}",
            ratio,
            target=at_most(bench.TARGET),
        )
        for suffix, ratio in bench.ratios(result).items()
    ]
    figures += [
        peak(f"plan {size} -o {suffix[1:]}", "the same run", result[f"plan -o {suffix[1:]}"], 300)
        for suffix in bench.FORMATS
    ]
    return figures


def sweep() -> list[Figure]:
    from benchmarks import bench_sweep as bench

    size = label(bench.SNAPSHOTS)
    result = shown(bench, f"sweep: every command at {size} snapshots, one process each")
    figures = [
        peak(
            f"sweep {size}: {name}",
            f"`batchtag {name}` at {size} snapshots",
            result[name],
            bench.TARGET_MB,
        )
        for name in bench.CHOSEN
    ]
    if bench.ratio(result) is not None:
        figures.append(
            Figure(
                f"sweep {size}: enforce / export + apply, wall time",
                "`batchtag enforce` of two rules (two tags on every snapshot) vs `batchtag export`"
                " then `batchtag apply` of the same changes; whole processes, same run",
                bench.ratio(result),
                target=at_most(bench.TARGET),
            )
        )
    return figures


def changes() -> list[Figure]:
    from benchmarks import bench_changes as bench

    size = label(bench.SNAPSHOTS)
    heading = (
        f"change files: apply of a {size}-row change file vs the manifest it came from,"
        f" best of {bench.ROUNDS}"
    )
    r = bench.ratios(shown(bench, heading))
    what = (
        f"`batchtag apply` of the {size}-row change file `plan -o` wrote vs of its wide"
        " manifest, whole processes, the same freshly reset sandbox"
    )
    return [
        Figure(
            f"change file {size}: apply wall time / manifest's",
            what,
            r["wall"],
            target=at_most(bench.TARGET),
        ),
        Figure(
            f"change file {size}: apply peak RSS / manifest's",
            "the same runs' VmHWM",
            r["peak"],
            target=at_most(bench.TARGET),
        ),
    ]


def ratio_and_peak(
    bench: ModuleType, heading: str, ratio: Figure, peaked: tuple[str, str], bound_mb: float
) -> list[Figure]:
    """Run `bench` (two commands, whole processes): `ratio` with the value of its
    `bench.ratio(result)`, and the peak RSS of the run `peaked` = (its name, its command)."""
    result = shown(bench, heading)
    run, command = peaked
    prefix = ratio.name.split(":")[0]
    return [
        replace(ratio, value=bench.ratio(result)),
        peak(prefix, f"the same `{command}`", result[run], bound_mb),
    ]


def breadth() -> list[Figure]:
    from benchmarks import bench_breadth as bench

    tags, keys = label(bench.TAGS), label(bench.KEYS)
    rules, snapshots = label(bench.RULES), label(bench.RULE_SNAPSHOTS)
    heading = (
        f"breadth: {tags} tags on one snapshot, {keys} keys with --long, {rules} rules on"
        f" {snapshots} snapshots; exports best of {bench.ROUNDS}"
    )
    r = shown(bench, heading)
    whole = "whole-process wall time (start-up included)"
    export_limit = at_most(bench.TARGET_EXPORT_S)
    return [
        Figure(
            f"breadth: export, {tags} tags on one snapshot",
            f"{whole} of `batchtag export -o FILE.parquet`, a {bench.WIDE_SNAPSHOTS}-snapshot"
            f" scope where one snapshot has {tags} user tags",
            r["wide"]["wall"],
            "s",
            export_limit,
        ),
        Figure(
            f"breadth: export --long, {keys} keys",
            f"{whole} of `batchtag export --long -o FILE.parquet`, {keys} snapshots each with"
            " a tag key of its own",
            r["long"]["wall"],
            "s",
            export_limit,
        ),
        Figure(
            "breadth: export, nothing tagged (start-up)",
            f"the same export of the {bench.WIDE_SNAPSHOTS}-snapshot scope before tagging:"
            " start-up and fixed cost, for reading the rows above",
            r["baseline"]["wall"],
            "s",
        ),
        Figure(
            f"breadth: {rules} rules on {snapshots} snapshots, evaluation",
            "batchtag.policy.evaluate, in-process, on the exported inventory: two rules"
            " per window of creation time, one setting the window's key, the other upper,"
            " delete (chained) or rename",
            r["rules"]["evaluate"],
            "s",
            at_most(bench.TARGET_RULES_S),
        ),
        Figure(
            f"breadth: {rules} rules, loading the policy",
            "parse_policy of the same policy: TOML, every rule checked (tag text, where)",
            r["rules"]["load"],
            "s",
        ),
    ]


SECTIONS: dict[str, Callable[[], list[Figure]]] = {
    "startup": startup,
    "first_request": first_request,
    "latency": latency,
    "layers": layers,
    "throughput": throughput,
    "rate": rate,
    "adaptive": adaptive,
    "rerun": rerun,
    "inherit": inherit,
    "validate": validate,
    "breadth": breadth,
    "export": export,
    "plan": plan,
    "changes": changes,
    "plan_output": plan_output,
    "resume": resume,
    "memory": memory,
    "sweep": sweep,
}
