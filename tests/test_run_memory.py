"""What an apply run keeps per snapshot: plan positions found by a 16-byte key index, the
state read before sending in a spill file, resume's done-set as a mask. Each structure
answers as the dict or set it replaces would; none holds a Python object per snapshot."""

from __future__ import annotations

import gc
import tempfile
import tracemalloc
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from helpers import API_KEY, FullDisk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchtag.gcore import RateLimiter, VirtualClock
from batchtag.manifest import read_plan
from batchtag.model import (
    PlanEntry,
    PlanIndex,
    Snapshot,
    as_snapshot,
    id_bytes,
    iter_masked,
    keys_of,
    uuid_bytes,
)
from batchtag.read import NOT_READ, IdSet, PlanIdSet, Reader, State, read_state
from batchtag.record import scan_report
from batchtag.tabular import INT, NotColumnar, write_table
from batchtag.testing import FakeClient

pytestmark = pytest.mark.timeout(120)

UUIDS = [str(uuid.UUID(int=(i * 0x9E3779B97F4A7C15) % 2**128)) for i in range(1, 7)]
IDS = st.one_of(
    st.sampled_from(UUIDS),
    st.sampled_from(UUIDS).map(str.upper),
    st.sampled_from(["snap-a", "SNAP-A", "b", ""]),
)
SCOPES = st.sampled_from([(1, 1), (1, 2), (3, 1)])
KEYS = st.tuples(SCOPES, IDS)
# the fixtures used with hypothesis here only set a constant: the same for every example
FIXTURES_OK = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def folded(snapshot_id: str) -> str:
    """The identity the reader and the API use: a UUID in either case (its text is
    canonical), any other id exactly (`snap-a` is not `SNAP-A`)."""
    return snapshot_id.lower() if uuid_bytes(snapshot_id) else snapshot_id


def plan_of(keys: list[tuple[tuple[int, int], str]]) -> list[PlanEntry]:
    return [PlanEntry(p, r, sid) for (p, r), sid in keys]


@FIXTURES_OK
@given(
    keys=st.lists(KEYS, max_size=30),
    probes=st.lists(KEYS, max_size=20),
    bulk=st.sampled_from([1, 1 << 14]),
)
def test_the_index_finds_positions_as_a_dict_of_the_plan_would(keys, probes, bulk, monkeypatch):
    """One key at a time, and many at once (searched by their 8-byte prefix first: the
    UUIDs here share theirs, so the whole keys decide)."""
    monkeypatch.setattr("batchtag.model._index.BULK", bulk)
    first: dict = {}
    for position, (scope, sid) in enumerate(keys):
        first.setdefault((scope, folded(sid)), position)
    index = PlanIndex.of(plan_of(keys))
    plan_keys = keys_of([sid for _, sid in keys])
    assert index.order.tolist() == np.argsort(plan_keys, kind="stable").tolist()
    for scope, sid in probes:
        found = index.positions(scope, keys_of([sid]))[0]
        assert found == first.get((scope, folded(sid)), -1)
    for scope in {scope for scope, _ in probes}:
        found = index.positions(scope, keys_of([sid for _, sid in probes])).tolist()
        assert found == [first.get((scope, folded(sid)), -1) for _, sid in probes]


SNAPSHOTS = st.one_of(
    st.none(),
    st.builds(
        lambda name, tags: {"name": name, "task_id": None, "tags": tags},
        st.text(max_size=5),
        st.lists(
            st.builds(
                lambda k, v, ro: {"key": k, "value": v, "read_only": ro},
                st.text(min_size=1, max_size=4),
                st.text(min_size=1, max_size=4),
                st.booleans(),
            ),
            max_size=3,
        ),
    ),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    size=st.integers(1, 12),
    puts=st.lists(st.tuples(st.integers(0, 11), SNAPSHOTS), max_size=20),
    asks=st.lists(st.tuples(st.integers(0, 11), st.booleans()), max_size=30),
)
def test_the_state_answers_as_a_dict_would(size, puts, asks, monkeypatch_spill_buffer):
    entries = [PlanEntry(1, 1, UUIDS[i % 6] if i < 6 else f"s-{i}") for i in range(size)]
    state = State(PlanIndex.of(entries))
    model: dict[int, Snapshot | None] = {}
    for position, snapshot in puts:
        if position < size:
            state.put(position, snapshot)
            model[position] = as_snapshot(snapshot)
    state.finish()
    for position, forget in asks:
        if position >= size:
            continue
        entry = entries[position]
        got = state.take(entry) if forget else state.peek(entry)
        want = (model.pop if forget else model.get)(position, NOT_READ)
        assert got == want if want is not NOT_READ else got is NOT_READ
        assert len(state) == len(model)
    state.close()


