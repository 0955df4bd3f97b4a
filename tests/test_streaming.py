"""Apply sends while it reads the state (batchtag.read._feed): the first PATCH goes out before the
listing ends, the outcome is the one a read-first run has, and a read that fails or an
interrupt mid-read still leave a complete report."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import numpy as np
import pandas as pd
import pytest
from aiohttp import web
from apply_runs import endpoints, run, sets, user_state, with_user_tags
from helpers import SID, patches, scope_of, wait_until
from hypothesis import given
from hypothesis import strategies as st

from batchtag.commands import ApplyOptions, run_apply
from batchtag.errors import AbortRun, UsageError
from batchtag.manifest import read_plan
from batchtag.read import NOT_YET, EntryFeed
from batchtag.record import read_report
from batchtag.sandbox.stats import Stats

pytestmark = pytest.mark.timeout(120)
PAGES = 2_500  # snapshots: three list pages
HOLD = 20.0  # seconds a held list page waits at most (a deadline, never reached when passing)


class OrderedStats(Stats):
    """The sandbox's counters, plus the order requests came in and were answered."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, str, str | None]] = []  # (enter/leave, method, key)
        self.patch_in = asyncio.Event()  # a PATCH came in
        self.patch_out = asyncio.Event()  # a PATCH was answered
        self._methods: dict[str | None, str] = {}

    def enter(self, method: str, key: str | None) -> None:
        super().enter(method, key)
        self.log.append(("enter", method, key))
        self._methods[key] = method
        if method == "PATCH":
            self.patch_in.set()

    def leave(self, key: str | None, outcome: str) -> None:
        super().leave(key, outcome)
        method = self._methods.get(key, "GET")
        self.log.append(("leave", method, key))
        if method == "PATCH":
            self.patch_out.set()

    def first(self, what: str, method: str, list_only: bool = False) -> int:
        return next(i for i, e in enumerate(self.log) if self._is(e, what, method, list_only))

    def last(self, what: str, method: str, list_only: bool = False) -> int:
        return max(i for i, e in enumerate(self.log) if self._is(e, what, method, list_only))

    @staticmethod
    def _is(event: tuple, what: str, method: str, list_only: bool) -> bool:
        return event[:2] == (what, method) and (event[2] is None or not list_only)


Hold = Callable[[OrderedStats], Awaitable[None]]


def hold_list_pages(sandbox, hold: Hold) -> OrderedStats:
    """Every list page after the first waits for `hold(stats)` before it is served; the
    request order is logged. The sandbox must have a latency (its hook is the latency's)."""
    stats = OrderedStats()
    lists = 0

    async def latency(seconds: float) -> None:
        nonlocal lists
        _, method, key = stats.log[-1]  # the request asking: entered just before, unawaited
        if method == "GET" and key is None:
            lists += 1
            if lists > 1:
                await hold(stats)

    async def install() -> None:
        sandbox.state.stats = stats
        sandbox.state.sleep = latency

    sandbox.call(install())
    return stats


async def until_a_patch_came_in(stats: OrderedStats) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stats.patch_in.wait(), HOLD)


# ---------------------------------------------------------------- sends start early


def test_the_first_patch_goes_out_before_the_last_list_page_is_served(make_sandbox, tmp_path):
    sandbox = make_sandbox(snapshots=PAGES, latency_ms=1)
    ids = sandbox.store.ids()
    stats = hold_list_pages(sandbox, until_a_patch_came_in)
    report = run(sandbox, sets(ids[::2]), tmp_path)
    assert stats.first("enter", "PATCH") < stats.last("leave", "GET", list_only=True)
    assert endpoints(sandbox) == {"list": 3, "get": 0, "patch": len(ids[::2])}
    assert set(report.status) == {"ok"} and len(report) == len(ids[::2])
    summary = report.attrs["summary"]
    assert summary["state_read"] == {"snapshots": len(ids[::2]), "requests": 3}


def mixed_manifest(sandbox) -> pd.DataFrame:
    """Over three pages: changes, no-ops, a rename, a clear + set, an id the scope lacks."""
    ids = sandbox.store.ids()
    tagged = with_user_tags(sandbox, 4)
    same, renamed, replaced = tagged[0], tagged[1], tagged[2]
    tags, _ = user_state(sandbox, same)
    key = sorted(tags)[0]
    shuffled = np.random.default_rng(1).permutation(ids[::3]).tolist()  # not listing order
    rows = [{"snapshot_id": s, "op": "set", "key": "k1", "value": "new"} for s in shuffled]
    rows += [
        {"snapshot_id": same, "op": "set", "key": key, "value": tags[key]},
        {
            "snapshot_id": renamed,
            "op": "rename",
            "key": sorted(user_state(sandbox, renamed)[0])[0],
            "value": "moved",
        },
        {"snapshot_id": replaced, "op": "clear"},
        {"snapshot_id": replaced, "op": "set", "key": "k2", "value": "only"},
        {"snapshot_id": SID, "op": "set", "key": "k1", "value": "v"},
    ]
    return pd.DataFrame(rows)


