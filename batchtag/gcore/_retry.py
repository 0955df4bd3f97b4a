"""What to do with each failed response: the spec's table as code, with tenacity strategies.

The engine makes the first attempt itself (no tenacity on the hot path) and asks the
policy for a delay only after a failure, so a waiting snapshot can be parked without
holding a worker. A class's strategies are made at its first failure: a run without one
never imports tenacity (whose import brings in tornado where that is installed).
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from batchtag.defaults import default
from batchtag.errors import ApiError
from batchtag.gcore._clock import REAL_CLOCK, Clock

if TYPE_CHECKING:
    from tenacity import RetryCallState
    from tenacity.stop import stop_base
    from tenacity.wait import wait_base

# Response classes.
LOCK = "lock"  # 409: a task holds the snapshot; long per-snapshot backoff
RATE_LIMIT = "rate_limit"  # 429: shared slow-down in the limiter, then retry
TRANSIENT = "transient"  # 5xx, 408, timeouts, dropped connections
AUTH = "auth"  # 401/403: abort the run
TLS = "tls"  # certificate / TLS handshake failure: no retry can fix it, abort the run
GONE = "gone"  # 404: final (the snapshot's status is result.NOT_FOUND)
REJECTED = "rejected"  # 400/422, 3xx and anything else: final
RETRY_CLASSES = (LOCK, RATE_LIMIT, TRANSIENT)
RETRY_AFTER_CAP = 60.0  # seconds; the official SDK honours Retry-After only up to this
# Transport errors that mean the TLS handshake failed (aiohttp's and the ssl module's names).
TLS_ERRORS = frozenset(
    {
        "ClientConnectorCertificateError",
        "ClientConnectorSSLError",
        "ClientSSLError",
        "ServerFingerprintMismatch",
        "SSLError",
        "SSLCertVerificationError",
    }
)


def classify(error: ApiError) -> str:
    """Map a failure to its class; `x-should-retry` overrides all but credentials."""
    status = error.status
    if status in (401, 403):
        return AUTH
    if status == 0 and error.exception_class in TLS_ERRORS:
        return TLS
    if error.should_retry is False:
        return GONE if status == 404 else REJECTED
    if status == 409:
        return LOCK
    if status == 429:
        return RATE_LIMIT
    if status == 0 or status == 408 or status >= 500 or error.should_retry:
        return TRANSIENT
    if status == 404:
        return GONE
    return REJECTED


@dataclass(frozen=True)
class Policy:
    """A tenacity stop condition and wait strategy for one response class."""

    stop: stop_base
    wait: wait_base
    clock: Clock = REAL_CLOCK

    def delay(self, state: RetryCallState, attempt: int) -> float | None:
        """Seconds until the next try after failure number `attempt`, or None to give up.

        `state` comes from `new_state(clock)`: tenacity's `stop_after_delay` measures from
        its `start_time` to `outcome_timestamp`, both on this policy's clock."""
        state.attempt_number = attempt
        state.outcome_timestamp = self.clock.monotonic()
        if self.stop(state):
            return None
        return float(self.wait(state))


@dataclass(frozen=True)
class RetrySettings:
    lock_budget: float = default("lock_budget")  # seconds a snapshot may stay locked, then failed
    lock_attempts: int = 60
    transient_retries: int = default("retries")
    rate_limit_retries: int = 30

    def policies(self, clock: Clock = REAL_CLOCK) -> Mapping[str, Policy]:
        """The tenacity stop/wait pair per retry class, timed by `clock` (each made when
        first asked for: see the module docstring)."""
        return _Policies(self, clock)

    def policy(self, kind: str, clock: Clock = REAL_CLOCK) -> Policy:
        """The tenacity stop/wait pair of retry class `kind`, timed by `clock`."""
        from tenacity import stop_after_attempt, stop_after_delay, wait_random_exponential

        if kind == LOCK:  # locks last as long as a task does: long jittered waits, own budget
            return Policy(
                stop_after_attempt(self.lock_attempts) | stop_after_delay(self.lock_budget),
                wait_random_exponential(multiplier=1, min=1, max=30),
                clock,
            )
        if kind == RATE_LIMIT:  # the limiter already pauses every worker: no extra wait here
            return Policy(
                stop_after_attempt(self.rate_limit_retries + 1),
                wait_random_exponential(multiplier=0, max=0),
                clock,
            )
        if kind == TRANSIENT:  # same shape as the official SDK: min(0.5 * 2**n, 8) s, jitter
            return Policy(
                stop_after_attempt(self.transient_retries + 1) | stop_after_delay(120),
                wait_random_exponential(multiplier=0.5, max=8),
                clock,
            )
        raise KeyError(kind)


