"""The sandbox's fault knobs, stats and reset, command line, large stores and churn."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import aiohttp
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from sandbox_calls import (
    BASE,
    assert_gcore_error,
    assert_snapshot_shape,
    call,
    call_many,
    one,
)

from batchtag.sandbox import SnapshotStore
from batchtag.sandbox.cli import sandbox_command
from batchtag.sandbox.store import tags_of

# ---------------------------------------------------------------- fault knobs


def test_latency_delays_every_answer(make_sandbox):
    server = make_sandbox(latency_ms=300)
    waits = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    server.state.sleep = record
    for _ in range(5):
        assert call(server, "GET", one(server.store.ids()[0])).status == 200
    assert len(waits) == 5
    assert all(0.15 <= w <= 0.45 for w in waits)  # jitter stays within 50%..150%
    assert len(set(waits)) > 1


def test_rate_limit_answers_429_with_retry_after(make_sandbox):
    server = make_sandbox(rate_limit=2)
    replies = call_many(server, [("GET", f"{BASE}/1/1?limit=1")] * 20)
    statuses = [r.status for r in replies]
    assert 200 in statuses and 429 in statuses
    limited = [r for r in replies if r.status == 429]
    for reply in limited:
        assert_gcore_error(reply, 429, "TooManyRequests")
        assert int(reply.headers["Retry-After"]) >= 1
        assert int(reply.headers["retry-after-ms"]) >= 1
    assert server.stats()["responses"]["429"] == len(limited)


def test_rate_limit_without_retry_after(make_sandbox):
    server = make_sandbox(rate_limit=1, retry_after=False)
    replies = call_many(server, [("GET", f"{BASE}/1/1?limit=1")] * 10)
    limited = [r for r in replies if r.status == 429]
    assert limited and server.stats()["responses"]["429"] == len(limited)
    for reply in limited:
        assert_gcore_error(reply, 429, "TooManyRequests")
        assert "Retry-After" not in reply.headers and "retry-after-ms" not in reply.headers


def test_locked_snapshot_answers_409_until_the_lock_clears(make_sandbox):
    server = make_sandbox(snapshots=10, lock_rate=1.0, lock_ms=100)
    now = [1000.0]
    server.state.clock = lambda: now[0]
    sid = server.store.ids()[0]
    shown = call(server, "GET", one(sid)).body
    assert uuid.UUID(shown["task_id"]).version == 4
    conflict = call(server, "PATCH", one(sid), json={"tags": {"k": "v"}})
    assert_gcore_error(conflict, 409, "ConflictError")
    assert call(server, "GET", one(sid)).body["tags"] == shown["tags"]
    now[0] += 0.099
    assert call(server, "PATCH", one(sid), json={"tags": {"k": "v"}}).status == 409
    now[0] += 0.001
    done = call(server, "PATCH", one(sid), json={"tags": {"k": "v"}})
    assert done.status == 200 and done.body["task_id"] is None
    assert tags_of(done.body)["k"] == "v"


def test_first_write_to_a_locked_snapshot_always_conflicts(make_sandbox):
    server = make_sandbox(snapshots=10, lock_rate=1.0, lock_ms=0)
    sid = server.store.ids()[0]
    assert call(server, "PATCH", one(sid), json={"name": "abc"}).status == 409
    assert call(server, "PATCH", one(sid), json={"name": "abc"}).status == 200


def test_lock_rate_locks_about_that_share(make_sandbox):
    server = make_sandbox(lock_rate=0.3, lock_ms=60_000)
    snaps = call(server, "GET", f"{BASE}/1/1").body["results"]
    locked = [s for s in snaps if s["task_id"]]
    assert 0.15 < len(locked) / len(snaps) < 0.45
    free = next(s for s in snaps if not s["task_id"])
    assert call(server, "PATCH", one(free["id"]), json={"name": "abc"}).status == 200
    for _ in range(3):  # a long lock keeps answering 409
        assert call(server, "PATCH", one(locked[0]["id"]), json={"name": "abc"}).status == 409


def test_error_rate_one_fails_everything_in_gcore_shape(make_sandbox):
    server = make_sandbox(error_rate=1.0)
    sid = server.store.ids()[0]
    before = server.store.find(1, 1, sid).to_json()
    statuses = set()
    for _ in range(15):
        reply = call(server, "PATCH", one(sid), json={"name": "changed"})
        assert reply.status in (500, 502, 503)
        assert_gcore_error(reply, reply.status, reply.body["exception_class"])
        assert "x-should-retry" not in reply.headers
        statuses.add(reply.status)
    assert len(statuses) >= 2
    assert server.store.find(1, 1, sid).to_json() == before


@pytest.mark.parametrize("should_retry, header", [(True, "true"), (False, "false")])
def test_error_should_retry_header(make_sandbox, should_retry, header):
    server = make_sandbox(error_rate=1.0, error_should_retry=should_retry)
    reply = call(server, "GET", f"{BASE}/1/1")
    assert reply.status >= 500 and reply.headers["x-should-retry"] == header


def test_error_rate_is_a_share_and_repeats_with_the_seed(make_sandbox):
    def statuses(server):
        return [call(server, "GET", f"{BASE}/1/1?limit=1").status for _ in range(30)]

    first = statuses(make_sandbox(error_rate=0.4, seed=3))
    assert first == statuses(make_sandbox(error_rate=0.4, seed=3))
    assert 200 in first and any(s >= 500 for s in first)


def test_dropped_connection_gets_no_response_and_changes_nothing(make_sandbox):
    server = make_sandbox(drop_rate=1.0)
    sid = server.store.ids()[0]
    before = server.store.find(1, 1, sid).to_json()
    with pytest.raises(aiohttp.ClientConnectionError):
        call(server, "PATCH", one(sid), json={"name": "changed"})
    assert server.store.find(1, 1, sid).to_json() == before
    assert server.stats()["responses"] == {"dropped": 1}


def test_drop_rate_is_a_share(make_sandbox):
    server = make_sandbox(drop_rate=0.5)
    outcomes = []
    for _ in range(20):
        try:
            outcomes.append(call(server, "PATCH", one(server.store.ids()[0]), json={}).status)
        except aiohttp.ClientConnectionError:
            outcomes.append("dropped")
    assert 200 in outcomes and "dropped" in outcomes


# ---------------------------------------------------------------- stats and reset


def test_stats_count_requests_and_responses(sandbox):
    sid = sandbox.store.ids()[0]
    call(sandbox, "GET", f"{BASE}/1/1")
    call(sandbox, "GET", one(sid))
    call(sandbox, "PATCH", one(sid), json={"name": "abc"})
    call(sandbox, "PATCH", one(sid), json={"name": "a"})
    call(sandbox, "GET", one("missing"), headers={})
    call(sandbox, "GET", "/_sandbox/stats")  # not counted
    stats = sandbox.stats()
    assert stats["requests"] == {"GET": 3, "PATCH": 2}
    assert stats["responses"] == {"200": 3, "400": 1, "401": 1}
    assert stats["total_requests"] == 5
    assert stats["writes"] == 1
    assert stats["max_inflight_per_snapshot"] == 1
    timeline_total = {}
    for second in stats["timeline"]:
        for status, count in second["responses"].items():
            timeline_total[status] = timeline_total.get(status, 0) + count
    assert timeline_total == stats["responses"]
    assert call(sandbox, "GET", "/_sandbox/stats").body == sandbox.stats()


def test_max_inflight_per_snapshot_sees_concurrent_requests(make_sandbox):
    server = make_sandbox(latency_ms=300)
    sid, other = server.store.ids()[:2]
    replies = call_many(server, [("GET", one(sid))] * 3 + [("GET", one(other))])
    assert all(r.status == 200 for r in replies)
    stats = server.stats()
    assert stats["max_inflight_per_snapshot"] == 3
    assert stats["max_inflight"] == 4


def test_reset_restores_the_seeded_state_and_zeroes_stats(sandbox):
    seeded = call(sandbox, "GET", f"{BASE}/1/1").body
    sid = seeded["results"][0]["id"]
    call(sandbox, "PATCH", one(sid), json={"name": "changed", "tags": None})
    assert call(sandbox, "GET", f"{BASE}/1/1").body != seeded

    assert call(sandbox, "POST", "/_sandbox/reset").status == 200
    assert sandbox.stats()["total_requests"] == 0
    assert call(sandbox, "GET", f"{BASE}/1/1").body == seeded
    sandbox.reset()
    assert sandbox.stats() == {
        "requests": {},
        "responses": {},
        "total_requests": 0,
        "first_at": {},
        "endpoints": {},
        "max_inflight": 0,
        "max_inflight_per_snapshot": 0,
        "writes": 0,
        "volume_writes": 0,
        "resources": {},
        "timeline": [],
    }


def test_reset_brings_locks_back(make_sandbox):
    server = make_sandbox(snapshots=3, lock_rate=1.0, lock_ms=0)
    sid = server.store.ids()[0]
    assert call(server, "PATCH", one(sid), json={}).status == 409
    assert call(server, "PATCH", one(sid), json={}).status == 200
    server.reset()
    assert call(server, "PATCH", one(sid), json={}).status == 409


# ---------------------------------------------------------------- command line


def test_cli_refuses_a_non_loopback_host():
    result = CliRunner().invoke(sandbox_command, ["--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2
    assert "loopback" in result.output


def test_cli_serves_on_a_free_port_and_stops_on_sigterm():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "batchtag.sandbox", "--port", "0", "--snapshots", "5"]
    command += ["--api-key", "k$1", "--project-id", "3", "--region-id", "4"]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        line = proc.stdout.readline().strip()
        prefix = "batchtag sandbox listening on http://127.0.0.1:"
        assert line.startswith(prefix), line
        port = int(line.removeprefix(prefix))
        server = type("Remote", (), {"base_url": f"http://127.0.0.1:{port}"})()
        reply = call(server, "GET", f"{BASE}/3/4", headers={"Authorization": "APIKey k$1"})
        assert reply.status == 200 and reply.body["count"] == 5
        assert call(server, "GET", f"{BASE}/3/4").status == 401
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


# ---------------------------------------------------------------- large stores and churn


def test_a_million_snapshots_seed_lazily_and_page_like_any_store():
    store = SnapshotStore(snapshots=1_000_000)
    count, page = store.list(1, 1, limit=1000, offset=999_500)
    assert count == 1_000_000 and len(page) == 500
    assert store.find(1, 1, page[0]["id"]).to_json() == page[0]
    assert len(store.scopes[(1, 1)].live) == 1  # only the snapshot looked up was built
    assert store.list(1, 1, offset=1_000_000) == (1_000_000, [])


def test_mutate_deletes_and_creates_and_the_listing_follows(sandbox):
    before = sandbox.store.ids()
    changed = sandbox.mutate(create=7, delete=5)
    assert changed["count"] == 202 and len(changed["created"]) == 7
    assert set(changed["deleted"]) <= set(before) and len(set(changed["deleted"])) == 5
    after = [s["id"] for s in call(sandbox, "GET", f"{BASE}/1/1").body["results"]]
    expected = [sid for sid in before if sid not in changed["deleted"]] + changed["created"]
    assert after == expected
    for sid in changed["deleted"]:
        assert_gcore_error(call(sandbox, "GET", one(sid)), 404, "NotFoundError")
    created = call(sandbox, "GET", one(changed["created"][0]))
    assert created.status == 200
    assert_snapshot_shape(created.body)
    over_http = call(sandbox, "POST", "/_sandbox/mutate", json={"delete": 2})
    assert over_http.status == 200 and over_http.body["count"] == 200
    sandbox.reset()
    assert sandbox.store.ids() == before


def test_churn_knob_changes_the_scope_once_after_that_many_lists(make_sandbox):
    server = make_sandbox(snapshots=50, churn_after=2, churn_create=3, churn_delete=4)
    counts = [call(server, "GET", f"{BASE}/1/1?limit=1").body["count"] for _ in range(4)]
    assert counts == [50, 50, 49, 49]
    assert server.stats()["endpoints"] == {"list": 4}


def test_churn_every_changes_the_scope_again_every_that_many_lists(make_sandbox):
    server = make_sandbox(snapshots=50, churn_after=2, churn_every=3, churn_delete=1)
    counts = [call(server, "GET", f"{BASE}/1/1?limit=1").body["count"] for _ in range(9)]
    assert counts == [50, 50, 49, 49, 49, 48, 48, 48, 47]


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(0, 60),
    changes=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=4),
    limit=st.integers(1, 25),
)
def test_pages_follow_any_sequence_of_creates_and_deletes(size, changes, limit):
    store = SnapshotStore(snapshots=size)
    alive = store.ids()
    for create, delete in changes:
        done = store.mutate(1, 1, create=create, delete=delete)
        alive = [sid for sid in alive if sid not in done["deleted"]] + done["created"]
        assert done["count"] == len(alive)
    listed = []
    for offset in range(0, len(alive) + limit, limit):
        count, page = store.list(1, 1, limit=limit, offset=offset)
        assert count == len(alive)
        listed += [s["id"] for s in page]
    assert listed == alive == store.ids()
    for sid in alive:
        assert store.find(1, 1, sid).id == sid
