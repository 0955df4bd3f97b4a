"""The sandbox aiohttp application: the Gcore snapshot endpoints plus fault knobs.

Every public request goes through the same steps, in this order:

1. auth (401) - an unauthenticated caller uses no rate-limit tokens;
2. server-side rate limit (429, with Retry-After / retry-after-ms unless turned off);
3. fault injection: dropped connection, then a random 500/502/503;
4. latency (with jitter);
5. handling: routing, lookups (404), validation (400), locks (409), the write.

Faults never change state: a dropped or failed request did not reach the store.
A locked snapshot's clock starts with the first GET or PATCH of that snapshot (lists do not
count); that request and any within `lock_ms` after it still see the lock.
Random choices come from one RNG seeded by `seed`; every request draws the same number of
values whatever knobs are on, so turning one knob does not reshuffle another.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from batchtag.planindex import uuid_bytes
from batchtag.sandbox.rules import SandboxError
from batchtag.sandbox.stats import Stats, TokenBucket
from batchtag.sandbox.store import SnapshotStore

log = logging.getLogger(__name__)
MAX_LIMIT = 1000
INJECTED_ERRORS = {
    500: ("InternalServerError", "Internal server error"),
    502: ("BadGateway", "Bad gateway"),
    503: ("ServiceUnavailable", "Service temporarily unavailable"),
}
API_PREFIX = "/cloud/v1/snapshots"


@dataclass
class SandboxConfig:
    seed: int = 0
    snapshots: int = 200
    project_ids: list[int] = field(default_factory=lambda: [1])
    region_ids: list[int] = field(default_factory=lambda: [1])
    api_key: str | None = None  # None: any non-empty token is accepted
    latency_ms: float = 0.0  # mean latency; each request waits 50%..150% of it
    rate_limit: float | None = None  # requests per second over all clients; None: off
    retry_after: bool = True  # send Retry-After and retry-after-ms with 429
    lock_rate: float = 0.0  # share of snapshots that start locked by a task
    lock_ms: float = 1000.0  # a lock clears this long after the first request touching it
    error_rate: float = 0.0  # share of requests answered with a random 500/502/503
    error_should_retry: bool | None = None  # x-should-retry header on injected 5xx
    drop_rate: float = 0.0  # share of requests whose connection is closed with no answer
    # Churn: once `churn_after` list requests of a scope were answered, someone else deletes
    # `churn_delete` of its snapshots and creates `churn_create` (for consistency tests).
    churn_after: int | None = None
    churn_create: int = 0
    churn_delete: int = 0
    churn_every: int | None = None  # then again every N list answers (a scope never still)
    # Serve https with this certificate chain and key (PEM files); None: plain http.
    tls_cert: str | None = None
    tls_key: str | None = None


@dataclass
class Roll:
    """The random draws for one request."""

    drop: bool
    error: int | None
    latency: float  # seconds


class SandboxState:
    def __init__(
        self,
        config: SandboxConfig,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ):
        self.config = config
        self.clock = clock  # lock timing; tests may swap in a fake
        self.sleep = sleep  # injected latency; tests may swap in a recorder
        self.store = SnapshotStore(
            seed=config.seed,
            snapshots=config.snapshots,
            project_ids=config.project_ids,
            region_ids=config.region_ids,
            lock_rate=config.lock_rate,
            lock_ms=config.lock_ms,
        )
        self.reset()

    def reset(self) -> None:
        self.store.reset()
        self.rng = random.Random(f"batchtag-sandbox-faults:{self.config.seed}")
        self.bucket = TokenBucket(self.config.rate_limit) if self.config.rate_limit else None
        self.stats = Stats()
        self.lists_answered = 0

    def roll(self) -> Roll:
        drop, error, status, jitter = (self.rng.random() for _ in range(4))
        c = self.config
        return Roll(
            drop=drop < c.drop_rate,
            error=sorted(INJECTED_ERRORS)[int(status * 3)] if error < c.error_rate else None,
            latency=c.latency_ms / 1000 * (0.5 + jitter),
        )


STATE = web.AppKey("sandbox_state", SandboxState)


# ---------------------------------------------------------------- responses


def error_response(
    status: int,
    exception_class: str,
    message: str,
    invalid_fields: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A Gcore-shaped error, with a fresh request_id."""
    request_id = str(uuid.uuid4())
    body: dict[str, Any] = {
        "exception_class": exception_class,
        "message": message,
        "request_id": request_id,
    }
    if invalid_fields is not None:
        body["invalid_fields"] = invalid_fields
    all_headers = {"X-Request-ID": request_id, **(headers or {})}
    return web.json_response(body, status=status, headers=all_headers)


