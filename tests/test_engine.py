"""The spec's response table in virtual time: the engine over FakeClient on a VirtualClock.

Minutes of locks, Retry-After pauses and timeouts run in milliseconds, so these tests assert
exact attempt counts and the exact (virtual) times at which each attempt was sent. Jitter is
pinned to its upper bound (tenacity) or to zero (the limiter's Retry-After stretch).
End-to-end runs over real HTTP live in test_engine_http.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import pytest
from engine_runs import fake, known, run, sets, times, top_of_jitter  # noqa: F401 (autouse fixture)
from hypothesis import given, settings
from hypothesis import strategies as st

from batchtag.errors import ApiError
from batchtag.gcore import RetrySettings, VirtualClock
from batchtag.model import PlanEntry
from batchtag.testing import FakeClient

pytestmark = pytest.mark.timeout(30)


def test_ok_keeps_the_returned_user_tags_and_changes_the_store():
    client = fake()
    ids = client.store.ids()[:10]
    _, results = run(client, sets(ids, "cost-center", "cc-7"))
    assert {r.status for r in results.values()} == {"ok"}
    assert all(r.tags_after["cost-center"] == "cc-7" for r in results.values())
    assert all(client.store.find(1, 1, sid).tags["cost-center"] == "cc-7" for sid in ids)
    assert {r.attempts for r in results.values()} == {1}


def test_a_lock_that_clears_is_retried_on_its_own_backoff():
    client = fake(lock_rate=1.0, lock_ms=2500)  # clears 2.5 s after the first touch
    sid = client.store.ids()[0]
    engine, results = run(client, sets([sid]))
    assert results[sid].status == "ok" and results[sid].attempts == 3
    assert times(client, sid) == [0.0, 1.0, 3.0]  # waits 1 s, then 2 s
    assert [c.outcome for c in client.calls(sid)] == ["409", "409", "200"]
    assert engine.retries == ["lock", "lock"]


def test_a_lock_that_never_clears_fails_when_its_budget_is_spent():
    client = fake(lock_rate=1.0, lock_ms=10**9)
    sid = client.store.ids()[0]
    _, results = run(client, sets([sid]), retry=RetrySettings(lock_budget=10))
    result = results[sid]
    assert (result.status, result.http_status, result.error_class) == (
        "failed",
        409,
        "ConflictError",
    )
    assert times(client, sid) == [0.0, 1.0, 3.0, 7.0, 15.0]  # 15 s > the 10 s budget
    assert result.elapsed_ms == 15000.0


def test_a_locked_snapshot_does_not_slow_the_others():
    client = fake(lock_rate=0.5, lock_ms=5000)
    locked = [s.id for s in client.store.snapshots() if s.task_id][:3]
    free = [s.id for s in client.store.snapshots() if not s.task_id][:20]
    _, results = run(client, sets(locked + free), rate=100, concurrency=2)
    assert {results[s].status for s in locked + free} == {"ok"}
    assert max(client.calls(s)[-1].at for s in free) < 0.25  # 23 sends at 100/s
    assert all(results[s].attempts == 4 for s in locked)  # 0, 1, 3, 7 s


def test_429_with_retry_after_pauses_every_worker_for_exactly_that_long():
    client = fake()
    first, second = client.store.ids()[:2]
    client.script(first, ApiError(429, "TooManyRequests", "slow down", retry_after=3.0))
    engine, results = run(client, sets([first, second]), concurrency=2)
    assert times(client, first) == [0.0, 3.0]
    # the pause held the other worker too; then the halved rate (500/s) spaces them 2 ms
    assert times(client, second) == [3.002]
    assert results[first].attempts == 2 and results[first].status == "ok"
    assert engine.retries == ["rate_limit"]


def test_429_without_retry_after_backs_off_half_a_second_then_doubles():
    client = fake()
    sid = client.store.ids()[0]
    no_header = ApiError(429, "TooManyRequests", "slow down")
    client.script(sid, no_header, no_header, no_header)
    _, results = run(client, sets([sid]))
    assert times(client, sid) == [0.0, 0.5, 1.5, 3.5]
    assert results[sid].attempts == 4


def test_a_huge_retry_after_is_capped_at_60_s_and_logged_once(caplog):
    client = fake()
    ids = client.store.ids()[:2]
    for sid in ids:
        client.script(sid, ApiError(429, "TooManyRequests", "later", retry_after=100000.0))
    with caplog.at_level(logging.WARNING, logger="batchtag.gcore._retry"):
        _, results = run(client, sets(ids), concurrency=2)
    assert {r.status for r in results.values()} == {"ok"}
    assert times(client, ids[0]) == [0.0, 60.0]
    assert times(client, ids[1]) == [60.002, 120.002]  # sent after the first pause, paused too
    warnings = [r.getMessage() for r in caplog.records if "Retry-After" in r.getMessage()]
    assert warnings == ["server asked to wait 100000 s (Retry-After); waiting at most 60 s"]


def test_a_retry_after_past_the_snapshot_deadline_fails_it_at_once():
    client = fake()
    sid = client.store.ids()[0]
    client.script(sid, ApiError(429, "TooManyRequests", "later", retry_after=100000.0))
    _, results = run(client, sets([sid]), snapshot_deadline=30)
    assert (results[sid].status, results[sid].http_status, results[sid].attempts) == (
        "failed",
        429,
        1,
    )
    assert results[sid].elapsed_ms == 0.0


def test_transient_errors_get_the_sdk_backoff_then_fail():
    client = fake(error_rate=1.0)
    sid = client.store.ids()[0]
    engine, results = run(client, sets([sid]), retry=RetrySettings(transient_retries=3))
    assert times(client, sid) == [0.0, 0.5, 1.5, 3.5]
    assert results[sid].status == "failed" and results[sid].http_status in (500, 502, 503)
    assert engine.retries == ["transient"] * 3


def test_read_timeouts_are_retried_a_few_times_then_fail():
    client = fake(latency_ms=1000, timeout=0.2)
    ids = client.store.ids()[:3]
    engine, results = run(client, sets(ids), retry=RetrySettings(transient_retries=2))
    assert {(r.status, r.error_class, r.attempts) for r in results.values()} == {
        ("failed", "Timeout", 3)
    }
    assert times(client, ids[0]) == [0.0, 0.7, 1.9]  # 0.2 s timeout, then 0.5 s, 1 s waits
    assert len(engine.retries) == 6


def test_should_retry_false_overrides_the_table():
    client = fake(error_rate=1.0, error_should_retry=False)
    ids = client.store.ids()[:5]
    _, results = run(client, sets(ids))
    assert {(r.status, r.attempts) for r in results.values()} == {("failed", 1)}
    assert client.stats.requests["PATCH"] == 5


def test_not_found_is_final_and_rejected_keeps_invalid_fields():
    client = fake()
    sid = client.store.ids()[0]
    ghost = "00000000-0000-4000-8000-000000000000"
    bad = PlanEntry(1, 1, client.store.ids()[1], tags={"bad key": "x"})
    _, results = run(client, sets([sid, ghost]) + [bad])
    assert (results[ghost].status, results[ghost].http_status, results[ghost].attempts) == (
        "not_found",
        404,
        1,
    )
    rejected = results[bad.snapshot_id]
    assert (rejected.status, rejected.http_status, rejected.error_class) == (
        "failed",
        400,
        "ValidationError",
    )
    assert "invalid_fields=" in rejected.error and "bad key" in rejected.error
    assert results[sid].status == "ok"


def test_an_empty_patch_is_noop_in_a_dry_run_and_a_real_one():
    for dry_run in (True, False):
        client = fake()
        empty, change = client.store.ids()[:2]
        entries = [PlanEntry(1, 1, empty), *sets([change])]
        _, results = run(client, entries, dry_run=dry_run)
        assert results[empty].status == "noop" and results[empty].body == {}
        assert results[change].status == ("planned" if dry_run else "ok")
        assert client.stats.requests["PATCH"] == (0 if dry_run else 1)


def test_a_read_snapshot_keeps_its_before_and_after_state():
    client = fake()
    snap = next(s for s in client.store.snapshots() if s.read_only and set(s.tags) - s.read_only)
    user = {k: v for k, v in snap.tags.items() if k not in snap.read_only}
    entry = PlanEntry(1, 1, snap.id, tags={"batch": "one"}, name="renamed-1")
    _, results = run(client, [entry], state=known(client, [entry]))
    result = results[snap.id]
    assert result.tags_before == user
    assert result.ro_tags == {k: snap.tags[k] for k in snap.read_only}
    assert result.name_before != "renamed-1" and result.name_after == "renamed-1"
    assert result.tags_after == {**user, "batch": "one"}


@settings(max_examples=25, deadline=None)
@given(
    lock_rate=st.sampled_from([0.0, 0.3]),
    error_rate=st.sampled_from([0.0, 0.2]),
    drop_rate=st.sampled_from([0.0, 0.1]),
    rate_limit=st.sampled_from([None, 50.0]),
    concurrency=st.integers(1, 16),
    seed=st.integers(0, 5),
)
def test_every_snapshot_is_reported_once_never_two_requests_at_a_time(
    lock_rate, error_rate, drop_rate, rate_limit, concurrency, seed
):
    client = FakeClient(
        clock=VirtualClock(),
        seed=seed,
        snapshots=40,
        lock_rate=lock_rate,
        lock_ms=3000,
        error_rate=error_rate,
        drop_rate=drop_rate,
        rate_limit=rate_limit,
        latency_ms=20,
    )
    ids = client.store.ids()
    entries = [PlanEntry(1, 1, sid, renames={"env": "stage"}) for sid in ids[:10]] + sets(ids[10:])
    _, results = run(
        client,
        entries,
        state=known(client, entries),
        concurrency=concurrency,
        rate=200,
        retry=RetrySettings(transient_retries=20),
    )
    assert sorted(results) == sorted(ids)
    assert client.stats.max_inflight_per_snapshot == 1
    for sid, result in results.items():
        assert result.attempts == len(client.calls(sid))


def test_a_retry_held_past_its_deadline_by_a_later_429_pause_fails():
    client = fake()
    paused, locked = client.store.ids()[:2]
    client.script(paused, ApiError(503, "ServiceUnavailable", "busy"))
    client.script(paused, ApiError(429, "TooManyRequests", "later", retry_after=55.0))
    client.script(locked, ApiError(409, "ConflictError", "locked"))
    _, results = run(client, sets([paused, locked]), concurrency=2, snapshot_deadline=30)
    held = results[locked]  # parked 1 s for its 409, then held by the 55 s pause
    assert (held.status, held.http_status, held.attempts) == ("failed", 409, 1)
    assert held.elapsed_ms == 55500.0
    assert (results[paused].status, results[paused].http_status) == ("failed", 429)


def test_results_that_need_no_request_still_let_the_loop_run():
    """A dry run (or a run of noops) awaits nothing: the workers must still yield, so a
    signal or the report's hand-over is not held back until every entry is done."""
    client = fake()
    entries = sets([f"s{i}" for i in range(3000)])

    engines = []

    def first_result(result):
        if len(engines) == 1:  # a signal arrives while the workers run
            asyncio.get_running_loop().call_soon(engines.pop().interrupt)

    engine, results = run(
        client, entries, dry_run=True, during=engines.append, on_result=first_result
    )
    statuses = Counter(r.status for r in results.values())
    assert len(results) == 3000
    assert statuses["skipped"] > 2900, statuses  # stopped at once, not after all of them
    assert statuses["planned"] < 100


def test_an_entry_that_needs_its_current_tags_is_never_written_blind():
    client = fake()
    sid = client.store.ids()[0]
    _, results = run(client, [PlanEntry(1, 1, sid, renames={"env": "stage"})])
    result = results[sid]
    assert (result.status, result.attempts) == ("failed", 0)
    assert result.error == "its current tags were not read first"
    assert client.calls(sid) == []
