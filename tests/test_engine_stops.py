"""How the engine stops in virtual time: bad credentials, the breaker, TLS, interrupts, a failing
recorder; every snapshot is still reported once."""

from __future__ import annotations

import pytest
from engine_runs import fake, run, sets, times, top_of_jitter  # noqa: F401 (autouse fixture)

from batchtag.errors import ApiError
from batchtag.gcore import RetrySettings
from batchtag.send import IN_FLIGHT

pytestmark = pytest.mark.timeout(30)


def test_rejected_credentials_abort_and_skip_the_rest():
    client = fake()
    ids = client.store.ids()[:30]
    client.script(ids[0], ApiError(401, "AuthenticationError", "Invalid API key"))
    engine, results = run(client, sets(ids), concurrency=1)
    assert results[ids[0]].status == "failed"
    assert {results[s].status for s in ids[1:]} == {"skipped"}
    assert engine.abort_reason == "credentials rejected (HTTP 401 AuthenticationError)"
    assert client.stats.requests["PATCH"] == 1


def test_the_breaker_names_the_cause_in_the_abort_and_every_skipped_row():
    client = fake(drop_rate=1.0)
    ids = client.store.ids()[:100]
    engine, results = run(
        client,
        sets(ids),
        concurrency=8,
        retry=RetrySettings(transient_retries=50),
        breaker={"cooldown": 0.05},
    )
    cause = "ServerDisconnectedError: Server disconnected"
    assert engine.abort_reason.startswith(
        f"circuit breaker: most recent requests kept failing: {cause} ("
    )
    assert len(results) == 100
    skipped = [r for r in results.values() if r.status == "skipped"]
    assert skipped and all(cause in r.error for r in skipped)
    assert client.stats.requests["PATCH"] < 200  # not 100 x 51


def test_a_tls_failure_aborts_at_once_naming_it():
    client = fake()
    ids = client.store.ids()[:10]
    bad_cert = ApiError(0, "ClientConnectorCertificateError", "certificate verify failed")
    client.script(ids[0], bad_cert)
    engine, results = run(client, sets(ids), concurrency=1)
    assert engine.abort_reason == (
        "TLS handshake failed, not retried: "
        "ClientConnectorCertificateError: certificate verify failed"
    )
    assert results[ids[0]].attempts == 1 and results[ids[0]].status == "failed"
    assert all("certificate verify failed" in results[s].error for s in ids[1:])


def test_an_interrupt_past_the_grace_reports_every_snapshot():
    client = fake(latency_ms=60_000)  # answers take a minute
    ids = client.store.ids()[:40]
    engine, results = run(
        client,
        sets(ids),
        concurrency=4,
        during=lambda e: client.clock.call_later(1.0, e.interrupt),
    )
    assert sorted(results) == sorted(ids)
    in_flight = [r for r in results.values() if r.error == IN_FLIGHT]
    assert len(in_flight) == 4 and {r.attempts for r in in_flight} == {1}
    unsent = [r for r in results.values() if r.attempts == 0]
    assert len(unsent) == 36 and {r.error for r in unsent} == {"not sent: run interrupted"}
    assert {r.status for r in results.values()} == {"skipped"}
    assert engine.interrupted and client.clock.monotonic() == pytest.approx(6.0)  # 1 + 5 s


def test_an_interrupt_reports_jobs_parked_on_locks_and_429_pauses():
    client = fake(lock_rate=1.0, lock_ms=10**9)
    locked = client.store.ids()[:3]
    paused = client.store.ids()[3]
    client.script(paused, ApiError(429, "TooManyRequests", "later", retry_after=50.0))
    _, results = run(
        client,
        sets(locked + [paused]),
        during=lambda e: client.clock.call_later(2.0, e.interrupt),
    )
    assert sorted(results) == sorted(locked + [paused])
    assert {(r.status, r.error) for r in results.values()} == {("skipped", IN_FLIGHT)}


def test_a_failing_result_callback_stops_the_run_and_is_raised():
    client = fake(latency_ms=10)
    ids = client.store.ids()[:50]
    seen = []

    def disk_full(result):
        seen.append(result.snapshot_id)
        if len(seen) == 3:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        run(client, sets(ids), on_result=disk_full, concurrency=4)
    assert len(seen) == 3  # nothing more recorded after the failure
    failed_at = client.calls(seen[2])[0].at + 0.01
    assert all(c.at <= failed_at for c in client.stats.calls)  # nothing sent after it
    assert client.stats.requests["PATCH"] <= 3 + 4


def test_an_interrupt_reports_jobs_still_waiting_for_the_limiter_as_not_sent():
    client = fake()
    ids = client.store.ids()[:6]
    _, results = run(
        client,
        sets(ids),
        rate=0.1,  # one request every 10 s: three workers wait in the limiter
        concurrency=4,
        during=lambda e: client.clock.call_later(1.0, e.interrupt),
    )
    assert sorted(results) == sorted(ids)
    assert [r.status for r in results.values()].count("ok") == 1
    waiting = [r for r in results.values() if r.status == "skipped"]
    assert {(r.attempts, r.error) for r in waiting} == {(0, "not sent: run interrupted")}
    assert client.stats.requests["PATCH"] == 1