def from_error(error: SandboxError) -> web.Response:
    return error_response(error.status, error.exception_class, error.message, error.invalid_fields)


def check_auth(request: web.Request, api_key: str | None) -> web.Response | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "apikey" or not token:
        return error_response(
            401, "AuthenticationError", "Authentication credentials were not provided"
        )
    if api_key is not None and token != api_key:
        return error_response(401, "AuthenticationError", "Invalid API key")
    return None


def rate_limited(wait: float, send_retry_after: bool) -> web.Response:
    headers = {}
    if send_retry_after:
        headers = {
            "Retry-After": str(max(1, math.ceil(wait))),
            "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
        }
    return error_response(429, "TooManyRequests", "Rate limit exceeded", headers=headers)


def injected_error(status: int, should_retry: bool | None) -> web.Response:
    headers = {}
    if should_retry is not None:
        headers["x-should-retry"] = "true" if should_retry else "false"
    exception_class, message = INJECTED_ERRORS[status]
    return error_response(status, exception_class, message, headers=headers)


class Dropped(Exception):
    """The sandbox decided to close this connection without answering."""


def drop_connection(request: web.Request) -> web.Response:
    # Closing the transport makes aiohttp's write fail, which it treats as a client that
    # went away: the client sees the connection closed with no response.
    request.protocol.force_close()
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)


# ---------------------------------------------------------------- middleware


def snapshot_key(request: web.Request) -> str | None:
    info = request.match_info
    if "snapshot_id" not in info:
        return None
    snapshot_id = info["snapshot_id"]  # a UUID in either case; any other id exactly
    snapshot_id = snapshot_id.lower() if uuid_bytes(snapshot_id) else snapshot_id
    return f"{info['project_id']}/{info['region_id']}/{snapshot_id}"


@web.middleware
async def sandbox_middleware(request: web.Request, handler) -> web.StreamResponse:
    if request.path.startswith("/_sandbox/"):
        return await handler(request)
    state = request.app[STATE]
    key = snapshot_key(request)
    state.stats.enter(request.method, key)
    outcome = "500"
    try:
        response = await answer(state, request, handler)
        outcome = str(response.status)
        return response
    except Dropped:
        outcome = "dropped"
        return drop_connection(request)
    finally:
        state.stats.leave(key, outcome)


async def answer(state: SandboxState, request: web.Request, handler) -> web.StreamResponse:
    config = state.config
    denied = check_auth(request, config.api_key)
    if denied is not None:
        return denied
    if state.bucket is not None:
        wait = state.bucket.take()
        if wait:
            return rate_limited(wait, config.retry_after)
    roll = state.roll()
    if roll.drop:
        raise Dropped
    if roll.error is not None:
        return injected_error(roll.error, config.error_should_retry)
    if roll.latency:
        await state.sleep(roll.latency)
    try:
        return await handler(request)
    except SandboxError as error:
        return from_error(error)
    except web.HTTPException as error:  # unknown route or method
        names = {404: "NotFoundError", 405: "MethodNotAllowed"}
        return error_response(error.status, names.get(error.status, "HTTPError"), error.reason)
    except Exception:  # a sandbox bug: still answer in the Gcore shape, and say so
        log.exception("sandbox handler failed")
        return error_response(500, "InternalServerError", "Sandbox internal error")


# ---------------------------------------------------------------- handlers


