"""One snapshot's way through the engine: its Job, the control-flow signals, its Result."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from batchtag.errors import ApiError
from batchtag.gcore import Attempts
from batchtag.model import PlanEntry, Result, SharedDict, Snapshot, json_text

MAYBE_APPLIED = "may or may not have been applied"
IN_FLIGHT = f"interrupted in flight: {MAYBE_APPLIED}"


class Park(Exception):
    """The job must wait `delay` seconds, off the worker."""

    def __init__(self, delay: float):
        self.delay = delay


class Final(Exception):
    """The job ends with `status` after this error."""

    def __init__(self, status: str, error: ApiError):
        self.status = status
        self.error = error


@lru_cache(maxsize=4)
def _whole_second(whole: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))


_MILLIS = [f".{ms:03d}Z" for ms in range(1000)]  # every ending, made once


def iso_utc(seconds: float) -> str:
    """Epoch seconds as UTC to the millisecond, e.g. 2025-01-01T12:00:00.123Z.

    Called twice per snapshot: the whole second is formatted once (cached), the
    milliseconds ending is looked up; ~6x cheaper than datetime.isoformat.

    Examples
    --------
    >>> iso_utc(1735732800.1234)
    '2025-01-01T12:00:00.123Z'
    """
    whole = int(seconds)
    return _whole_second(whole) + _MILLIS[int((seconds - whole) * 1000)]


class Job:
    __slots__ = (
        "entry",
        "attempts",
        "started",
        "started_at",
        "retries",
        "snapshot",
        "queued",
        "last_error",
        "wrote",
    )

    def __init__(self, entry: PlanEntry):
        self.entry = entry
        self.attempts = 0
        self.started = 0.0  # clock time of the first attempt
        self.started_at: str | None = None
        self.retries: Attempts | None = None  # made at the first failure
        self.snapshot: Snapshot | None = None  # current state, when it was read
        self.queued = False  # holds a queue slot until it finishes
        self.last_error: ApiError | None = None
        self.wrote = False  # a PATCH was sent (it may have been applied)

    def past_deadline(self, now: float, deadline: float, wait: float = 0.0) -> bool:
        """True when waiting `wait` more seconds would take it past `deadline` seconds."""
        return now - self.started + wait > deadline

    def next_delay(
        self, kind: str, error: ApiError, policies: dict, clock: Any, deadline: float, pause: float
    ) -> float | None:
        """Seconds until this job's next try, or None when its retries or deadline are spent.

        `policies` by retry class, `clock` the engine's; `pause`: the shared 429 pause it
        will wait anyway, counted against the `deadline` (seconds since its first attempt)."""
        if self.retries is None:
            self.retries = Attempts()
        delay = self.retries.next_delay(kind, error, policies, clock)
        if delay is None:
            return None
        late = self.past_deadline(clock.monotonic(), deadline, max(delay, pause))
        return None if late else delay


class BlindBodies:
    """Blind merge patches (`PlanEntry.body(None)`) with their JSON text. Entries that
    share their tags (a SharedDict: most rows of a manifest say the same thing) share one
    body, built and encoded once; the dict is never changed after.

    Examples
    --------
    >>> tags = SharedDict({"env": "prod"})
    >>> bodies = BlindBodies()
    >>> a, b = (bodies.get(PlanEntry(1, 1, sid, tags=tags)) for sid in ("x", "y"))
    >>> a[1], a[0] is b[0]
    ('{"tags":{"env":"prod"}}', True)
    """

    def __init__(self, limit: int = 256):
        self.limit = limit  # distinct shared bodies kept
        self._known: dict[tuple, tuple[dict, dict, str]] = {}

    def get(self, entry: PlanEntry) -> tuple[dict, str]:
        tags = entry.tags
        if type(tags) is not SharedDict:
            body = entry.body(None)
            return body, json_text(body)
        key = (id(tags), entry.clear, entry.name, bool(entry.renames))
        known = self._known.get(key)
        if known is None or known[0] is not tags:  # the tags object is held: its id stays
            body = entry.body(None)
            known = (tags, body, json_text(body))
            if len(self._known) >= self.limit:
                self._known.clear()
            self._known[key] = known
        return known[1], known[2]


def build_result(
    job: Job,
    status: str,
    *,
    finished: float,
    finished_at: str | None,
    after: Snapshot | None = None,
    http_status: int | None = None,
    body: dict | None = None,
    sent: str | None = None,
    api_error: ApiError | None = None,
    error: str | None = None,
) -> Result:
    """The report row of a finished job (`finished`: clock time, `finished_at`: ISO;
    `after`: the state the run left, the PATCH's answer or, for a noop, the state read)."""
    entry, before, started_at = job.entry, job.snapshot, job.started_at
    elapsed_ms = round((finished - job.started) * 1000, 1) if started_at else None
    result = Result(
        project_id=entry.project_id,
        region_id=entry.region_id,
        snapshot_id=entry.snapshot_id,
        status=status,
        http_status=http_status,
        attempts=job.attempts,
        error=error,
        started_at=started_at,
        finished_at=finished_at if started_at else None,
        elapsed_ms=elapsed_ms,
        rows=entry.rows,
        extra=entry.extra,
        body=body,
        body_json=sent,
    )
    if before is not None:
        result.tags_before = before.user_tags
        result.ro_tags = before.read_only_tags
        result.name_before = before.name
    if after is not None:
        result.tags_after = after.user_tags
        result.name_after = after.name
    if api_error is not None:
        result.http_status = api_error.status or None
        result.error_class = api_error.exception_class
        result.error = str(api_error.message)
        if api_error.invalid_fields:
            result.error += f" invalid_fields={api_error.invalid_fields}"
        result.request_id = api_error.request_id
    return result
