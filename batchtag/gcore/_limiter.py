"""One rate limiter shared by every worker of a run: a token bucket that adapts to 429s.

The bucket is kept as a virtual schedule (GCRA): each caller reserves the next free slot and
sleeps exactly until it. Callers are served in the order they arrive, nobody polls, and a
late wake-up (the event loop wakes about once a millisecond) does not lose throughput,
because the schedule, not the wake-ups, decides how many requests go out.

On a 429 the rate is cut multiplicatively and every worker pauses; when 429s stop, the rate
climbs back additively. The rate at which the last 429 happened is remembered, and the climb
slows down as it gets near it, so the run hovers just under the server's limit instead of
tripping it every few seconds (the idea behind TCP CUBIC's plateau). Once a limit has held
for a while, a 429 while probing near it steps back only 10% instead of halving: halving
each time would average about 75% of the limit. 429s from requests sent before a cut (at
the old rate) are counted but cut nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("batchtag.gcore._limiter")

BURST_SECONDS = 0.01  # default burst: 10 ms worth of requests, at least one
BACKOFF_BASE = 0.5  # without Retry-After: min(0.5 * 2**n, 8) s, like the gcore SDK
BACKOFF_CAP = 8.0
JITTER = 0.1  # a Retry-After pause is stretched by up to 10%
GROW_EVERY = 0.25  # seconds between two additive increases
NEAR = 0.9  # above this share of the last throttled rate, climb slowly
PROBE = 0.02  # slow climb: this share of the last throttled rate per second
FORGET = 1.25  # 429-free this far above the last throttled rate: the limit has moved
SETTLE = 2.0  # a 429 this long after the previous cut, near its rate: the limit is found
HOLD = 0.25  # fallback window for "same 429 burst" when a 429 cannot be tied to a grant

# Which limiter and which rate generation granted the current task its last token; a 429
# on a request granted before the latest cut was sent at the old rate and changes nothing.
_granted: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "batchtag_limiter_granted", default=None
)


def _reading(attr: str, doc: str) -> property:
    """A read-only property showing the private attribute `attr`."""
    return property(lambda self: getattr(self, attr), doc=doc)


class RateLimiter:
    """A shared, adaptive token bucket; `await acquire()` before every request."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        min_rate: float = 1.0,
        increase: float | None = None,
        decrease: float = 0.5,
        max_pause: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
    ):
        if not rate > 0:
            raise ValueError("rate must be greater than 0")
        if not 0 < decrease < 1:
            raise ValueError("decrease must be between 0 and 1")
        self._configured = float(rate)
        self._min_rate = min(float(min_rate), self._configured)
        self._burst = max(1.0, burst if burst is not None else rate * BURST_SECONDS)
        # Back to the ceiling in about 20 s after a halving, whatever the scale.
        self._increase = increase if increase is not None else self._configured / 20
        self._decrease = decrease
        self._max_pause = max_pause
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._rate = self._configured
        self._tat = clock()  # theoretical arrival time of the next token (GCRA)
        self._epoch = 0  # bumped whenever a pause resets the schedule
        self._generation = 0  # bumped on every cut
        self._pause_until = float("-inf")
        self._last_cut = float("-inf")
        self._last_grow = self._tat
        self._throttled_at: float | None = None  # the rate of the last cut
        self._consecutive = 0  # cuts since the last success; drives the backoff
        self._changes = 0
        self._throttles = 0

    # -- read-only state ------------------------------------------------------------------

    rate = _reading("_rate", "The current rate in requests per second.")
    configured_rate = _reading("_configured", "The rate it was created with.")
    burst = _reading("_burst", "Tokens it may hand out at once.")
    changes = _reading("_changes", "How many times the rate changed (cuts and increases).")
    throttles = _reading("_throttles", "How many 429s were reported.")
    paused_until = _reading(
        "_pause_until", "Clock time at which the current shared pause ends (in the past when none)."
    )

    # -- the hot path -----------------------------------------------------------------------

    async def acquire(self) -> None:
        """Wait for a token, and for any shared pause to end."""
        while True:
            now = self._clock()
            epoch = self._epoch
            at = self._reserve(now)
            if at > now:
                await self._sleep(at - now)
                if epoch != self._epoch:
                    continue  # a pause reset the schedule while we slept: queue again
            _granted.set((id(self), self._generation))
            return

    def try_acquire(self) -> bool:
        """Take a token if one is free now (no pause, none to wait for); False: nothing
        was taken, `await acquire()` instead. The engine's fast path: no coroutine."""
        now = self._clock()
        interval = 1.0 / self._rate
        tat = max(self._tat, now)
        if tat - (self._burst - 1) * interval > now:
            return False
        self._tat = tat + interval
        grant = (id(self), self._generation)
        if _granted.get() != grant:  # (a set copies the context: only when it changes)
            _granted.set(grant)
        return True

    def _reserve(self, now: float) -> float:
        """Take the next slot of the schedule; return when it may be used."""
        interval = 1.0 / self._rate
        tat = max(self._tat, now)
        at = max(now, tat - (self._burst - 1) * interval)
        self._tat = tat + interval
        return at

    def on_success(self) -> None:
        """A request went through: reset the backoff and, now and then, raise the rate."""
        if self._granted_now():
            self._consecutive = 0
        now = self._clock()
        if now - self._last_grow < GROW_EVERY:
            return
        elapsed = min(now - self._last_grow, 1.0)  # an idle spell is not a licence to jump
        self._last_grow = now
        if self._rate < self._configured:
            self._set_rate(min(self._configured, self._rate + self._step(elapsed)), "recover")

    def _step(self, elapsed: float) -> float:
        """Additive increase; slow near the rate of the last 429, fast anywhere else."""
        last = self._throttled_at
        if last is not None and self._rate > last * FORGET:
            log.debug("no 429 well above %.1f req/s: forgetting it", last)
            self._throttled_at = last = None
        if last is None or self._rate < last * NEAR:
            return self._increase * elapsed
        return max(last * PROBE, self._min_rate * PROBE) * elapsed

    # -- throttling -------------------------------------------------------------------------

    def on_throttle(self, retry_after: float | None) -> float:
        """A 429: cut the rate, pause every worker; return the pause in seconds from now."""
        now = self._clock()
        self._throttles += 1
        fresh = self._is_fresh(now)
        if fresh:
            self._cut(now)
        pause = self._pause_for(retry_after, fresh)
        if now + pause > self._pause_until:
            self._pause(now + pause)
        return max(0.0, self._pause_until - now)

    def _cut(self, now: float) -> None:
        """Multiplicative decrease; only a small step back when probing a limit already found."""
        last = self._throttled_at
        probing = last is not None and self._rate >= last * NEAR and now - self._last_cut > SETTLE
        factor = max(self._decrease, NEAR) if probing else self._decrease
        self._generation += 1
        self._consecutive += 1
        self._last_cut = now
        self._throttled_at = self._rate
        self._set_rate(max(self._min_rate, self._rate * factor), "429")

    def _is_fresh(self, now: float) -> bool:
        """Was this 429 caused by the current rate, not by requests sent before the cut?"""
        granted = _granted.get()
        if granted is not None and granted[0] == id(self):
            return granted[1] == self._generation
        return now >= max(self._last_cut + HOLD, self._pause_until)

    def _granted_now(self) -> bool:
        granted = _granted.get()
        return granted is not None and granted == (id(self), self._generation)

    def _pause_for(self, retry_after: float | None, fresh: bool) -> float:
        if retry_after is not None:
            base = min(max(0.0, retry_after), self._max_pause)
            return min(self._max_pause, base * (1 + JITTER * self._rng.random()))
        if not fresh:
            return 0.0  # the pause of the cut it belongs to stands
        backoff = min(BACKOFF_BASE * 2 ** (self._consecutive - 1), BACKOFF_CAP)
        return backoff * (1 - 0.25 * self._rng.random())

    def _pause(self, until: float) -> None:
        """Hold every worker until `until`, then restart at the current rate with no burst."""
        self._pause_until = until
        self._tat = until + (self._burst - 1) / self._rate
        self._last_grow = max(self._last_grow, until)
        self._epoch += 1

    # -- rate -------------------------------------------------------------------------------

    def set_rate(self, rate: float) -> None:
        """Change the ceiling (and the current rate) while running."""
        if not rate > 0:
            raise ValueError("rate must be greater than 0")
        self._configured = float(rate)
        self._min_rate = min(self._min_rate, self._configured)
        self._throttled_at = None
        self._set_rate(self._configured, "set")

    def _set_rate(self, rate: float, why: str) -> None:
        if rate == self._rate:
            return
        log.debug("rate %.1f -> %.1f req/s (%s)", self._rate, rate, why)
        self._rate = rate
        self._changes += 1
