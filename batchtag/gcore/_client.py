"""The Gcore snapshot API over one aiohttp session: URLs, auth, parsing, errors."""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import math
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import aiohttp.helpers
import yarl
from aiohttp.client_proto import ResponseHandler

from batchtag.config import Settings
from batchtag.defaults import default
from batchtag.errors import ApiError

SNAPSHOTS = "/cloud/v1/snapshots"
PROJECTS = "/cloud/v1/projects"  # the projects the key sees
REGIONS = "/cloud/v1/regions"  # the regions (every project sees the same list)
SCOPE_PAGE = 100  # page size for the project and region listings (the regions' default)
VOLUMES = "/cloud/v1/volumes"
LIST_PAGE = 1000  # the API's maximum page size
LIST_QUERY = "?limit={limit}&offset={offset}"
JSON_BODY = {"Content-Type": "application/json"}
MIN_DEADLINE = 60.0  # seconds; the smallest default total deadline of one request


def default_deadline(timeout: float) -> float:
    """The default total deadline of one request: twice the read timeout, at least 60 s.

    The read timeout alone never fires on a body trickled a byte at a time.

    Examples
    --------
    >>> default_deadline(30.0), default_deadline(45.0)
    (60.0, 90.0)
    """
    return max(2 * timeout, MIN_DEADLINE)


def snapshot_url(
    base_url: str, project_id: int, region_id: int, snapshot_id: str = "", resource: str = SNAPSHOTS
) -> str:
    """The URL of a scope's list endpoint, or of one item in it; `resource` is
    `SNAPSHOTS` or `VOLUMES`."""
    url = f"{base_url}{resource}/{project_id}/{region_id}"
    return f"{url}/{snapshot_id}" if snapshot_id else url


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def parse_should_retry(headers: Any) -> bool | None:
    value = (headers.get("x-should-retry") or "").strip().lower()
    return {"true": True, "false": False}.get(value)


def error_from_response(status: int, headers: Any, raw: bytes) -> ApiError:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    message = data.get("message") or raw[:200].decode("utf-8", "replace").strip()
    return ApiError(
        status=status,
        exception_class=str(data.get("exception_class") or f"HTTP{status}"),
        message=str(message),
        request_id=data.get("request_id") or headers.get("x-request-id"),
        retry_after=parse_retry_after(headers),
        should_retry=parse_should_retry(headers),
        invalid_fields=data.get("invalid_fields"),
    )


def bad_response(status: int, why: str) -> ApiError:
    """A 2xx whose body is not what the API documents: final (may have been applied)."""
    return ApiError(status, "BadResponse", f"HTTP {status} response unusable: {why}")


