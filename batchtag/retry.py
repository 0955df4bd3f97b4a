"""What to do with each failed response: the spec's table as code, with tenacity strategies.

The engine makes the first attempt itself (no tenacity on the hot path) and asks the
policy for a delay only after a failure, so a waiting snapshot can be parked without
holding a worker.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from tenacity import (
    RetryCallState,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from batchtag.defaults import default
from batchtag.errors import ApiError

# Response classes.
LOCK = "lock"  # 409: a task holds the snapshot; long per-snapshot backoff
RATE_LIMIT = "rate_limit"  # 429: shared slow-down in the limiter, then retry
TRANSIENT = "transient"  # 5xx, 408, timeouts, dropped connections
AUTH = "auth"  # 401/403: abort the run
NOT_FOUND = "not_found"  # 404: final
REJECTED = "rejected"  # 400/422 and anything else: final
RETRY_CLASSES = (LOCK, RATE_LIMIT, TRANSIENT)


def classify(error: ApiError) -> str:
    """Map a failure to its class; `x-should-retry` overrides all but credentials."""
    status = error.status
    if status in (401, 403):
        return AUTH
    if error.should_retry is False:
        return NOT_FOUND if status == 404 else REJECTED
    if status == 409:
        return LOCK
    if status == 429:
        return RATE_LIMIT
    if status == 0 or status == 408 or status >= 500 or error.should_retry:
        return TRANSIENT
    if status == 404:
        return NOT_FOUND
    return REJECTED


@dataclass(frozen=True)
class Policy:
    """A tenacity stop condition and wait strategy for one response class."""

    stop: stop_base
    wait: wait_base

    def delay(self, state: RetryCallState, attempt: int) -> float | None:
        """Seconds until the next try after failure number `attempt`, or None to give up."""
        state.attempt_number = attempt
        state.outcome_timestamp = time.monotonic()
        if self.stop(state):
            return None
        return float(self.wait(state))


@dataclass(frozen=True)
class RetrySettings:
    lock_budget: float = default("lock_budget")  # seconds a snapshot may stay locked, then failed
    lock_attempts: int = 60
    transient_retries: int = default("retries")
    rate_limit_retries: int = 30

    def policies(self) -> dict[str, Policy]:
        return {
            # Locks last as long as a task does: long jittered waits, own budget.
            LOCK: Policy(
                stop_after_attempt(self.lock_attempts) | stop_after_delay(self.lock_budget),
                wait_random_exponential(multiplier=1, min=1, max=30),
            ),
            # The limiter already pauses every worker, so no extra wait here.
            RATE_LIMIT: Policy(
                stop_after_attempt(self.rate_limit_retries + 1),
                wait_random_exponential(multiplier=0, max=0),
            ),
            # Same shape as the official SDK: min(0.5 * 2**n, 8) s with jitter.
            TRANSIENT: Policy(
                stop_after_attempt(self.transient_retries + 1) | stop_after_delay(120),
                wait_random_exponential(multiplier=0.5, max=8),
            ),
        }


def new_state() -> RetryCallState:
    return RetryCallState(None, None, (), {})  # type: ignore[arg-type]


class Breaker:
    """Retry budget: trips when most recent attempts failed transiently.

    A trip pauses dispatch for `cooldown`; `max_trips` trips with no success in
    between abort the run, so a dead or overloaded API is not hammered for hours.
    """

    def __init__(
        self,
        window: int = 50,
        min_samples: int = 20,
        threshold: float = 0.5,
        cooldown: float = 5.0,
        max_trips: int = 3,
    ):
        self.outcomes: deque[bool] = deque(maxlen=window)
        self.min_samples = min_samples
        self.threshold = threshold
        self.cooldown = cooldown
        self.max_trips = max_trips
        self.trips = 0  # consecutive, reset by a success after a trip
        self.total_trips = 0

    def record(self, failed: bool) -> str | None:
        """Record one attempt; return "pause", "abort" or None."""
        self.outcomes.append(failed)
        if not failed:
            if self.trips and len(self.outcomes) >= self.min_samples:
                self.trips = 0
            return None
        if len(self.outcomes) < self.min_samples:
            return None
        if sum(self.outcomes) / len(self.outcomes) < self.threshold:
            return None
        self.outcomes.clear()
        self.trips += 1
        self.total_trips += 1
        return "abort" if self.trips >= self.max_trips else "pause"