class _Policies(Mapping):
    """`RetrySettings.policies()`: each retry class's `Policy`, made on first use."""

    def __init__(self, settings: RetrySettings, clock: Clock):
        self._settings, self._clock = settings, clock
        self._made: dict[str, Policy] = {}

    def __getitem__(self, kind: str) -> Policy:
        made = self._made.get(kind)
        if made is None:
            made = self._made[kind] = self._settings.policy(kind, self._clock)
        return made

    def __iter__(self) -> Iterator[str]:
        return iter(RETRY_CLASSES)

    def __len__(self) -> int:
        return len(RETRY_CLASSES)


T = TypeVar("T")
log = logging.getLogger("batchtag.gcore._retry")


class RetryAfterCap:
    """Retry-After is honoured up to RETRY_AFTER_CAP; a longer ask is logged once per run."""

    def __init__(self) -> None:
        self.warned = False

    def note(self, retry_after: float | None) -> None:
        if retry_after is None or retry_after <= RETRY_AFTER_CAP or self.warned:
            return
        self.warned = True
        log.warning(
            "server asked to wait %.0f s (Retry-After); waiting at most %.0f s",
            retry_after,
            RETRY_AFTER_CAP,
        )


class Attempts:
    """The failures of one request (a read) or one snapshot (a write) so far, by retry
    class: the one retry decision of reads, writes and counts.

    Examples
    --------
    >>> attempts = Attempts()
    >>> delay = attempts.next_delay(TRANSIENT, ApiError(503, "Busy"), RetrySettings().policies())
    >>> delay is not None
    True
    """

    __slots__ = ("failures", "states")

    def __init__(self) -> None:
        self.failures: dict[str, int] = {}
        self.states: dict[str, RetryCallState] = {}  # tenacity's state per retry class

    def next_delay(
        self, kind: str, error: ApiError, policies: Mapping[str, Policy], clock: Clock = REAL_CLOCK
    ) -> float | None:
        """Seconds to wait before the next try of a `kind` failure, or None when that
        class's budget is spent. A transient error's Retry-After is honoured (capped)."""
        count = self.failures[kind] = self.failures.get(kind, 0) + 1
        state = self.states.get(kind)
        if state is None:
            state = self.states[kind] = new_state(clock)
        delay = policies[kind].delay(state, count)
        if delay is not None and kind == TRANSIENT and error.retry_after is not None:
            delay = min(max(delay, error.retry_after), RETRY_AFTER_CAP)
        return delay


def new_state(clock: Clock = REAL_CLOCK) -> RetryCallState:
    """A fresh tenacity state whose clock starts now on `clock`."""
    from tenacity import RetryCallState

    state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.start_time = clock.monotonic()
    return state


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
        self.causes: Counter[str] = Counter()  # transient failures by error text

    def record(self, failed: bool, cause: str | None = None) -> str | None:
        """Record one attempt (`cause`: the error of a failed one); return "pause",
        "abort" or None."""
        self.outcomes.append(failed)
        if failed and cause:
            self.causes[cause] += 1
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

    def cause(self) -> str:
        """The most common failure and how often, e.g. "HTTP 503 ...: busy (40 of 50)"."""
        if not self.causes:
            return "5xx/timeouts"
        text, count = self.causes.most_common(1)[0]
        return f"{text} ({count} of {sum(self.causes.values())})"


def fatal_reason(kind: str, error: ApiError) -> str | None:
    """Why `error` stops the whole run (credentials, TLS), or None: the one wording shared by
    writes (the engine) and reads (the state reader)."""
    if kind == AUTH:
        return f"credentials rejected (HTTP {error.status} {error.exception_class})"
    if kind == TLS:
        return f"TLS handshake failed, not retried: {describe(error)}"
    return None


def describe(error: ApiError) -> str:
    """An error as the circuit breaker names its cause, e.g. 'HTTP 503 ServiceUnavailable'."""
    if error.status:
        return f"HTTP {error.status} {error.exception_class}".rstrip()
    return f"{error.exception_class}: {error.message}"
