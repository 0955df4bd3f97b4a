"""The sandbox aiohttp application: the Gcore snapshot and volume endpoints, the projects
and regions of its scopes, plus fault knobs.

Every public request goes through the same steps, in this order:

1. auth (401) - an unauthenticated caller uses no rate-limit tokens;
2. server-side rate limit (429, with Retry-After / retry-after-ms unless turned off);
3. fault injection: dropped connection, then a random 500/502/503;
4. latency (with jitter);
5. a scope set to fail (`fail_scopes`) answers its error;
6. handling: routing, lookups (404), validation (400), locks (409), the write.

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

from batchtag.sandbox import uuids
from batchtag.sandbox.rules import SandboxError
from batchtag.sandbox.scopes import failing_scopes, failure, project_json, region_json
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
VOLUMES_PREFIX = "/cloud/v1/volumes"
PROJECTS_PREFIX = "/cloud/v1/projects"
REGIONS_PREFIX = "/cloud/v1/regions"
REGIONS_LIMIT = 100  # the default page of GET /cloud/v1/regions (at most MAX_LIMIT)


@dataclass
class SandboxConfig:
    """What a sandbox serves and how it misbehaves: ``batchtag.sandbox(**fields)`` and the
    ``batchtag sandbox`` command's options (``--lock-rate`` is ``lock_rate``).

    Parameters
    ----------
    seed : int, default 0
        Seeds the snapshots, volumes and fault dice: the same seed serves the same data.
    snapshots : int, default 200
        Snapshots in each scope (project x region).
    volumes : int, optional
        Volumes in each scope; default a quarter of `snapshots`, at least 1. Every snapshot
        names one of them, except about 3% whose volume has been deleted.
    project_ids, region_ids : list of int, default [1]
        The scopes: every project has every region (``GET /cloud/v1/projects`` and
        ``/regions`` list them).
    api_key : str, optional
        The one key accepted (others get 401, like Gcore); None accepts any non-empty one.
        ``batchtag.sandbox()`` makes a random one when not given.
    latency_ms : float, default 0
        Mean latency; each request waits 50% to 150% of it.
    rate_limit : float, optional
        Requests per second over all clients; beyond it, 429. None: no limit.
    retry_after : bool, default True
        429 answers carry ``Retry-After`` and ``retry-after-ms``.
    lock_rate : float, default 0
        Share of snapshots that start locked by a running task (``task_id`` set): writes to
        them get 409.
    lock_ms : float, default 1000
        A lock clears this long after the first request that touches the snapshot.
    error_rate : float, default 0
        Share of requests answered with a random 500, 502 or 503.
    error_should_retry : bool, optional
        The ``x-should-retry`` header on those injected 5xx (None: no header).
    drop_rate : float, default 0
        Share of requests whose connection is closed with no answer.
    churn_after : int, optional
        Once this many list requests of a scope were answered, someone else deletes
        `churn_delete` of its snapshots and creates `churn_create` (consistency tests).
    churn_create, churn_delete : int, default 0
        See `churn_after`.
    churn_every : int, optional
        Then again every this many list answers (a scope that is never still).
    tls_cert, tls_key : str, optional
        PEM files: serve https with this certificate chain and key; None: plain http.
    fail_scopes : list, default []
        Scopes whose every request answers an error: ``"P/R"`` (500) or ``"P/R:STATUS"``
        (any 4xx or 5xx), or the tuples ``(P, R)`` / ``(P, R, STATUS)``.
    """

    seed: int = 0
    snapshots: int = 200
    volumes: int | None = None
    project_ids: list[int] = field(default_factory=lambda: [1])
    region_ids: list[int] = field(default_factory=lambda: [1])
    api_key: str | None = None
    latency_ms: float = 0.0
    rate_limit: float | None = None
    retry_after: bool = True
    lock_rate: float = 0.0
    lock_ms: float = 1000.0
    error_rate: float = 0.0
    error_should_retry: bool | None = None
    drop_rate: float = 0.0
    churn_after: int | None = None
    churn_create: int = 0
    churn_delete: int = 0
    churn_every: int | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    fail_scopes: list[str | tuple[int, ...]] = field(default_factory=list)


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
            volumes=config.volumes,
        )
        self.failing = failing_scopes(
            config.fail_scopes, self.store.project_ids, self.store.region_ids
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
    snapshot_id = snapshot_id.lower() if uuids.parse(snapshot_id) else snapshot_id
    return f"{info['project_id']}/{info['region_id']}/{snapshot_id}"


RESOURCES = {
    API_PREFIX: "snapshots",
    VOLUMES_PREFIX: "volumes",
    PROJECTS_PREFIX: "projects",
    REGIONS_PREFIX: "regions",
}


def resource_of(path: str) -> str:
    """Which collection a request path is about, for the stats ("other": none)."""
    for prefix, name in RESOURCES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return name
    return "other"


@web.middleware
async def sandbox_middleware(request: web.Request, handler) -> web.StreamResponse:
    if request.path.startswith("/_sandbox/"):
        return await handler(request)
    state = request.app[STATE]
    key = snapshot_key(request)
    resource = resource_of(request.path)
    state.stats.enter(request.method, key)
    state.stats.resource(resource, method=request.method)
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
        state.stats.resource(resource, outcome=outcome)


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
    failed = scope_failure(state, request)
    if failed is not None:
        return failed
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


def scope_failure(state: SandboxState, request: web.Request) -> web.Response | None:
    """The error of a scope set to fail, for a request naming that scope; else None."""
    info = request.match_info
    if not state.failing or "project_id" not in info or "region_id" not in info:
        return None
    try:
        key = int(info["project_id"]), int(info["region_id"])
    except ValueError:
        return None  # not a scope: the handler answers 400
    status = state.failing.get(key)
    if status is None:
        return None
    return error_response(status, *failure(status, *key))


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


def page_params(request: web.Request, default_limit: int = MAX_LIMIT) -> tuple[int, int]:
    """(limit, offset) of a list request: limit 1..MAX_LIMIT, offset 0 or more."""
    query = request.query
    limit = int_param(query.get("limit", str(default_limit)), "limit", 1, MAX_LIMIT)
    return limit, int_param(query.get("offset", "0"), "offset", 0)


async def list_snapshots(request: web.Request) -> web.Response:
    project_id, region_id = scope(request)
    query = request.query
    limit, offset = page_params(request)
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
    body = json_body(await request.read())
    snap = state.store.patch(project_id, region_id, snapshot_id, body, state.clock())
    if snap["updated_at"] != before:
        state.stats.writes += 1
    return web.json_response(snap)


def tag_filters(request: web.Request) -> tuple[list[str], dict[str, str]]:
    """`tag_key` (repeatable) and `tag_key_value` (a JSON object of keys to values, e.g.
    ``{"team": "data"}``; repeatable too: every pair must match) of a volume list."""
    pairs: dict[str, str] = {}
    for text in request.query.getall("tag_key_value", []):
        try:
            found = json.loads(text)
        except ValueError:
            found = None
        if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
            raise SandboxError(
                400,
                "ValidationError",
                "Validation error",
                {"tag_key_value": ['Must be a JSON object of tag values, e.g. {"team": "data"}.']},
            )
        pairs.update(found)
    return request.query.getall("tag_key", []), pairs


async def list_volumes(request: web.Request) -> web.Response:
    project_id, region_id = scope(request)
    limit, offset = page_params(request)
    keys, pairs = tag_filters(request)
    state = request.app[STATE]
    state.stats.endpoints["volume_list"] += 1
    count, results = state.store.list_volumes(project_id, region_id, limit, offset, keys, pairs)
    return web.json_response({"count": count, "results": results})


async def get_volume(request: web.Request) -> web.Response:
    project_id, region_id = scope(request)
    state = request.app[STATE]
    state.stats.endpoints["volume_get"] += 1
    volume_id = request.match_info["volume_id"]
    return web.json_response(state.store.get_volume(project_id, region_id, volume_id))


async def patch_volume(request: web.Request) -> web.Response:
    project_id, region_id = scope(request)
    state = request.app[STATE]
    state.stats.endpoints["volume_patch"] += 1
    state.store.find_volume(project_id, region_id, request.match_info["volume_id"])  # 404 first
    body = json_body(await request.read())
    volume, changed = state.store.patch_volume(
        project_id, region_id, request.match_info["volume_id"], body
    )
    state.stats.volume_writes += changed
    return web.json_response(volume)


def json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise SandboxError(
            400, "ValidationError", "Validation error", {"_schema": ["Invalid JSON."]}
        ) from None


def listed(request: web.Request, items: list[dict[str, Any]], default_limit: int) -> web.Response:
    limit, offset = page_params(request, default_limit)
    return web.json_response({"count": len(items), "results": items[offset : offset + limit]})


def projects(state: SandboxState) -> list[dict[str, Any]]:
    ids = list(dict.fromkeys(state.store.project_ids))
    return [project_json(p, default=(i == 0)) for i, p in enumerate(ids)]


def regions(state: SandboxState) -> list[dict[str, Any]]:
    return [region_json(r) for r in dict.fromkeys(state.store.region_ids)]


async def list_projects(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.stats.endpoints["project_list"] += 1
    return listed(request, projects(state), MAX_LIMIT)


async def get_project(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.stats.endpoints["project_get"] += 1
    project_id = int_param(request.match_info["project_id"], "project_id")
    for project in projects(state):
        if project["id"] == project_id:
            return web.json_response(project)
    raise SandboxError(404, "NotFoundError", f"Project {project_id} not found")


async def list_regions(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.stats.endpoints["region_list"] += 1
    return listed(request, regions(state), REGIONS_LIMIT)


async def get_region(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.stats.endpoints["region_get"] += 1
    region_id = int_param(request.match_info["region_id"], "region_id")
    for region in regions(state):
        if region["id"] == region_id:
            return web.json_response(region)
    raise SandboxError(404, "NotFoundError", f"Region {region_id} not found")


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
    volumes = VOLUMES_PREFIX + "/{project_id}/{region_id}"
    app.router.add_get(volumes, list_volumes)
    app.router.add_get(volumes + "/", list_volumes)
    app.router.add_get(volumes + "/{volume_id}", get_volume)
    app.router.add_patch(volumes + "/{volume_id}", patch_volume)
    for prefix, listing, one in (
        (PROJECTS_PREFIX, list_projects, get_project),
        (REGIONS_PREFIX, list_regions, get_region),
    ):
        app.router.add_get(prefix, listing)
        app.router.add_get(prefix + "/", listing)
        key = "project_id" if prefix == PROJECTS_PREFIX else "region_id"
        app.router.add_get(prefix + "/{" + key + "}", one)
    app.router.add_get("/_sandbox/stats", sandbox_stats)
    app.router.add_post("/_sandbox/reset", sandbox_reset)
    app.router.add_post("/_sandbox/mutate", sandbox_mutate)
    return app
