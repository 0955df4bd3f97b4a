"""An in-memory stand-in for `batchtag.gcore._client.Client`, with the sandbox's fault knobs.

`FakeClient` answers from the sandbox's `SnapshotStore` (same seeded data, merge-patch
semantics, validation, locks) without a socket, and takes its time from a `Clock`: run the
engine on a `VirtualClock` and a run with minutes of latency, locks and Retry-After pauses
finishes in milliseconds. Every call is logged with its virtual time, so tests can assert
exact attempt counts and delays.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from batchtag.errors import ApiError
from batchtag.gcore import REAL_CLOCK, Client, Clock
from batchtag.sandbox.app import INJECTED_ERRORS
from batchtag.sandbox.store import SandboxError, SnapshotStore


@dataclass
class Faults:
    """The sandbox's fault knobs (`SandboxConfig`), plus a client-side timeout."""

    latency_ms: float = 0.0  # each request takes exactly this long (no jitter: exact tests)
    rate_limit: float | None = None  # requests per second; over it: 429
    retry_after: bool = True  # 429s carry retry-after-ms
    error_rate: float = 0.0  # share of requests answered with a random 500/502/503
    error_should_retry: bool | None = None  # x-should-retry on injected 5xx
    drop_rate: float = 0.0  # share of requests whose connection drops with no answer
    timeout: float | None = None  # a request slower than this raises Timeout after it


@dataclass
class Call:
    """One request as the fake saw it."""

    at: float  # clock time it was sent
    method: str
    snapshot_id: str | None
    outcome: str = "pending"  # "200", "409", "dropped", "timeout", ...


@dataclass
class FakeStats:
    requests: Counter[str] = field(default_factory=Counter)
    responses: Counter[str] = field(default_factory=Counter)
    inflight: Counter[str] = field(default_factory=Counter)
    max_inflight: int = 0
    max_inflight_per_snapshot: int = 0
    calls: list[Call] = field(default_factory=list)


