"""Driving a RateLimiter in virtual time, for the limiter tests."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from batchtag.gcore import RateLimiter, VirtualClock


def simulate(main: Callable[[], Awaitable[object]]) -> object:
    return VirtualClock(granularity=0.001).run(main())


def now() -> float:
    return asyncio.get_running_loop().time()


def make_limiter(rate: float, **options) -> RateLimiter:
    return RateLimiter(rate, clock=now, rng=random.Random(7), **options)
