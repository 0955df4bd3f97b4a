"""The state reader against the sandbox: exact inventories, faults, churn, pages vs GETs."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from batchtag import read
from batchtag.config import Settings
from batchtag.errors import AbortRun, UsageError
from batchtag.gcore import Client, RateLimiter
from batchtag.model import Snapshot
from batchtag.read import Reader
from batchtag.sandbox import SandboxConfig, SandboxServer
from tests.helpers import API_KEY


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


def read_all(server, project_id=1, region_id=1, key=API_KEY, rate=1000.0, start=0, **options):
    """Every page of a scope, and the reader (for its stats)."""

    async def go():
        async with Client(Settings(server.base_url, key)) as client:
            reader = Reader(client, limiter=RateLimiter(rate), **options)
            scope = reader.read_scope(project_id, region_id, start=start)
            pages = [page async for page in scope]
            return pages, reader

    return asyncio.run(go())


@pytest.mark.parametrize("start", [0, 2_500, 3_000, 5_000, 9_000])
def test_a_listing_read_from_further_on_reads_the_same_snapshots_once(make_sandbox, start):
    server = make_sandbox(snapshots=5_500)
    pages, reader = read_all(server, concurrency=2, start=start)
    snapshots = [s.to_json() for s in server.store.snapshots()]
    first = min(max(1, start // 1000), 6)  # the page it goes on from after the first
    order = [0, *range(first, 6), *range(1, first)]
    assert pages == [snapshots[p * 1000 : (p + 1) * 1000] for p in order]
    assert reader.stats.pages == 6 and reader.consistent and not reader.stats.warnings


def read_keys(server, keys, transform=None):
    """The one read strategy over some snapshots (`batchtag.read.read_keys`)."""

    async def go():
        async with Client(Settings(server.base_url, API_KEY)) as client:
            reader = Reader(client, limiter=RateLimiter(1000.0))
            return await read.read_keys(reader, keys, transform), reader

    return asyncio.run(go())


def flat(pages):
    return [snap for page in pages for snap in page]


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 5_500])  # 6 pages > 4 in flight
def test_a_scope_reads_exactly_the_store_in_listing_order(make_sandbox, size):
    server = make_sandbox(snapshots=size)
    pages, reader = read_all(server, concurrency=4)
    expected = [s.to_json() for s in server.store.snapshots()]
    assert flat(pages) == expected
    assert reader.stats.pages == max(1, -(-size // 1000))
    assert server.stats()["endpoints"] == {"list": reader.stats.pages}
    assert not reader.stats.warnings


def test_5xx_and_dropped_connections_are_retried_and_nothing_is_lost(make_sandbox):
    server = make_sandbox(snapshots=8000, error_rate=0.3, drop_rate=0.1, seed=5)
    retried = []
    pages, reader = read_all(server, concurrency=4, sleep=no_wait, on_retry=retried.append)
    assert [s["id"] for s in flat(pages)] == server.store.ids()
    responses = server.stats()["responses"]
    failures = sum(n for status, n in responses.items() if status != "200")
    errors = sum(n for status, n in responses.items() if status.startswith("5"))
    # aiohttp itself resends a GET once when a reused keep-alive connection was dropped
    assert 0 < errors <= len(retried) <= failures
    assert len(retried) == reader.stats.retries["transient"]
    assert reader.stats.requests == 8 + len(retried)


def test_429_slows_the_shared_limiter_and_every_page_arrives(make_sandbox):
    server = make_sandbox(snapshots=12_000, rate_limit=3)  # a burst of 3, then 429s
    limiter = RateLimiter(400.0)

    async def go():
        async with Client(Settings(server.base_url, API_KEY)) as client:
            reader = Reader(client, concurrency=8, limiter=limiter)
            return [p async for p in reader.read_scope(1, 1)], reader

    pages, reader = asyncio.run(go())
    assert [s["id"] for s in flat(pages)] == server.store.ids()
    throttled = server.stats()["responses"].get("429", 0)
    assert throttled > 0 and limiter.throttles == throttled
    assert limiter.rate < 400.0
    assert reader.stats.retries["rate_limit"] == throttled


def test_401_aborts_at_once(make_sandbox):
    server = make_sandbox(snapshots=3000, api_key="the-right-key")
    with pytest.raises(AbortRun, match="credentials rejected"):
        read_all(server, key="a-wrong-key")
    assert server.stats()["total_requests"] == 1


def test_a_scope_that_does_not_exist_is_a_usage_error_naming_it(make_sandbox):
    server = make_sandbox(snapshots=5)
    with pytest.raises(UsageError, match=r"project_id=7, region_id=1: no such project/region"):
        read_all(server, project_id=7)
    assert server.stats()["total_requests"] == 1


def test_snapshots_created_and_deleted_during_a_read_are_reconciled(make_sandbox):
    server = make_sandbox(snapshots=6000, churn_after=3, churn_create=120, churn_delete=168)
    pages, reader = read_all(server, concurrency=4)
    ids = [s["id"] for s in flat(pages)]
    surviving = set(server.store.ids())
    assert len(ids) == len(set(ids))  # nobody twice
    assert surviving <= set(ids)  # every survivor once
    assert len(set(ids) - surviving) <= 168  # the rest were deleted meanwhile
    assert reader.stats.passes == 2
    (warning,) = reader.stats.warnings
    assert "count 6000 -> 5952" in warning and "2 passes" in warning


def test_a_scope_that_keeps_changing_warns_that_it_may_be_incomplete(make_sandbox):
    server = make_sandbox(snapshots=3000, churn_after=2, churn_create=0, churn_delete=1500)
    pages, reader = read_all(server, concurrency=1, max_passes=1)
    ids = {s["id"] for s in flat(pages)}
    assert len(ids) == sum(len(p) for p in pages)
    (warning,) = reader.stats.warnings
    assert "may be incomplete" in warning


def add_case_twins(server) -> None:
    """Two snapshots whose ids are not UUIDs and differ only in case."""
    scope = server.store.scopes[(1, 1)]
    base = scope.snapshot(0)
    for sid, team in (("snap-a", "lower"), ("snap-A", "upper")):
        scope.add(dataclasses.replace(base, id=sid, tags={"team": team}, read_only=set()))


def decoded(server, snapshot_id: str) -> Snapshot:
    """What the sandbox holds of one snapshot, as the reader decodes it."""
    return Snapshot.from_wire(server.store.find(1, 1, snapshot_id).to_json())


def test_ids_that_are_not_uuids_are_compared_exactly(make_sandbox):
    """`snap-a` and `snap-A` are two snapshots (a UUID's case still does not matter)."""
    server = make_sandbox(snapshots=3)
    add_case_twins(server)
    pages, reader = read_all(server)
    assert [s["id"] for s in flat(pages)][-2:] == ["snap-a", "snap-A"]
    assert not reader.stats.warnings and reader.stats.passes == 1
    uuid = server.store.ids()[0]
    wanted = [(1, 1, "snap-a"), (1, 1, "snap-A"), (1, 1, "SNAP-A"), (1, 1, uuid.upper())]
    state, _ = read_keys(server, wanted)
    assert state[wanted[0]].user_tags == {"team": "lower"}
    assert state[wanted[1]].user_tags == {"team": "upper"}
    assert state[wanted[2]] is None and state[wanted[3]] == decoded(server, uuid)


# ---------------------------------------------------------------- pages or GETs


@pytest.fixture(scope="module")
def five_pages():
    with SandboxServer(SandboxConfig(snapshots=5000)) as server:
        yield server


def test_a_few_snapshots_are_read_by_get(five_pages):
    five_pages.reset()
    ids = five_pages.store.ids()
    wanted = [(1, 1, sid) for sid in ids[1500:1503]]
    state, reader = read_keys(five_pages, wanted)
    assert state == {k: decoded(five_pages, k[2]) for k in wanted}
    assert five_pages.stats()["endpoints"] == {"list": 1, "get": 3}


def test_many_snapshots_are_read_by_pages(five_pages):
    five_pages.reset()
    ids = five_pages.store.ids()
    wanted = [(1, 1, sid.upper()) for sid in ids[::40]] + [(1, 1, "0" * 8 + ids[0][8:])]
    state, reader = read_keys(five_pages, wanted)
    assert five_pages.stats()["endpoints"] == {"list": 5}
    assert state[wanted[-1]] is None
    assert all(state[k] == decoded(five_pages, k[2].lower()) for k in wanted[:-1])


def test_one_snapshot_is_one_get_and_a_missing_one_is_none(five_pages):
    five_pages.reset()
    wanted = [(1, 1, five_pages.store.ids()[7]), (1, 2, five_pages.store.ids()[8])]
    state, _ = read_keys(five_pages, wanted, transform=lambda s: s.name)
    assert state == {wanted[0]: five_pages.store.snapshots()[7].name, wanted[1]: None}
    assert five_pages.stats()["endpoints"] == {"get": 2}


def test_count_is_one_tiny_list_request(five_pages):
    five_pages.reset()

    async def go():
        async with Client(Settings(five_pages.base_url, API_KEY)) as client:
            return await Reader(client).count(1, 1)

    assert asyncio.run(go()) == 5000
    assert five_pages.stats()["endpoints"] == {"list": 1}