def int_param(value: str, name: str, minimum: int = 0, maximum: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SandboxError(
            400, "ValidationError", "Validation error", {name: ["Not a valid integer."]}
        ) from None
    if number < minimum or (maximum is not None and number > maximum):
        upper = f" and {maximum}" if maximum is not None else ""
        text = f"Must be between {minimum}{upper}." if upper else f"Must be at least {minimum}."
        raise SandboxError(400, "ValidationError", "Validation error", {name: [text]})
    return number


def scope(request: web.Request) -> tuple[int, int]:
    info = request.match_info
    return int_param(info["project_id"], "project_id"), int_param(info["region_id"], "region_id")


async def list_snapshots(request: web.Request) -> web.Response:
    project_id, region_id = scope(request)
    query = request.query
    limit = int_param(query.get("limit", str(MAX_LIMIT)), "limit", 1, MAX_LIMIT)
    offset = int_param(query.get("offset", "0"), "offset", 0)
    state = request.app[STATE]
    state.stats.endpoints["list"] += 1
    count, results = state.store.list(
        project_id, region_id, limit, offset, volume_id=query.get("volume_id")
    )
    churn(state, project_id, region_id)
    return web.json_response({"count": count, "results": results})


def churn(state: SandboxState, project_id: int, region_id: int) -> None:
    """Apply the configured churn right after the `churn_after`-th list answer, then after
    every `churn_every`-th one after it (None: once)."""
    state.lists_answered += 1
    config = state.config
    after, every = config.churn_after, config.churn_every
    if after is None or state.lists_answered < after:
        return
    if state.lists_answered == after or (every and (state.lists_answered - after) % every == 0):
        state.store.mutate(project_id, region_id, config.churn_create, config.churn_delete)


async def get_snapshot(request: web.Request) -> web.Response:
    project_id, region_id = scope(request)
    state = request.app[STATE]
    state.stats.endpoints["get"] += 1
    snap = state.store.get(project_id, region_id, request.match_info["snapshot_id"], state.clock())
    return web.json_response(snap)


async def patch_snapshot(request: web.Request) -> web.Response:
    project_id, region_id = scope(request)
    state = request.app[STATE]
    state.stats.endpoints["patch"] += 1
    snapshot_id = request.match_info["snapshot_id"]
    before = state.store.find(project_id, region_id, snapshot_id).updated_at
    raw = await request.read()
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        raise SandboxError(
            400, "ValidationError", "Validation error", {"_schema": ["Invalid JSON."]}
        ) from None
    snap = state.store.patch(project_id, region_id, snapshot_id, body, state.clock())
    if snap["updated_at"] != before:
        state.stats.writes += 1
    return web.json_response(snap)


async def sandbox_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].stats.to_json())


async def sandbox_reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"reset": True})


async def sandbox_mutate(request: web.Request) -> web.Response:
    """POST {"project_id", "region_id", "create": N, "delete": M}: someone else's changes."""
    try:
        body = await request.json()
        counts = {k: int(body.get(k, 0)) for k in ("create", "delete")}
        key = int(body.get("project_id", 1)), int(body.get("region_id", 1))
    except (ValueError, TypeError, AttributeError):
        return error_response(400, "ValidationError", "expected JSON with integer fields")
    try:
        return web.json_response(request.app[STATE].store.mutate(*key, **counts))
    except SandboxError as error:
        return from_error(error)


def make_app(config: SandboxConfig | None = None) -> web.Application:
    app = web.Application(middlewares=[sandbox_middleware])
    app[STATE] = SandboxState(config or SandboxConfig())
    base = API_PREFIX + "/{project_id}/{region_id}"
    app.router.add_get(base, list_snapshots)
    app.router.add_get(base + "/", list_snapshots)
    app.router.add_get(base + "/{snapshot_id}", get_snapshot)
    app.router.add_patch(base + "/{snapshot_id}", patch_snapshot)
    app.router.add_get("/_sandbox/stats", sandbox_stats)
    app.router.add_post("/_sandbox/reset", sandbox_reset)
    app.router.add_post("/_sandbox/mutate", sandbox_mutate)
    return app
