"""The API client against the sandbox: URLs, auth, parsing, errors."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import aiohttp
import pytest
from helpers import API_KEY, SID, tags_dict

from batchtag.config import Settings, check_base_url, resolve_settings
from batchtag.errors import ApiError, UsageError
from batchtag.gcore import Client, Slots, parse_retry_after
from batchtag.model import Snapshot


def call(sandbox, coro_fn, key=API_KEY):
    async def main():
        async with Client(Settings(sandbox.base_url, key)) as client:
            return await coro_fn(client)

    return asyncio.run(main())


def test_get_and_patch_round_trip(sandbox):
    sid = sandbox.store.ids()[0]
    snap = call(sandbox, lambda c: c.get_snapshot(1, 1, sid))
    assert snap["id"] == sid
    after = call(sandbox, lambda c: c.patch_snapshot(1, 1, sid, b'{"tags": {"team": "infra"}}'))
    assert tags_dict(after)["team"] == "infra"
    assert Snapshot.from_wire(after).read_only == Snapshot.from_wire(snap).read_only


def test_iter_snapshots_walks_every_page(make_sandbox):
    sandbox = make_sandbox(snapshots=2345)

    async def collect(client):
        return [s["id"] async for s in client.iter_snapshots(1, 1)]

    ids = call(sandbox, collect)
    assert ids == sandbox.store.ids()
    assert sandbox.stats()["requests"]["GET"] == 3  # 1000 + 1000 + 345


def test_not_found_becomes_api_error_with_request_id(sandbox):
    with pytest.raises(ApiError) as info:
        call(sandbox, lambda c: c.get_snapshot(1, 1, str(uuid.uuid4())))
    error = info.value
    assert error.status == 404 and error.exception_class == "NotFoundError"
    uuid.UUID(error.request_id)


def test_validation_error_carries_invalid_fields(sandbox):
    sid = sandbox.store.ids()[0]
    with pytest.raises(ApiError) as info:
        call(sandbox, lambda c: c.patch_snapshot(1, 1, sid, b'{"name": "x"}'))
    assert info.value.status == 400
    assert "name" in info.value.invalid_fields


def test_wrong_key_is_401_and_the_key_is_not_in_the_error(make_sandbox):
    sandbox = make_sandbox(api_key="right-key")
    secret = "wrong-key-$ecret-123"
    with pytest.raises(ApiError) as info:
        call(sandbox, lambda c: c.get_snapshot(1, 1, sandbox.store.ids()[0]), key=secret)
    assert info.value.status == 401
    assert secret not in str(info.value) and secret not in repr(info.value)


def test_retry_after_headers_are_parsed(make_sandbox):
    sandbox = make_sandbox(rate_limit=1)

    async def burst(client):
        sid = sandbox.store.ids()[0]
        errors = []
        for _ in range(5):
            try:
                await client.get_snapshot(1, 1, sid)
            except ApiError as exc:
                errors.append(exc)
        return errors

    errors = call(sandbox, burst)
    assert errors and all(e.status == 429 for e in errors)
    assert all(e.retry_after is not None and 0 <= e.retry_after <= 2 for e in errors)


def test_parse_retry_after_prefers_milliseconds():
    assert parse_retry_after({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({}) is None


def test_dropped_connection_becomes_transport_error(make_sandbox):
    sandbox = make_sandbox(drop_rate=1.0)
    with pytest.raises(ApiError) as info:
        call(sandbox, lambda c: c.get_snapshot(1, 1, sandbox.store.ids()[0]))
    assert info.value.status == 0


def test_plain_http_only_to_loopback():
    assert check_base_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert check_base_url("http://localhost:1") == "http://localhost:1"
    with pytest.raises(UsageError, match="insecure.http"):
        check_base_url("http://api.example.com")
    assert check_base_url("http://api.example.com", insecure_http=True)
    assert check_base_url("https://api.gcore.com")


def test_settings_come_from_env_and_hide_the_key():
    settings = resolve_settings(env={"GCORE_API_KEY": "k-123456", "GCORE_BASE_URL": "https://x.io"})
    assert settings.base_url == "https://x.io" and "k-123456" not in repr(settings)
    with pytest.raises(UsageError, match="GCORE_API_KEY"):
        resolve_settings(env={})


def test_waiting_for_a_pool_slot_is_not_a_timeout(make_sandbox):
    # one connection, eight requests of ~0.1 s each: the last waits ~0.7 s for the slot,
    # far past the 0.5 s read timeout and request deadline, and still must not time out
    sandbox = make_sandbox(latency_ms=100)
    ids = sandbox.store.ids()[:8]

    async def main():
        settings = Settings(sandbox.base_url, API_KEY)
        async with Client(
            settings, connections=1, timeout=0.5, connect_timeout=0.5, request_deadline=0.5
        ) as client:
            return await asyncio.gather(*(client.get_snapshot(1, 1, sid) for sid in ids))

    snapshots = asyncio.run(main())
    assert [s["id"] for s in snapshots] == ids


# -- the read timeout (batchtag.gcore._client.LazyReadTimer) -------------------------------------

HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 999\r\n\r\n"


def timeout_error(answer, *, timeout: float, deadline: float) -> ApiError:
    """The ApiError of one GET against a loopback server that runs `answer`."""

    async def main():
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        settings = Settings(f"http://127.0.0.1:{port}", API_KEY)
        try:
            async with asyncio.timeout(20):  # a hung test fails here instead
                async with Client(settings, timeout=timeout, request_deadline=deadline) as c:
                    with pytest.raises(ApiError) as info:
                        await c.get_snapshot(1, 1, SID)
        finally:
            server.close()
        return info.value

    return asyncio.run(main())


@pytest.mark.parametrize("headers", [b"", HEADERS], ids=["before-headers", "mid-body"])
def test_a_silent_server_hits_the_read_timeout_long_before_the_deadline(headers):
    async def silent(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(headers)
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the client gives up and closes
        writer.close()

    error = timeout_error(silent, timeout=0.2, deadline=600)
    assert (error.status, error.exception_class) == (0, "Timeout")
    assert isinstance(error.__cause__, aiohttp.ServerTimeoutError)  # the read timer, not the total


def test_data_that_keeps_coming_holds_the_read_timeout_off_until_the_deadline():
    async def trickle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(HEADERS)
        with contextlib.suppress(ConnectionError):
            while True:  # a byte every 20 ms: never 0.15 s of silence
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.02)
        writer.close()

    error = timeout_error(trickle, timeout=0.15, deadline=0.8)
    assert (error.status, error.exception_class) == (0, "Timeout")
    assert not isinstance(error.__cause__, aiohttp.ServerTimeoutError)  # the deadline fired


def test_slots_serve_waiters_in_order_and_survive_a_cancelled_waiter():
    async def main():
        slots, order = Slots(1), []
        assert slots.take_now()

        async def waiter(name):
            await slots.take()
            order.append(name)
            slots.give()

        first, cancelled, last = (asyncio.create_task(waiter(n)) for n in ("a", "x", "b"))
        await asyncio.sleep(0)  # all three wait
        cancelled.cancel()
        slots.give()
        await asyncio.gather(first, last)
        assert cancelled.cancelled()
        return order, slots.take_now(), slots.take_now()

    assert asyncio.run(main()) == (["a", "b"], True, False)  # one slot, none lost or added