COMPARED = [
    "snapshot_id",
    "status",
    "tags_before",
    "tags_after",
    "name_before",
    "name_after",
    "ro_tags",
    "request_body",
    "error_class",
]


def test_streaming_ends_as_reading_first_does(make_sandbox, tmp_path):
    streamed, first = make_sandbox(snapshots=PAGES), make_sandbox(snapshots=PAGES)
    manifest = mixed_manifest(streamed)
    a = run(streamed, manifest, tmp_path, "streamed")
    b = run(first, manifest, tmp_path, "first", max_changes="100%")  # a guard: reads first
    assert streamed.stats()["total_requests"] + 1 == first.stats()["total_requests"]  # count
    rows = [r[COMPARED].sort_values("snapshot_id").reset_index(drop=True) for r in (a, b)]
    pd.testing.assert_frame_equal(*rows)
    assert {"ok", "noop", "not_found"} == set(a.status)
    for sid in streamed.store.ids():
        assert user_state(streamed, sid) == user_state(first, sid)


async def serve_at_once(stats: OrderedStats) -> None:
    return None


def lists_in_flight(stats: OrderedStats) -> list[int]:
    """The list pages in flight after each logged event."""
    count, counts = 0, []
    for what, method, key in stats.log:
        if method == "GET" and key is None:
            count += 1 if what == "enter" else -1
        counts.append(count)
    return counts


def test_the_read_keeps_pace_with_the_sends_instead_of_running_ahead(make_sandbox, tmp_path):
    sandbox = make_sandbox(snapshots=7_000, latency_ms=1)  # seven list pages
    ids = sandbox.store.ids()
    stats = hold_list_pages(sandbox, serve_at_once)  # (only to log the order)
    report = run(sandbox, sets(ids), tmp_path, rate=5000)
    assert set(report.status) == {"ok"} and len(report) == len(ids)
    assert endpoints(sandbox) == {"list": 7, "get": 0, "patch": len(ids)}
    # From the first page's entries on, at most two pages at once (no burst just before the
    # engine starts), and the pages wait while two pages' worth are ready ahead of the
    # sends: the last page is asked for only once a good part of the first ones went out.
    assert max(lists_in_flight(stats)[stats.first("leave", "GET", list_only=True) :]) <= 2
    last_page = stats.last("enter", "GET", list_only=True)
    patched = sum(
        1 for what, method, _ in stats.log[:last_page] if (what, method) == ("enter", "PATCH")
    )
    assert patched >= 1_000


# ---------------------------------------------------------------- guards read first


def test_max_changes_reads_everything_and_refuses_before_any_patch(make_sandbox, tmp_path):
    sandbox = make_sandbox(snapshots=PAGES)
    with pytest.raises(AbortRun, match="would change 2500 snapshots, more than max_changes"):
        run(sandbox, sets(sandbox.store.ids()), tmp_path, max_changes="10")
    assert endpoints(sandbox) == {"list": 3, "get": 0, "patch": 0}


def test_a_scope_that_does_not_exist_is_exit_2_with_no_report(sandbox, tmp_path):
    with pytest.raises(UsageError, match="project_id=7, region_id=1: no such project/region"):
        run(sandbox, sets(sandbox.store.ids()[:5]), tmp_path, project_id=7)
    assert not (tmp_path / "r.csv").exists()
    assert patches(sandbox) == 0


# ---------------------------------------------------------------- stops mid-read


async def fail_after_a_patch_was_answered(stats: OrderedStats) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stats.patch_out.wait(), HOLD)
    raise web.HTTPServiceUnavailable(text='{"message": "down"}', content_type="application/json")


def test_a_read_failing_mid_way_reports_every_snapshot(make_sandbox, tmp_path):
    sandbox = make_sandbox(snapshots=PAGES, latency_ms=1)
    ids = sandbox.store.ids()
    hold_list_pages(sandbox, fail_after_a_patch_was_answered)
    with pytest.raises(AbortRun, match="reading the state: .*503") as error:
        run(sandbox, sets(ids), tmp_path, retries=0)
    report = error.value.report
    assert sorted(report.snapshot_id) == sorted(ids)  # every snapshot, once
    counts = report.status.value_counts().to_dict()
    assert set(counts) == {"ok", "skipped"} and 0 < counts["ok"] <= 1000  # from page one
    assert report.attrs["summary"]["exit_code"] == 3
    for sid, status in zip(report.snapshot_id, report.status, strict=True):
        assert (user_state(sandbox, sid)[0].get("k1") == "new") == (status == "ok")


