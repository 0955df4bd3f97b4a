"""The Gcore snapshot API over one aiohttp session: URLs, auth, parsing, errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from batchtag.config import Settings
from batchtag.defaults import default
from batchtag.errors import ApiError

SNAPSHOTS = "/cloud/v1/snapshots"
LIST_PAGE = 1000  # the API's maximum page size
JSON_BODY = {"Content-Type": "application/json"}


def snapshot_url(base_url: str, project_id: int, region_id: int, snapshot_id: str = "") -> str:
    url = f"{base_url}{SNAPSHOTS}/{project_id}/{region_id}"
    return f"{url}/{snapshot_id}" if snapshot_id else url


def tags_dict(snapshot: dict[str, Any], *, user_only: bool = False) -> dict[str, str]:
    """The snapshot's `tags` list as a {key: value} map."""
    return {
        t["key"]: t["value"]
        for t in snapshot.get("tags") or []
        if not (user_only and t.get("read_only"))
    }


def read_only_keys(snapshot: dict[str, Any]) -> frozenset[str]:
    return frozenset(t["key"] for t in snapshot.get("tags") or [] if t.get("read_only"))


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


class Client:
    """One session per run. Timeouts cover connect and read, not the wait for a pool slot."""

    def __init__(
        self,
        settings: Settings,
        *,
        connections: int = default("concurrency"),
        timeout: float = default("timeout"),
        connect_timeout: float = default("connect_timeout"),
    ):
        self.settings = settings
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=timeout
        )
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        connector = aiohttp.TCPConnector(limit=self._connections, limit_per_host=0)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers={
                "Authorization": f"APIKey {self.settings.api_key}",
                "Accept": "application/json",
                "User-Agent": "batchtag",
            },
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, url: str, data: bytes | None = None) -> tuple[int, Any]:
        """Send one request (`data`: a JSON body, already encoded); return (status, parsed
        JSON) or raise ApiError.

        Transport failures (timeouts, resets, dropped connections) become ApiError with
        status 0 so the engine classifies every failure the same way.
        """
        assert self._session is not None, "use 'async with Client(...)'"
        headers = None if data is None else JSON_BODY
        try:
            async with self._session.request(method, url, data=data, headers=headers) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise error_from_response(resp.status, resp.headers, raw)
                return resp.status, json.loads(raw) if raw else None
        except TimeoutError as exc:
            raise ApiError(0, "Timeout", f"{method} timed out") from exc
        except aiohttp.ClientError as exc:
            # str(exc) of client errors names host and port only, never headers.
            raise ApiError(0, type(exc).__name__, str(exc) or type(exc).__name__) from exc
        except ValueError as exc:
            raise ApiError(0, "BadResponse", f"response is not JSON: {exc}") from exc

    def url(self, project_id: int, region_id: int, snapshot_id: str = "") -> str:
        return snapshot_url(self.settings.base_url, project_id, region_id, snapshot_id)

    async def get_snapshot(self, project_id: int, region_id: int, snapshot_id: str) -> dict:
        return (await self.request("GET", self.url(project_id, region_id, snapshot_id)))[1]

    async def patch_snapshot(
        self, project_id: int, region_id: int, snapshot_id: str, body: bytes
    ) -> dict:
        """PATCH one snapshot; `body` is the JSON merge patch, encoded."""
        url = self.url(project_id, region_id, snapshot_id)
        return (await self.request("PATCH", url, body))[1]

    async def list_page(
        self, project_id: int, region_id: int, *, limit: int = LIST_PAGE, offset: int = 0
    ) -> dict:
        url = f"{self.url(project_id, region_id)}?limit={limit}&offset={offset}"
        return (await self.request("GET", url))[1]

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