def test_the_state_widens_its_offsets_when_the_spill_outgrows_them(monkeypatch):
    """Offsets of one byte (as if 32 GiB were 2 KiB): past them, every answer is the same."""
    monkeypatch.setattr("batchtag.read._state.OFFSETS", np.dtype(np.uint8))
    size = 300
    entries = [PlanEntry(1, 1, f"s-{i}") for i in range(size)]
    state = State(PlanIndex.of(entries))
    snapshots = [{"name": f"n{i}", "task_id": None, "tags": []} for i in range(size)]
    state.put_missing(np.array([0, 1]))
    for position in range(2, size):
        state.put(position, snapshots[position])
    state.finish()
    assert state.peek(entries[0]) is None and state.take(entries[1]) is None
    assert [state.take(entries[i]) for i in range(2, size)] == [
        Snapshot.from_wire(s) for s in snapshots[2:]
    ]
    assert len(state) == 1 and state.take(entries[5]) is NOT_READ
    state.close()


@pytest.fixture
def monkeypatch_spill_buffer(monkeypatch):
    """A tiny write buffer, so records are read back from the file as well as the buffer."""
    monkeypatch.setattr("batchtag.memory.SPILL_BUFFER", 64)


@FIXTURES_OK
@given(batches=st.lists(st.lists(st.sampled_from(UUIDS + ["x", "y", "X"]), max_size=8)))
def test_an_id_set_is_a_set(batches, monkeypatch_id_set_merge):
    seen = IdSet()
    model: set[str] = set()
    for batch in batches:
        new = seen.add(keys_of(batch)).tolist()
        want = []
        for sid in batch:
            want.append(folded(sid) not in model)
            model.add(folded(sid))
        assert new == want and len(seen) == len(model)


@pytest.fixture
def monkeypatch_id_set_merge(monkeypatch):
    monkeypatch.setattr(IdSet, "MERGE", 3)


@FIXTURES_OK
@given(
    plan_keys=st.lists(KEYS, max_size=12),
    scope=SCOPES,
    batches=st.lists(st.lists(IDS, max_size=8), max_size=6),
)
def test_an_id_set_over_a_plan_is_a_set(plan_keys, scope, batches, monkeypatch_id_set_merge):
    """Ids the plan has in the scope (marked by position) and others (kept as keys) alike."""
    seen = PlanIdSet(PlanIndex.of(plan_of(plan_keys)), scope)
    model: set[str] = set()
    for batch in batches:
        want = []
        for sid in batch:
            want.append(folded(sid) not in model)
            model.add(folded(sid))
        assert seen.add(keys_of(batch)).tolist() == want and len(seen) == len(model)


REPORT_ROWS = st.lists(
    st.tuples(KEYS, st.sampled_from(["ok", "noop", "failed", "skipped", "not_found"])),
    max_size=25,
)


def refuse(*args, **kwargs):
    raise NotColumnar("pyarrow cannot read it")