def test_an_interrupt_mid_read_leaves_a_complete_report_that_resumes(make_sandbox, tmp_path):
    sandbox = make_sandbox(snapshots=PAGES, latency_ms=1)
    ids = sandbox.store.ids()
    released = asyncio.Event()

    async def until_released(stats: OrderedStats) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(released.wait(), HOLD)

    stats = hold_list_pages(sandbox, until_released)
    manifest = sets(ids)
    options = ApplyOptions(**scope_of(sandbox, report=tmp_path / "r.csv", concurrency=8))
    try:
        outcome = asyncio.run(interrupted_once_patched(sandbox, manifest, options))
        served = [event for event in stats.log if event[0] == "leave" and event[2] is None]
    finally:
        sandbox.loop.call_soon_threadsafe(released.set)
    assert len(served) == 1  # the first page only: the run stopped while reading
    assert outcome.exit_code == 130
    first = read_report(tmp_path / "r.csv")
    assert sorted(first.snapshot_id) == sorted(ids)
    assert set(first.status) == {"ok", "skipped"}
    sent = patches(sandbox)
    done = run(sandbox, manifest, tmp_path, resume=tmp_path / "r.csv")
    assert sorted(done.snapshot_id) == sorted(ids) and set(done.status) == {"ok"}
    assert patches(sandbox) == sent + (first.status == "skipped").sum()
    assert all(user_state(sandbox, sid)[0]["k1"] == "new" for sid in ids)


async def interrupted_once_patched(sandbox, manifest, options):
    """`run_apply`, interrupted (as by Ctrl-C) once the sandbox answered a PATCH."""
    engines: list = []
    task = asyncio.create_task(run_apply(manifest, options, on_engine=engines.append))
    await asyncio.to_thread(wait_until, lambda: patches(sandbox) > 0, 60, "a PATCH")
    engines[0].interrupt()
    return await task


# ---------------------------------------------------------------- the feed


@st.composite
def announcements(draw):
    """A plan size, the pending mask, and the order its positions become ready (in chunks),
    with `next` calls in between and perhaps a stop somewhere."""
    size = draw(st.integers(0, 60))
    pending = np.array(draw(st.lists(st.booleans(), min_size=size, max_size=size)), dtype=bool)
    order = draw(st.permutations(np.flatnonzero(pending).tolist()))
    cuts = sorted(draw(st.lists(st.integers(0, len(order)), max_size=6)))
    chunks = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)]
    takes = draw(st.lists(st.integers(0, 8), min_size=len(chunks), max_size=len(chunks)))
    stop = draw(st.none() | st.integers(0, len(chunks)))
    return size, pending, chunks, takes, stop


class Consumer:
    stopping = False

    def refill(self) -> None:
        pass


UUIDS = [f"00000000-0000-4000-8000-{i:012x}" for i in range(60)]
PLAN = read_plan(pd.DataFrame({"snapshot_id": UUIDS, "tag:k": "v"}), project_id=1, region_id=1)
POSITION = {sid: i for i, sid in enumerate(UUIDS)}


@given(announcements())
def test_the_feed_hands_out_each_pending_entry_once(case):
    size, pending, chunks, takes, stop = case
    mask = np.zeros(len(UUIDS), dtype=bool)
    mask[:size] = pending
    feed, consumer = EntryFeed(PLAN.entries, mask), Consumer()  # columnar entries
    feed.attach(consumer)
    handed: list[int] = []
    ready: list[int] = []
    for i, (chunk, take) in enumerate(zip(chunks, takes, strict=True)):
        if i == stop:
            consumer.stopping = True  # the engine stopped: the rest comes out at once
            break
        feed.announce(np.array(chunk, dtype=np.int64))
        ready += sorted(chunk)
        for _ in range(take):
            entry = next(feed)
            if entry is NOT_YET:
                assert handed == ready  # nothing ready is held back
                break
            handed.append(POSITION[entry.snapshot_id])
    else:
        feed.close()  # the read is over
    handed += [POSITION[entry.snapshot_id] for entry in feed]
    assert sorted(handed) == np.flatnonzero(pending).tolist()  # each once
    if stop is None:  # announcement by announcement, in plan order within each
        assert handed == [p for chunk in chunks for p in sorted(chunk)]