class FakeClient:
    """`Client`'s interface (get_snapshot, patch_snapshot, list_page, iter_snapshots) over
    a SnapshotStore.

    Parameters
    ----------
    store : SnapshotStore, optional
        The data; by default a fresh `SnapshotStore(seed, snapshots, lock_rate=, lock_ms=)`.
    clock : Clock
        Time for latency, locks and the rate limit (a `VirtualClock` in tests).
    seed, snapshots, lock_rate, lock_ms : as in `SandboxConfig`
    faults : keyword arguments for `Faults` (latency_ms, rate_limit, retry_after, ...).

    Examples
    --------
    >>> from batchtag.gcore._clock import VirtualClock
    >>> clock = VirtualClock()
    >>> fake = FakeClient(clock=clock, snapshots=3, latency_ms=250)
    >>> sid = fake.store.ids()[0]
    >>> clock.run(fake.get_snapshot(1, 1, sid))["id"] == sid, clock.monotonic()
    (True, 0.25)

    `script(snapshot_id, *errors)` makes the next requests for one snapshot fail with
    the given `ApiError`s, in order, before the knobs apply.
    """

    def __init__(
        self,
        store: SnapshotStore | None = None,
        *,
        clock: Clock = REAL_CLOCK,
        seed: int = 0,
        snapshots: int = 200,
        lock_rate: float = 0.0,
        lock_ms: float = 1000.0,
        **faults: Any,
    ):
        self.store = store or SnapshotStore(
            seed=seed, snapshots=snapshots, lock_rate=lock_rate, lock_ms=lock_ms
        )
        self.clock = clock
        self.faults = Faults(**faults)
        self.stats = FakeStats()
        self._rng = random.Random(f"batchtag-fake-faults:{seed}")
        self._scripted: dict[str, list[ApiError]] = {}
        self._tokens = self.faults.rate_limit or 0.0
        self._refilled = clock.monotonic()

    async def __aenter__(self) -> FakeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def script(self, snapshot_id: str, *errors: ApiError) -> None:
        """Queue errors for the next requests of `snapshot_id`."""
        self._scripted.setdefault(snapshot_id, []).extend(errors)

    def calls(self, snapshot_id: str | None = None, method: str | None = None) -> list[Call]:
        """The logged calls, optionally of one snapshot and/or method."""
        return [
            c
            for c in self.stats.calls
            if (snapshot_id is None or c.snapshot_id == snapshot_id)
            and (method is None or c.method == method)
        ]

    # -- the Client interface ---------------------------------------------------------

    async def get_snapshot(self, project_id: int, region_id: int, snapshot_id: str) -> dict:
        return await self._call(
            "GET", snapshot_id, lambda now: self.store.get(project_id, region_id, snapshot_id, now)
        )

    async def patch_snapshot(
        self, project_id: int, region_id: int, snapshot_id: str, body: bytes
    ) -> dict:
        data = json.loads(body)
        return await self._call(
            "PATCH",
            snapshot_id,
            lambda now: self.store.patch(project_id, region_id, snapshot_id, data, now),
        )

    async def list_page(
        self, project_id: int, region_id: int, *, limit: int = 1000, offset: int = 0
    ) -> dict:
        def page(now: float) -> dict:
            count, results = self.store.list(project_id, region_id, limit, offset)
            return {"count": count, "results": results}

        return await self._call("GET", None, page)

    iter_snapshots = Client.iter_snapshots  # the same paging, over this list_page

    # -- one request ------------------------------------------------------------------

    async def _call(self, method: str, snapshot_id: str | None, handler) -> dict:
        call = Call(self.clock.monotonic(), method, snapshot_id)
        self.stats.calls.append(call)
        self._enter(method, snapshot_id)
        try:
            result = await self._answer(snapshot_id, handler)
            call.outcome = "200"
            return result
        except ApiError as error:
            call.outcome = _outcome(error)
            raise
        except BaseException:
            call.outcome = "cancelled"
            raise
        finally:
            self._leave(snapshot_id)
            self.stats.responses[call.outcome] += 1

    async def _answer(self, snapshot_id: str | None, handler) -> dict:
        scripted = self._scripted.get(snapshot_id or "")
        if scripted:
            raise scripted.pop(0)
        self._rate_limit()
        drop, error, status = (self._rng.random() for _ in range(3))
        f = self.faults
        latency = f.latency_ms / 1000
        if f.timeout is not None and latency > f.timeout:
            await self.clock.sleep(f.timeout)
            raise ApiError(0, "Timeout", "request timed out")
        if drop < f.drop_rate:
            await self.clock.sleep(latency)
            raise ApiError(0, "ServerDisconnectedError", "Server disconnected")
        if error < f.error_rate:
            code = sorted(INJECTED_ERRORS)[int(status * 3)]
            name, message = INJECTED_ERRORS[code]
            raise ApiError(code, name, message, _request_id(), should_retry=f.error_should_retry)
        await self.clock.sleep(latency)
        try:
            return handler(self.clock.monotonic())
        except SandboxError as err:
            raise ApiError(
                err.status,
                err.exception_class,
                err.message,
                _request_id(),
                invalid_fields=err.invalid_fields,
            ) from None

    def _rate_limit(self) -> None:
        rate = self.faults.rate_limit
        if not rate:
            return
        now = self.clock.monotonic()
        capacity = max(1.0, rate)
        self._tokens = min(capacity, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return
        wait = (1 - self._tokens) / rate
        after = max(1, math.ceil(wait * 1000)) / 1000 if self.faults.retry_after else None
        raise ApiError(429, "TooManyRequests", "Rate limit exceeded", _request_id(), after)

    def _enter(self, method: str, snapshot_id: str | None) -> None:
        stats = self.stats
        stats.requests[method] += 1
        stats.inflight["*"] += 1
        stats.max_inflight = max(stats.max_inflight, stats.inflight["*"])
        if snapshot_id:
            stats.inflight[snapshot_id] += 1
            stats.max_inflight_per_snapshot = max(
                stats.max_inflight_per_snapshot, stats.inflight[snapshot_id]
            )

    def _leave(self, snapshot_id: str | None) -> None:
        self.stats.inflight["*"] -= 1
        if snapshot_id:
            self.stats.inflight[snapshot_id] -= 1


def _outcome(error: ApiError) -> str:
    if error.status:
        return str(error.status)
    return "timeout" if error.exception_class == "Timeout" else "dropped"


def _request_id() -> str:
    return str(uuid.uuid4())