@FIXTURES_OK
@given(
    plan_keys=st.lists(KEYS, max_size=12, unique_by=lambda k: (k[0], folded(k[1]))),
    rows=REPORT_ROWS,
    chunk=st.integers(1, 5),
    suffix=st.sampled_from([".csv", ".jsonl", ".parquet"]),
    columnar=st.booleans(),
)
def test_the_done_mask_is_each_snapshots_latest_status(
    plan_keys, rows, chunk, suffix, columnar, monkeypatch
):
    """Read by pyarrow a batch at a time, or by the row readers (what pyarrow cannot read)
    a chunk of rows at a time: the latest row of each snapshot counts, in every format."""
    latest: dict = {}
    for (scope, sid), status in rows:
        latest[(scope, folded(sid))] = status
    columns = ["project_id", "region_id", "snapshot_id", "status"]
    records = [
        dict(zip(columns, [p, r, sid, status], strict=True)) for ((p, r), sid), status in rows
    ]
    records = [r for r in records if r["snapshot_id"]]  # an empty id cannot be written
    latest = {k: s for k, s in latest.items() if k[1]}
    with tempfile.TemporaryDirectory() as folder, monkeypatch.context() as patch:
        patch.setattr("batchtag.record._resume.CHUNK", chunk)  # rows read at once
        patch.setattr("batchtag.tabular._columns.BLOCK", 160 + 64 * chunk)  # bytes parsed at once
        if not columnar:
            patch.setattr("batchtag.record._resume.read_columns", refuse)
        path = Path(folder) / f"report{suffix}"
        write_table(path, columns, records, {"project_id": INT, "region_id": INT})
        scan = scan_report(path, PlanIndex.of(plan_of(plan_keys)))
    assert scan.columnar == columnar
    want = [latest.get((scope, folded(sid))) in ("ok", "noop") for scope, sid in plan_keys]
    assert scan.done.tolist() == want


@settings(max_examples=30, deadline=None)
@given(mask=st.lists(st.booleans(), max_size=40))
def test_pending_entries_are_the_masked_ones_in_plan_order(mask):
    frame = pd.DataFrame({"snapshot_id": [str(uuid.UUID(int=i + 1)) for i in range(len(mask))]})
    frame["tag:k"] = "v"
    if not len(frame):
        return
    plan = read_plan(frame, project_id=1, region_id=1)
    chosen = np.array(mask, dtype=bool)
    got = [e.snapshot_id for e in iter_masked(plan.entries, chosen)]
    assert got == [e.snapshot_id for e, m in zip(plan.entries, mask, strict=True) if m]


def test_what_a_read_holds_per_snapshot_is_a_few_bytes():
    """10k snapshots read before sending, a resume's mask: < 8 bytes a snapshot in all, the
    read's offsets (4) and the mask (1), traced from after the plan and its index were made
    (offsets and sizes held 12 before, a dict of compact tuples ~150-250, a set of key
    tuples ~250)."""
    size = 10_000
    client = FakeClient(clock=VirtualClock(), snapshots=size)
    frame = pd.DataFrame({"snapshot_id": client.store.ids(), "tag:env": "x"})
    plan = read_plan(frame, project_id=1, region_id=1)
    PlanIndex.of(plan.entries)  # the plan's, made once: not the read's
    clock = client.clock

    async def read() -> State:
        limiter = RateLimiter(1000, clock=clock.monotonic, sleep=clock.sleep)
        reader = Reader(client, concurrency=4, limiter=limiter, sleep=clock.sleep)
        return await read_state(reader, plan.entries, True, pending=pending)

    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        pending = ~np.zeros(size, dtype=bool)
        state = clock.run(read())
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert state.read == size and len(state) == size and pending.all()
    assert held / size < 8, f"{held / size:.1f} bytes a snapshot"
    state.close()


def test_a_full_disk_while_keeping_the_state_aborts_with_nothing_sent(
    sandbox, tmp_path, monkeypatch
):
    import batchtag
    from batchtag.errors import AbortRun

    monkeypatch.setattr("tempfile.TemporaryFile", FullDisk)
    ids = sandbox.store.ids()[:50]
    frame = pd.DataFrame({"snapshot_id": ids, "tag:k1": "new"})
    with pytest.raises(AbortRun) as error:
        batchtag.apply(
            frame,
            report=tmp_path / "r.csv",
            base_url=sandbox.base_url,
            api_key=API_KEY,
            project_id=1,
            region_id=1,
            check_current=True,
        )
    assert "No space left on device" in str(error.value)
    assert tempfile.gettempdir() in str(error.value)
    assert sandbox.stats()["endpoints"].get("patch", 0) == 0
    assert set(error.value.report.status) == {"skipped"}


