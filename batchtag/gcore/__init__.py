"""The Gcore API over one aiohttp session: the client (URLs, auth, errors), list pages
parsed into Arrow, the shared rate limiter, the retry policy and breaker, and the clock
they read.
"""

from __future__ import annotations

from batchtag.lazy import lazy_exports

_HOMES = {
    "Attempts": "_retry",
    "describe": "_retry",
    "fatal_reason": "_retry",
    "Client": "_client",
    "LIST_PAGE": "_client",
    "PROJECTS": "_client",
    "REGIONS": "_client",
    "Slots": "_client",
    "SNAPSHOTS": "_client",
    "VOLUMES": "_client",
    "parse_retry_after": "_client",
    "Clock": "_clock",
    "REAL_CLOCK": "_clock",
    "VirtualClock": "_clock",
    "BACKOFF_CAP": "_limiter",
    "RateLimiter": "_limiter",
    "TableClient": "_pages",
    "row_keys": "_pages",
    "table_parser": "_pages",
    "take_rows": "_pages",
    "AUTH": "_retry",
    "Breaker": "_retry",
    "GONE": "_retry",
    "LOCK": "_retry",
    "RATE_LIMIT": "_retry",
    "REJECTED": "_retry",
    "RETRY_AFTER_CAP": "_retry",
    "RETRY_CLASSES": "_retry",
    "RetryAfterCap": "_retry",
    "RetrySettings": "_retry",
    "TLS": "_retry",
    "TRANSIENT": "_retry",
    "classify": "_retry",
    "new_state": "_retry",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
