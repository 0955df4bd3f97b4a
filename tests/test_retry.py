"""Reads outside the engine (counts) retried by the run's reader, in virtual time over
FakeClient; the retry classes."""

from __future__ import annotations

import pytest

from batchtag.commands import ApplyOptions, check_max_changes
from batchtag.errors import AbortRun, ApiError
from batchtag.gcore import (
    AUTH,
    GONE,
    LOCK,
    RATE_LIMIT,
    REJECTED,
    TLS,
    TRANSIENT,
    Breaker,
    RateLimiter,
    VirtualClock,
    classify,
)
from batchtag.model import Plan, PlanEntry
from batchtag.read import Reader
from batchtag.testing import FakeClient


@pytest.fixture(autouse=True)
def top_of_jitter(monkeypatch):
    monkeypatch.setattr("random.uniform", lambda low, high: high)


def fake() -> FakeClient:
    return FakeClient(clock=VirtualClock())


def reader(client: FakeClient, breaker: Breaker | None = None) -> Reader:
    clock = client.clock
    limiter = RateLimiter(1000, clock=clock.monotonic, sleep=clock.sleep)
    return Reader(client, limiter=limiter, sleep=clock.sleep, breaker=breaker)


def test_a_count_is_retried_like_the_engine_retries():
    client = fake()
    busy = ApiError(503, "ServiceUnavailable", "busy")
    client.script("", busy, busy)  # the next two list calls
    assert client.clock.run(reader(client).count(1, 1)) == 200
    assert [round(c.at, 6) for c in client.stats.calls] == [0.0, 0.5, 1.5]


def test_a_max_changes_count_that_keeps_failing_aborts_with_the_cause():
    client = fake()
    client.script("", *[ApiError(503, "ServiceUnavailable", "busy")] * 10)
    plan = Plan([PlanEntry(1, 1, sid, tags={"a": "b"}) for sid in client.store.ids()[:3]])
    options = ApplyOptions(max_changes="10%")
    with pytest.raises(AbortRun, match="cannot count the snapshots for max_changes: HTTP 503"):
        client.clock.run(check_max_changes(reader(client), plan, 3, options))
    assert len(client.stats.calls) == 4  # the first try and three retries


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ApiError(401, "AuthenticationError"), AUTH),
        (ApiError(0, "ClientConnectorCertificateError", "certificate verify failed"), TLS),
        (ApiError(0, "ClientSSLError", "handshake"), TLS),
        (ApiError(0, "ClientConnectorError", "Cannot connect"), TRANSIENT),
        (ApiError(0, "Timeout"), TRANSIENT),
        (ApiError(404, "NotFoundError"), GONE),
        (ApiError(303, "Redirect", "redirected to http://x; not followed"), REJECTED),
        (ApiError(200, "BadResponse", "not JSON"), REJECTED),
        (ApiError(503, "ServiceUnavailable", should_retry=False), REJECTED),
        (ApiError(409, "ConflictError"), LOCK),
        (ApiError(429, "TooManyRequests"), RATE_LIMIT),
    ],
)
def test_each_failure_has_its_class(error, kind):
    assert classify(error) == kind


def test_the_breaker_names_the_most_common_failure_with_its_count():
    breaker = Breaker(window=10, min_samples=100)
    for cause in ["HTTP 503 ServiceUnavailable"] * 3 + ["Timeout: GET timed out"] * 5:
        breaker.record(True, cause)
    breaker.record(False)
    assert breaker.cause() == "Timeout: GET timed out (5 of 8)"


def test_the_fake_pages_like_the_client():
    client = FakeClient(clock=VirtualClock(), snapshots=2345)

    async def collect():
        return [s["id"] async for s in client.iter_snapshots(1, 1)]

    assert client.clock.run(collect()) == client.store.ids()
    assert client.stats.requests["GET"] == 3
