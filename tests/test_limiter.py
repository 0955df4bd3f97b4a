"""The shared rate limiter, run on an event loop with a virtual clock (no real waiting).

The virtual loop (batchtag.gcore._clock.VirtualClock) is a real asyncio loop whose clock jumps straight
to the next timer, rounded up to a whole millisecond like epoll's timeout, so timer granularity
is part of the picture.
"""

from __future__ import annotations

import asyncio
import logging
import random

import pytest
from limiter_runs import make_limiter, now, simulate

from batchtag.gcore import BACKOFF_CAP, RateLimiter


class Clock:
    """A hand-driven clock for the tests that need no event loop."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def grant_times(limiter: RateLimiter, workers: int, until: float) -> list[float]:
    """Every worker acquires in a loop until `until`; the time of each grant."""
    times: list[float] = []

    async def worker() -> None:
        while True:
            await limiter.acquire()
            t = now()
            if t >= until:
                return
            times.append(t)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return times


# -- plain rate --------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "seconds"), [(1, 60), (50, 20), (500, 10), (5_000, 4)], ids=str)
@pytest.mark.parametrize("workers", [1, 8, 32])
def test_grants_follow_the_configured_rate(rate, seconds, workers):
    async def main():
        limiter = make_limiter(rate)
        return await grant_times(limiter, workers, seconds), limiter

    times, limiter = simulate(main)
    expected = rate * seconds
    assert abs(len(times) - expected) <= limiter.burst + 1
    assert abs(len(times) - expected) / expected < 0.01
    assert limiter.changes == 0


def test_high_rate_grants_several_tokens_per_wake_up():
    """At 5,000/s the loop wakes about once a millisecond yet still grants 5,000 a second."""

    async def main():
        limiter = make_limiter(5_000)
        return await grant_times(limiter, 32, 2.0)

    times = simulate(main)
    later = [t for t in times if t >= 1.0]
    assert len(later) == pytest.approx(5_000, rel=0.01)
    assert len(set(later)) < len(later) / 2  # many grants share one wake-up


def test_burst_is_bounded():
    async def main():
        limiter = make_limiter(1_000, burst=10)
        await asyncio.sleep(5)  # idle: the bucket is full, not five seconds' worth
        return await grant_times(limiter, 64, 5.5), limiter

    times, limiter = simulate(main)
    assert limiter.burst == 10
    start = times[0]
    in_first_ms = [t for t in times if t < start + 0.001]
    assert len(in_first_ms) <= 10 + 1
    # No 10 ms window anywhere holds more than the burst plus 10 ms worth.
    times.sort()
    window = max(
        sum(1 for t in times[i : i + 40] if t < times[i] + 0.01) for i in range(len(times))
    )
    assert window <= 10 + 10 + 1


def test_default_burst_is_small():
    assert RateLimiter(20).burst == 1
    assert RateLimiter(5_000).burst == 50


def test_waiters_are_served_in_arrival_order():
    async def main():
        limiter = make_limiter(10, burst=1)
        order: list[int] = []

        async def worker(i: int) -> None:
            await limiter.acquire()
            order.append(i)

        tasks = []
        for i in range(20):
            tasks.append(asyncio.create_task(worker(i)))
            await asyncio.sleep(0.001)
        await asyncio.gather(*tasks)
        return order

    assert simulate(main) == list(range(20))


# -- throttling --------------------------------------------------------------------------


def test_throttle_cuts_the_rate_and_pauses_every_worker():
    async def main():
        limiter = make_limiter(100)
        times = []

        async def worker() -> None:
            while now() < 3:
                await limiter.acquire()
                times.append(now())

        async def throttle() -> float:
            await asyncio.sleep(1.0)
            return limiter.on_throttle(0.5)

        *_, pause = await asyncio.gather(*(worker() for _ in range(8)), throttle())
        return limiter, times, pause

    limiter, times, pause = simulate(main)
    assert limiter.rate == 50
    assert limiter.throttles == 1
    assert limiter.changes == 1
    assert 0.5 <= pause <= 0.55
    assert not [t for t in times if 1.0 < t < 1.5]  # nobody got through during the pause
    after = [t for t in times if 1.0 + pause <= t < 2.0 + pause]
    assert len(after) == pytest.approx(50, abs=2)  # and then at the reduced rate


def test_a_burst_of_429s_from_requests_sent_at_the_old_rate_cuts_once():
    async def main():
        limiter = make_limiter(1_000)
        # 32 requests granted at the old rate, all answered 429 together.
        tasks = []
        for _ in range(32):

            async def request():
                await limiter.acquire()
                await asyncio.sleep(0.05)
                limiter.on_throttle(0.01)

            tasks.append(asyncio.create_task(request()))
        await asyncio.gather(*tasks)
        return limiter

    limiter = simulate(main)
    assert limiter.throttles == 32
    assert limiter.rate == 500
    assert limiter.changes == 1


def test_a_429_at_the_new_rate_cuts_again_but_never_below_min_rate():
    async def main():
        limiter = make_limiter(100, min_rate=10)
        rates = []
        for _ in range(6):
            await limiter.acquire()
            limiter.on_throttle(0)
            rates.append(limiter.rate)
        return rates

    assert simulate(main) == [50, 25, 12.5, 10, 10, 10]


def test_429s_without_a_task_context_within_a_short_window_cut_once():
    limiter = RateLimiter(100, clock=lambda: 5.0, rng=random.Random(1))
    for _ in range(10):
        limiter.on_throttle(None)
    assert limiter.rate == 50
    assert limiter.throttles == 10


def test_retry_after_is_honoured_and_capped():
    clock = Clock()
    limiter = RateLimiter(100, clock=clock, max_pause=30, rng=random.Random(1))
    pause = limiter.on_throttle(2.0)
    assert 2.0 <= pause <= 2.2
    assert limiter.paused_until == pytest.approx(pause)
    clock.now = 10.0
    assert limiter.on_throttle(3600) == 30


def test_retry_after_pause_applies_to_waiters_already_queued():
    async def main():
        limiter = make_limiter(1, burst=1)
        await limiter.acquire()  # the next slot is at t=1
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.1)
        pause = limiter.on_throttle(4.0)
        await waiter
        return now(), pause

    granted_at, pause = simulate(main)
    assert granted_at == pytest.approx(0.1 + pause, abs=0.002)


def test_backoff_without_retry_after_grows_with_jitter_and_is_bounded():
    for seed in range(20):
        clock = Clock()
        limiter = RateLimiter(1_000, clock=clock, rng=random.Random(seed))
        pauses = []
        for _ in range(10):
            pauses.append(limiter.on_throttle(None))
            clock.now += pauses[-1] + 1  # each 429 after the previous pause ended
        for n, pause in enumerate(pauses):
            nominal = min(0.5 * 2**n, BACKOFF_CAP)
            assert 0.75 * nominal <= pause <= nominal
        assert max(pauses) <= BACKOFF_CAP


def test_backoff_restarts_after_a_success():
    async def main():
        limiter = make_limiter(100)
        pauses = []
        for _ in range(4):
            await limiter.acquire()
            pauses.append(limiter.on_throttle(None))
        await limiter.acquire()
        limiter.on_success()
        await limiter.acquire()
        pauses.append(limiter.on_throttle(None))
        return pauses

    pauses = simulate(main)
    assert pauses[3] > 3.0
    assert pauses[4] <= 0.5


def test_rate_recovers_additively_to_the_configured_ceiling(caplog):
    async def main():
        limiter = make_limiter(200)
        trace = {}

        async def worker() -> None:
            while now() < 60:
                await limiter.acquire()
                limiter.on_success()
                trace[round(now())] = limiter.rate

        async def throttle() -> None:
            await asyncio.sleep(1)
            await limiter.acquire()
            limiter.on_throttle(0)
            limiter.on_throttle(0)  # same burst

        await asyncio.gather(worker(), worker(), throttle())
        return limiter, trace

    with caplog.at_level(logging.DEBUG, logger="batchtag.gcore._limiter"):
        limiter, trace = simulate(main)
    assert trace[2] < 120  # cut to 100, climbing
    rates = [trace[s] for s in sorted(trace) if s >= 2]
    assert rates == sorted(rates)  # never down without a 429
    assert limiter.rate == 200  # back at the ceiling, and not above
    assert max(rates) == 200
    assert limiter.changes > 2
    assert any("429" in r.getMessage() for r in caplog.records)
    assert any("recover" in r.getMessage() for r in caplog.records)


def test_rate_climbs_no_higher_than_configured_without_throttles():
    async def main():
        limiter = make_limiter(50)
        for _ in range(200):
            await limiter.acquire()
            limiter.on_success()
        return limiter

    limiter = simulate(main)
    assert limiter.rate == 50
    assert limiter.changes == 0


def test_set_rate_changes_the_ceiling():
    limiter = RateLimiter(100)
    limiter.set_rate(400)
    assert limiter.rate == limiter.configured_rate == 400
    with pytest.raises(ValueError):
        limiter.set_rate(0)
    with pytest.raises(ValueError):
        RateLimiter(0)
