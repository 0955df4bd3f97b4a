"""Full or quick mode, and where each mode keeps its results.

`BENCH_QUICK=1` runs every section with smaller sizes and fewer rounds: a check that each
section works end to end in minutes, not the 30-40 of a full run. Its figures are not the
issues' (the targets are set for the full sizes), so they are saved apart.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

ENV = "BENCH_QUICK"
QUICK = os.environ.get(ENV, "") not in ("", "0")
RESULTS = (
    Path(__file__).resolve().parent / "out" / ("results-quick.json" if QUICK else "results.json")
)


def pick(full: T, quick: T) -> T:
    """`full`, or `quick` when BENCH_QUICK is set.

    Examples
    --------
    >>> pick(1_000_000, 20_000) in (1_000_000, 20_000)
    True
    """
    return quick if QUICK else full


def label(count: int) -> str:
    """A size as the tables write it.

    Examples
    --------
    >>> label(1_000_000), label(100_000), label(12_800)
    ('1M', '100k', '12,800')
    """
    if count % 1_000_000 == 0:
        return f"{count // 1_000_000}M"
    if count % 1000 == 0 and count >= 10_000:
        return f"{count // 1000}k"
    return f"{count:,}"
