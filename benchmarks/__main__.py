"""`make bench`: every section, then one table of every figure against its target.

    python -m benchmarks                  # every section (30-40 min: the 1M runs), then the table
    python -m benchmarks latency layers   # some sections, then the table of all saved results
    python -m benchmarks summary          # the table from saved results only, measuring nothing
    BENCH_QUICK=1 python -m benchmarks    # every section at small sizes (a few minutes)

Each section prints its own detailed table as it runs, and its figures are saved to
benchmarks/out/results.json (results-quick.json in quick mode) when it finishes: a run
stopped half-way still leaves a table of what it measured. A run of every section starts
that file afresh; a run of some sections replaces only theirs. A section that fails is
recorded as failed, the others still run, and the exit code is 1.
"""

from __future__ import annotations

import subprocess
import sys
import time
import traceback

from benchmarks import figures, mode
from benchmarks.sections import SECTIONS

SUMMARY = "summary"


def commit() -> str:
    """The measured tree: short commit, with "+" when it has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], capture_output=True).returncode
    except (OSError, subprocess.CalledProcessError):
        return ""
    return head + ("+" if dirty else "")


def run_section(name: str) -> bool:
    """Run one section and save its figures (or its failure); whether it succeeded."""
    start = time.perf_counter()
    meta = {"commit": commit(), "quick": mode.QUICK}
    try:
        found = SECTIONS[name]()
    except Exception as exc:  # one failed section must not lose the others' figures
        traceback.print_exc()
        found, meta["error"] = [], f"{type(exc).__name__}: {exc}"[:300]
    meta["seconds"] = round(time.perf_counter() - start, 1)
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    figures.save(mode.RESULTS, name, found, **meta)
    print(f"({meta['seconds']:.0f} s)\n", flush=True)
    return "error" not in meta


def summary() -> str:
    """The final table of every saved section, in the sections' order."""
    lines = [f"== summary ({mode.RESULTS.name})"]
    if mode.QUICK:
        lines.append(f"QUICK mode ({mode.ENV}=1): small sizes; the targets are for the full sizes")
    lines.append(figures.table(figures.load(mode.RESULTS), list(SECTIONS)))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    chosen = argv or list(SECTIONS)
    unknown = [name for name in chosen if name not in SECTIONS and name != SUMMARY]
    if unknown:
        choices = ", ".join([*SECTIONS, SUMMARY])
        print(f"unknown section {unknown[0]!r}; choose from {choices}", file=sys.stderr)
        return 2
    if not argv:
        mode.RESULTS.unlink(missing_ok=True)  # a whole run: a table of this run only
    todo = [name for name in SECTIONS if name in chosen]
    if todo:
        from benchmarks import harness

        harness.compile_bytecode()
    failed = [name for name in todo if not run_section(name)]
    print(summary())
    if failed:
        print(f"failed sections: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
