"""The plan diff's rows are held columnar: no Python object per changed snapshot, and the
frame, the records, the printed plan and the -o files are the same as built from rows."""

from __future__ import annotations

import gc
import random
import tracemalloc

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchtag.diff import CHUNK, DiffCollector, render_plan, write_diff
from batchtag.model import PlanEntry, as_snapshot
from batchtag.record import CHANGE_KINDS
from batchtag.tabular import STR, read_table, str_dtype, write_table

BYTES_PER_ROW = 120  # a row as Python list cells was ~300 bytes (10 cells, strings, lists)


def sid(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-{i:012x}"


def snapshot(i: int) -> dict:
    return {"name": f"db-{i}", "task_id": None, "tags": [{"key": "env", "value": f"v{i}"}]}


def held(collector: DiffCollector, changed: int) -> int:
    """Bytes held after `changed` snapshots each got one changed tag (Python heap plus
    every Arrow pool)."""
    gc.collect()
    before = _allocated()
    for i in range(changed):
        entry = PlanEntry(1, 1, sid(i), tags={"env": "prod"}, rows=[i + 1])
        collector.add(entry, as_snapshot(snapshot(i)), position=i)
    gc.collect()
    return _allocated() - before


def _allocated() -> int:
    pools = pa.total_allocated_bytes() + pa.system_memory_pool().bytes_allocated()
    return tracemalloc.get_traced_memory()[0] + pools


def test_diff_rows_cost_bytes_not_python_objects(monkeypatch):
    chunk = CHUNK // 8  # smaller chunks: the same bytes per row, an eighth of the rows
    monkeypatch.setattr("batchtag.diff._store.CHUNK", chunk)
    small, large = 2 * chunk, 6 * chunk  # whole chunks: nothing left as pending lists
    tracemalloc.start()
    try:
        kept = [DiffCollector(), DiffCollector()]
        at_small = held(kept[0], small)
        at_large = held(kept[1], large)
    finally:
        tracemalloc.stop()
    per_row = (at_large - at_small) / (large - small)
    assert per_row <= BYTES_PER_ROW, f"{per_row:.0f} bytes per diff row"
    assert at_large / large <= BYTES_PER_ROW, f"{at_large / large:.0f} bytes per diff row"
    assert len(kept[1].finish()) == large


def pairs(count: int, seed: int):
    """Mixed pairs (changes, noops, not found, passthrough of two kinds) in shuffled
    arrival order, with their plan positions."""
    rng = random.Random(seed)
    made = []
    for i in range(count):
        tags = {"env": rng.choice(["prod", "dev", None]), "tmp": rng.choice([None, "x"])}
        extra = {"ticket": rng.choice([f"T-{i}", None]), "owner": rng.choice([i, "ops", None])}
        entry = PlanEntry(1, 1 + i % 2, sid(i), tags=tags, rows=[i + 1, i + 2], extra=extra)
        current = None if i % 7 == 0 else snapshot(i)
        made.append((entry, current, i))
    rng.shuffle(made)
    return made


def collect(made, spill: bool = False) -> DiffCollector:
    collector = DiffCollector(["ticket", "owner"], spill=spill)
    for entry, current, position in made:
        collector.add(entry, as_snapshot(current), position)
    return collector


@pytest.mark.parametrize("spill", [False, True])
def test_columnar_diff_reads_back_exactly_in_plan_order(monkeypatch, spill):
    monkeypatch.setattr("batchtag.diff._store.CHUNK", 64)  # many chunks, a mixed column
    made = pairs(500, seed=3)
    diff = collect(made, spill).finish()
    frame = collect(made).frame()
    records = list(diff.records(batch=37))
    assert len(records) == len(diff) == len(frame)
    cells = frame.astype(object).where(frame.notna(), None)  # string-dtype NaN: None
    assert records == cells.to_dict("records")
    assert [r["snapshot_id"] for r in records] == sorted(r["snapshot_id"] for r in records)
    assert {type(r["owner"]) for r in records} == {int, str, type(None)}
    assert all(type(r["rows"]) is list for r in records)
    assert str(frame["project_id"].dtype) == "Int64" and frame["key"].dtype == str_dtype()
    assert render_plan(diff, limit=5) == render_plan(frame, limit=5)
    assert render_plan(diff, limit=1000) == render_plan(frame, limit=1000)


@pytest.mark.parametrize("spill", [False, True])
@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_written_diff_is_the_frame_written_row_by_row(tmp_path, monkeypatch, suffix, spill):
    monkeypatch.setattr("batchtag.diff._store.CHUNK", 64)
    monkeypatch.setattr("batchtag.diff._store.BATCH", 40)  # spilled: buckets of plan order
    monkeypatch.setattr("batchtag.diff._write.GROUP", 50)  # several Parquet row groups
    made = pairs(300, seed=5)
    frame = collect(made).frame()
    assert len(frame) > 50
    ours, rows = tmp_path / f"ours{suffix}", tmp_path / f"rows{suffix}"
    write_diff(collect(made, spill).finish(), ours)
    kinds = {c: CHANGE_KINDS.get(c, STR) for c in frame.columns[:10]}
    write_table(rows, list(frame.columns), frame.to_dict("records"), kinds)
    if suffix == ".parquet":
        assert pq.read_schema(ours) == pq.read_schema(rows)
        assert pq.ParquetFile(ours).metadata.num_row_groups > 1
        assert read_table(ours) == read_table(rows)
    else:
        assert ours.read_bytes() == rows.read_bytes()


def test_an_empty_diff_writes_a_header_or_an_empty_table(tmp_path):
    diff = DiffCollector(["ticket"]).finish()
    for suffix in (".csv", ".parquet", ".jsonl"):
        write_diff(diff, tmp_path / f"d{suffix}")
        assert read_table(tmp_path / f"d{suffix}")[1] == []
    assert (tmp_path / "d.csv").read_text().startswith("project_id,region_id,snapshot_id")
    assert pq.read_schema(tmp_path / "d.parquet").names[-1] == "ticket"


@pytest.mark.parametrize("shuffled", [False, True])
def test_a_spilled_diff_of_text_cells_is_read_back_in_plan_order(monkeypatch, shuffled):
    """Every passthrough cell text: the rows stay in the temporary file (none held) and
    come back as the in-memory diff gives them, in order or sorted into plan order."""
    monkeypatch.setattr("batchtag.diff._store.CHUNK", 64)
    monkeypatch.setattr("batchtag.diff._store.BATCH", 40)
    made = [(e, c, p) for e, c, p in pairs(400, seed=7)]
    for entry, _, _ in made:
        entry.extra["owner"] = str(entry.extra["owner"])
    if not shuffled:
        made.sort(key=lambda pair: pair[2])
    held, spilled = collect(made).finish(), collect(made, spill=True).finish()
    assert type(spilled) is not type(held)  # nothing came back to memory
    assert list(spilled.records(batch=33)) == list(held.records())
    assert spilled.frame().equals(held.frame())
    assert render_plan(spilled, limit=7) == render_plan(held, limit=7)
