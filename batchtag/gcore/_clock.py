"""Time, injectable: the engine, the limiter and the retry policies read it from one Clock.

`Clock` is real time. `VirtualClock` runs an event loop whose time only moves when every
task is waiting on a timer: it then jumps straight to the next one. Code under test sleeps,
times out and backs off exactly as in production, and a run that would take minutes of
retries, lock budgets and Retry-After pauses finishes in milliseconds, with exact delays.
"""

from __future__ import annotations

import asyncio
import math
import selectors
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Clock:
    """Real time: the interface every time-dependent part of a run takes.

    Examples
    --------
    >>> clock = Clock()
    >>> clock.monotonic() <= clock.monotonic()
    True
    """

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (durations, deadlines)."""
        return time.monotonic()

    def time(self) -> float:
        """Seconds since the epoch (timestamps in the report)."""
        return time.time()

    def sleep(self, seconds: float) -> Awaitable[None]:
        """Wait `seconds` (an awaitable, like `asyncio.sleep`)."""
        return asyncio.sleep(seconds)

    def call_later(self, delay: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        """Run `callback` after `delay` seconds on the running loop; cancel with the handle."""
        return asyncio.get_running_loop().call_later(delay, callback)


REAL_CLOCK = Clock()


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that never blocks: a wait for the next timer moves virtual time instead."""

    def __init__(self, clock: VirtualClock):
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None):
        ready = super().select(0)
        if ready:
            return ready
        if timeout is None:
            raise RuntimeError("virtual clock: every task waits and no timer is set (deadlock)")
        step = self._clock.granularity
        if step and timeout > 0:  # like epoll: a timeout rounded up to whole ticks
            timeout = math.ceil(timeout / step - 1e-6) * step
        self._clock.advance(timeout)
        return []


class _VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VirtualClock):
        super().__init__(_JumpingSelector(clock))
        self._virtual_clock = clock
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._virtual_clock.now


class VirtualClock(Clock):
    """Virtual time for tests: `run(coro)` drives a coroutine on a loop that never waits.

    Parameters
    ----------
    start : float
        Wall-clock time (epoch seconds) that virtual time 0 stands for.
    granularity : float
        Timer resolution in seconds (0: exact). 0.001 rounds each wait up to a whole
        millisecond, as epoll does, for tests where timer granularity matters.

    Examples
    --------
    >>> clock = VirtualClock()
    >>> async def nap():
    ...     await clock.sleep(3600)
    ...     return clock.monotonic()
    >>> clock.run(nap())
    3600.0
    """

    def __init__(self, start: float = 1_750_000_000.0, granularity: float = 0.0):
        self.now = 0.0
        self.start = start
        self.granularity = granularity

    def advance(self, seconds: float) -> None:
        """Move virtual time forward (the loop does this itself when everything waits)."""
        self.now += max(0.0, seconds)

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.start + self.now

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` to completion in virtual time; return its result."""
        with asyncio.Runner(loop_factory=lambda: _VirtualLoop(self)) as runner:
            return runner.run(coro)