OLD_COLUMNS = (  # a report of an earlier version: before name_before, ro_tags, request_body
    "project_id,region_id,snapshot_id,status,http_status,attempts,error_class,error,"
    "request_id,started_at,finished_at,elapsed_ms,tags_before,tags_after,rows"
)


def test_resume_of_a_report_written_by_an_earlier_version(sandbox, tmp_path):
    """Its ok/noop rows (the latest per snapshot) are skipped, everything else is sent."""
    import batchtag
    from batchtag.record import write_meta

    ids = sandbox.store.ids()[:6]
    frame = pd.DataFrame({"snapshot_id": ids, "tag:k1": "new"})
    plan = read_plan(frame, project_id=1, region_id=1)
    report = tmp_path / "old.csv"
    row = "1,1,{},{},200,1,,,,,,,,,[{}]"
    rows = [row.format(ids[0], "ok", 1), row.format(ids[1], "noop", 2)]
    rows += [row.format(ids[2], "failed", 3), row.format(ids[2], "ok", 3)]  # retried: done
    rows += [row.format(ids[3], "ok", 4), row.format(ids[3], "failed", 4)]  # latest: failed
    rows += [row.format(ids[4].upper(), "failed", 5)]
    report.write_text("\n".join([OLD_COLUMNS, *rows]) + "\n")
    write_meta(report, {"fingerprint": plan.fingerprint(), "resumed_at": []})
    before = {sid: dict(sandbox.store.find(1, 1, sid).tags) for sid in ids}
    result = batchtag.apply(
        frame,
        resume=report,
        base_url=sandbox.base_url,
        api_key=API_KEY,
        project_id=1,
        region_id=1,
        check_current=False,
    )
    sent = {c for c in ids if sandbox.store.find(1, 1, c).tags.get("k1") == "new"}
    assert sent == set(ids[3:])  # not the three the report has as done
    assert all(dict(sandbox.store.find(1, 1, s).tags) == before[s] for s in ids[:3])
    assert result.attrs["summary"]["already_done"] == 3


@settings(max_examples=100, deadline=None)
@given(
    ids=st.lists(
        st.one_of(
            st.sampled_from(UUIDS),
            st.sampled_from(UUIDS).map(str.upper),
            st.text(alphabet="0123456789abcdef- ", min_size=36, max_size=36),
            st.text(max_size=8),
        ),
        max_size=6,
    )
)
def test_keys_of_a_page_are_each_ids_key(ids):
    """The one-`fromhex` path for a page of UUIDs gives each id's own key, and anything
    that is not a UUID (blanks, misplaced dashes, other text) its digest."""
    assert keys_of(ids).tobytes() == b"".join(id_bytes(i) for i in ids)


@settings(max_examples=80, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 3), min_size=1, max_size=12),
    first=st.integers(0, 5),
    shuffle=st.booleans(),
    scopes=st.sampled_from([[(1, 1)], [(1, 1), (2, 1)]]),
)
def test_plan_entries_give_back_their_rows_and_scopes(lengths, first, shuffle, scopes):
    """Rows held as a first row (one row an entry, counting up) or as arrays, scope and
    state codes held once or per entry: every entry is what the columns said."""
    from batchtag.manifest import PlanEntries
    from batchtag.model import EMPTY

    count = len(lengths)
    rows = list(range(first, first + sum(lengths)))
    if shuffle:
        rows.reverse()
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    pairs = [scopes[i % len(scopes)] for i in range(count)]
    entries = PlanEntries(
        projects=np.array([p for p, _ in pairs]),
        regions=np.array([r for _, r in pairs]),
        snapshots=pa.array(UUIDS[:1] * count),
        state_codes=np.zeros(count, dtype=np.int64),
        states=[(EMPTY, False, EMPTY)],
        names=None,
        row_ids=np.array(rows, dtype=np.int64),
        row_bounds=bounds,
        extra_codes=np.arange(count) % 2,
        extras=[EMPTY, EMPTY],
    )
    want = [rows[bounds[i] : bounds[i + 1]] for i in range(count)]
    assert [e.rows for e in entries] == want and [e.rows for e in entries[1:]] == want[1:]
    assert [(e.project_id, e.region_id) for e in entries] == pairs
    assert entries.scopes() == {s: pairs.count(s) for s in scopes if s in pairs}