def parse_body(status: int, raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_response(status, f"not JSON ({exc})") from None


def response_body(status: int, headers: Any, raw: bytes) -> Any:
    """The parsed body of a 2xx response; any other status raises its ApiError (a 3xx
    is never followed: it names its Location)."""
    if status >= 400:
        raise error_from_response(status, headers, raw)
    if 300 <= status < 400:
        where = headers.get("Location") or "no Location"
        raise ApiError(status, "Redirect", f"redirected to {where}; not followed", None)
    return parse_body(status, raw)


def list_body(status: int, data: Any) -> dict:
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise bad_response(status, "a list page needs an object with a 'results' list")
    return data


def expect_snapshot(status: int, data: Any) -> dict:
    """The body of a GET or PATCH of one snapshot: an object with a `tags` list."""
    if not isinstance(data, dict):
        raise bad_response(status, "expected a snapshot object, got " + type(data).__name__)
    tags = data.get("tags")
    if not isinstance(tags, list) or not all(
        isinstance(t, dict) and "key" in t and "value" in t for t in tags
    ):
        raise bad_response(status, "the snapshot's 'tags' is not a list of key/value objects")
    return data


def env_proxy(url: str) -> tuple[Any, Any]:
    """(proxy URL, proxy auth) for `url` from HTTP(S)_PROXY / NO_PROXY, or (None, None).

    Looked up once per session: aiohttp's `trust_env` looks it up (and ~/.netrc) in a worker
    thread on every request: two thread hops per request."""
    try:
        return aiohttp.helpers.get_env_proxy_for_url(yarl.URL(url))
    except LookupError:
        return None, None


class LazyReadTimer(ResponseHandler):
    """aiohttp's connection protocol with a cheaper read timeout (``sock_read``), same rule:
    a request fails once no data came for `timeout` seconds.

    aiohttp cancels its read timer and schedules a new one for every request it sends and
    every chunk it receives, a cost paid per request. Here a
    chunk only moves the silence deadline forward; one timer per connection stays armed
    and, when it fires, either times the request out or re-arms itself for the deadline
    it finds. A stopped timeout (the response is complete) just clears the deadline.
    """

    _silent_until = math.inf  # loop time at which the current silence times out

    def _reschedule_timeout(self) -> None:
        timeout = self._read_timeout
        if not timeout:
            self._drop_timeout()
            return
        self._silent_until = self._loop.time() + timeout
        if self._read_timeout_handle is None:
            self._arm(self._silent_until)

    def _drop_timeout(self) -> None:
        self._silent_until = math.inf  # an armed timer finds nothing to do

    def _arm(self, when: float) -> None:
        self._read_timeout_handle = self._loop.call_at(when, self._check_silence)

    def _check_silence(self) -> None:
        self._read_timeout_handle = None
        until = self._silent_until
        if until == math.inf:
            return
        if self._loop.time() < until:
            self._arm(until)  # data came since: wait for the new deadline
        else:
            self._on_read_timeout()


def _use_lazy_read_timer(connector: aiohttp.TCPConnector) -> None:
    """Make `connector` build `LazyReadTimer` protocols (when this aiohttp has the hooks
    it overrides; otherwise aiohttp's own timer stays)."""
    methods = ("_reschedule_timeout", "_drop_timeout", "_on_read_timeout")
    if not all(callable(getattr(ResponseHandler, name, None)) for name in methods):
        return
    used = ResponseHandler._reschedule_timeout.__code__.co_names  # what the original uses
    if not {"_read_timeout", "_read_timeout_handle", "_loop"} <= set(used):
        return
    factory = getattr(connector, "_factory", None)
    if isinstance(factory, functools.partial) and factory.func is ResponseHandler:
        connector._factory = functools.partial(LazyReadTimer, *factory.args, **factory.keywords)


class Slots:
    """A counting semaphore whose free path is one comparison and no coroutine
    (asyncio.Semaphore runs two coroutines and scans its waiters per request).

    Examples
    --------
    >>> slots = Slots(1)
    >>> slots.take_now(), slots.take_now()
    (True, False)
    >>> slots.give(); slots.take_now()
    True
    """

    def __init__(self, count: int):
        self._free = count
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def take_now(self) -> bool:
        """Take a slot if one is free and nobody waits for one; False: `await take()`."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        """Wait for a slot, first come first served."""
        if self.take_now():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed a slot just as it was cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def give(self) -> None:
        """Free a slot: straight to the longest waiter, if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


class Client:
    """One session per run.

    Three limits bound a request, none of them counting the wait for a pool slot:
    `connect_timeout` (TCP + TLS connect), `timeout` (the longest silence while reading)
    and `request_deadline` (the whole request, send to last byte; default
    `default_deadline(timeout)`). Redirects are never followed: a 3xx is an error naming
    its Location, so a write is never replayed elsewhere and the key never leaves the
    host. Proxies come from HTTP(S)_PROXY / NO_PROXY (`env_proxy`, once per session).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        connections: int = default("concurrency"),
        timeout: float = default("timeout"),
        connect_timeout: float = default("connect_timeout"),
        request_deadline: float | None = None,
    ):
        self.settings = settings
        self._connections = connections
        self.request_deadline = request_deadline or default_deadline(timeout)
        # aiohttp's own timers (no asyncio.timeout per request). Its `total` also counts
        # the wait for a pooled connection; `_slots`, as many as the pool's connections,
        # is taken first, so a request that holds a slot finds a free connection at once:
        # the pool wait stays outside the deadline.
        self._timeout = aiohttp.ClientTimeout(
            total=self.request_deadline, sock_connect=connect_timeout, sock_read=timeout
        )
        self._slots = Slots(connections)  # the pool wait, outside the deadline
        self._session: aiohttp.ClientSession | None = None
        self._proxy: tuple[Any, Any] = (None, None)
        self._headers: dict[bool, dict[str, str]] = {}

    async def __aenter__(self) -> Client:
        tls = self.settings.ssl_context  # the CA bundle's context, built once; None: system CAs
        connector = aiohttp.TCPConnector(
            limit=self._connections, limit_per_host=0, ssl=True if tls is None else tls
        )
        _use_lazy_read_timer(connector)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            trust_env=False,  # the proxy is looked up once, below
            # Only harmless defaults here: aiohttp also sends a session's default headers
            # to a proxy (CONNECT), so the key goes with each request instead.
            headers={"Accept": "application/json", "User-Agent": "batchtag"},
        )
        auth = {"Authorization": f"APIKey {self.settings.api_key}"}
        self._headers = {False: auth, True: {**auth, **JSON_BODY}}  # by "has a body"
        self._proxy = env_proxy(self.settings.base_url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self, method: str, url: str, data: bytes | None = None, parse: Any = response_body
    ) -> tuple[int, Any]:
        """Send one request (`data`: a JSON body, already encoded); return (status, parsed
        JSON) or raise ApiError. `parse(status, headers, raw)` makes the body (and raises).

        Transport failures (timeouts, resets, dropped connections, TLS) become ApiError with
        status 0 so the engine classifies every failure the same way.
        """
        assert self._session is not None, "use 'async with Client(...)'"
        if not self._slots.take_now():
            await self._slots.take()
        try:
            async with self._session.request(
                method,
                url,
                data=data,
                headers=self._headers[data is not None],
                allow_redirects=False,
                proxy=self._proxy[0],
                proxy_auth=self._proxy[1],
            ) as resp:
                status, headers, raw = resp.status, resp.headers, await resp.read()
        except TimeoutError as exc:
            raise ApiError(0, "Timeout", self._timeout_message(method)) from exc
        except aiohttp.ClientError as exc:
            # str(exc) of client errors names host and port only, never headers.
            raise ApiError(0, type(exc).__name__, str(exc) or type(exc).__name__) from exc
        except ssl.SSLError as exc:
            raise ApiError(0, "SSLError", str(exc)) from exc
        finally:
            self._slots.give()
        return status, parse(status, headers, raw)

    def _timeout_message(self, method: str) -> str:
        return (
            f"{method} timed out (no data for {self._timeout.sock_read:g} s, "
            f"or not done within the {self.request_deadline:g} s request deadline)"
        )

    def url(
        self, project_id: int, region_id: int, snapshot_id: str = "", *, resource: str = SNAPSHOTS
    ) -> str:
        """A scope's list URL, or one item's (`resource`: `SNAPSHOTS` or `VOLUMES`)."""
        return snapshot_url(self.settings.base_url, project_id, region_id, snapshot_id, resource)

    async def get_snapshot(self, project_id: int, region_id: int, snapshot_id: str) -> dict:
        url = self.url(project_id, region_id, snapshot_id)
        return expect_snapshot(*await self.request("GET", url))

    async def patch_snapshot(
        self, project_id: int, region_id: int, snapshot_id: str, body: bytes
    ) -> dict:
        """PATCH one snapshot; `body` is the JSON merge patch, encoded."""
        url = self.url(project_id, region_id, snapshot_id)
        return expect_snapshot(*await self.request("PATCH", url, body))

    async def list_page(
        self, project_id: int, region_id: int, *, limit: int = LIST_PAGE, offset: int = 0
    ) -> dict:
        url = self.url(project_id, region_id) + LIST_QUERY.format(limit=limit, offset=offset)
        return list_body(*await self.request("GET", url))

    async def list_scope_page(self, listing: str, *, offset: int = 0) -> dict:
        """One page of `PROJECTS` or `REGIONS`: ``{"count": total, "results": [...]}``."""
        url = self.settings.base_url + listing + LIST_QUERY.format(limit=SCOPE_PAGE, offset=offset)
        return list_body(*await self.request("GET", url))

    async def iter_snapshots(
        self, project_id: int, region_id: int, *, page_size: int = LIST_PAGE
    ) -> AsyncIterator[dict]:
        """Every snapshot of a scope, page by page (count is the total across pages)."""
        offset = 0
        while True:
            page = await self.list_page(project_id, region_id, limit=page_size, offset=offset)
            results = page.get("results") or []
            for snapshot in results:
                yield snapshot
            offset += len(results)
            if not results or offset >= page.get("count", 0):
                return
