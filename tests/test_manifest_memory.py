"""A big manifest is read as columns, not as a Python object per row.

`tracemalloc` sees Python objects and NumPy arrays (not Arrow's buffers). The peak of
`read_plan` is measured at two sizes and compared per added row, so fixed costs (the first
megabyte read for the header, caches filled on first use) cancel out. Today a row adds about
15-45 bytes to that peak (NumPy codes and positions; 42 B at 1M rows); a single column back
as Python strings adds ~93 (an 85-byte `str` for a snapshot id plus its 8-byte pointer), a
PlanEntry per row ~300. The bound, 70 bytes a row, leaves room for small changes and still
fails on either. No timing is involved.
"""

from __future__ import annotations

import tracemalloc
import uuid

import pandas as pd
import pytest
from manifest_helpers import NO_ENV

from batchtag.manifest import read_plan

SMALL, BIG = 20_000, 60_000  # both past the first megabyte the header is looked for in
BYTES_PER_ROW = 70
TICKETS = 1000  # distinct passthrough values, as in benchmarks/bench_memory.py


def _ids(n: int) -> list[str]:
    return [str(uuid.UUID(int=(i * 2654435761) << 64 | i, version=4)) for i in range(n)]


def _wide(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "snapshot_id": _ids(n),
            "tag:env": "bench",
            "ticket": [f"T-{i % TICKETS}" for i in range(n)],
        }
    )


def _long(n: int) -> pd.DataFrame:
    frame = _wide(n).rename(columns={"tag:env": "value"})
    return frame.assign(op="set", key="env")[["snapshot_id", "op", "key", "value", "ticket"]]


def _csv(frame: pd.DataFrame, path):
    frame.to_csv(path, index=False)
    return path


def _parquet(frame: pd.DataFrame, path):
    frame.to_parquet(path.with_suffix(".parquet"), index=False)
    return path.with_suffix(".parquet")


def _peak(source) -> int:
    tracemalloc.start()
    try:
        plan = read_plan(source, project_id=1, region_id=1, env=NO_ENV)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(plan) > 0
    return peak


@pytest.mark.parametrize(
    ("make", "write"),
    [(_wide, _csv), (_long, _csv), (_wide, _parquet), (_wide, lambda frame, path: frame)],
    ids=["wide-csv", "long-csv", "wide-parquet", "wide-dataframe"],
)
def test_reading_a_big_manifest_adds_no_python_object_per_row(tmp_path, make, write):
    small = write(make(SMALL), tmp_path / "small.csv")
    big = write(make(BIG), tmp_path / "big.csv")
    _peak(small)  # first use: caches, compiled patterns
    per_row = (_peak(big) - _peak(small)) / (BIG - SMALL)
    assert per_row < BYTES_PER_ROW
