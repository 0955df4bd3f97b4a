"""The sandbox's server-side rate limit and its request/response counters."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any


class TokenBucket:
    """Server-side rate limit: `rate` tokens a second, a burst of one second's worth."""

    def __init__(self, rate: float):
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.last = time.monotonic()

    def take(self) -> float:
        """Take a token; return 0, or the seconds until one will be available."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Stats:
    """Request and response counts; `/_sandbox/*` calls are not counted.

    `requests` (by method) and `responses` (by status) count every request; `resources`
    splits them by collection (snapshots, volumes, projects, regions); `endpoints` counts
    the requests that reached a handler (list/get/patch are the snapshot endpoints).
    `first_at` holds, per method, the wall-clock time (Unix seconds) of its first request:
    another process can set it against its own start (how soon a client sends).
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.requests: Counter[str] = Counter()
        self.first_at: dict[str, float] = {}
        self.responses: Counter[str] = Counter()
        self.timeline: dict[int, Counter[str]] = {}
        self.inflight: Counter[str] = Counter()
        self.inflight_total = 0
        self.endpoints: Counter[str] = Counter()  # list / get / patch, volume_list ...
        self.resources: dict[str, tuple[Counter[str], Counter[str]]] = {}
        self.max_inflight = 0
        self.max_inflight_per_snapshot = 0
        self.writes = 0  # snapshot PATCHes that changed something
        self.volume_writes = 0  # volume PATCHes that changed something

    def enter(self, method: str, key: str | None) -> None:
        self.requests[method] += 1
        if method not in self.first_at:
            self.first_at[method] = time.time()
        self.inflight_total += 1
        self.max_inflight = max(self.max_inflight, self.inflight_total)
        if key:
            self.inflight[key] += 1
            self.max_inflight_per_snapshot = max(self.max_inflight_per_snapshot, self.inflight[key])

    def leave(self, key: str | None, outcome: str) -> None:
        self.inflight_total -= 1
        if key:
            self.inflight[key] -= 1
            if not self.inflight[key]:
                del self.inflight[key]
        self.responses[outcome] += 1
        second = int(time.monotonic() - self.started)
        self.timeline.setdefault(second, Counter())[outcome] += 1

    def resource(self, name: str, method: str | None = None, outcome: str | None = None) -> None:
        """Count a request to collection `name` (`method`), or its answer (`outcome`)."""
        requests, responses = self.resources.setdefault(name, (Counter(), Counter()))
        if method is not None:
            requests[method] += 1
        if outcome is not None:
            responses[outcome] += 1

    def to_json(self) -> dict[str, Any]:
        last = max(self.timeline, default=-1)
        return {
            "requests": dict(self.requests),
            "responses": dict(self.responses),
            "total_requests": sum(self.requests.values()),
            "first_at": dict(self.first_at),
            "endpoints": dict(self.endpoints),
            "max_inflight": self.max_inflight,
            "max_inflight_per_snapshot": self.max_inflight_per_snapshot,
            "writes": self.writes,
            "volume_writes": self.volume_writes,
            "resources": {
                name: {"requests": dict(requests), "responses": dict(responses)}
                for name, (requests, responses) in sorted(self.resources.items())
            },
            "timeline": [
                {"second": s, "responses": dict(self.timeline.get(s, {}))} for s in range(last + 1)
            ],
        }
