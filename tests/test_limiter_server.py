"""The limiter against a simulated rate-limited server: it adapts to a limit below its rate and
hovers just under it, in virtual time."""

from __future__ import annotations

import asyncio
import math

import pytest
from limiter_runs import make_limiter, now, simulate

from batchtag.gcore import RateLimiter

# -- against a rate-limited server ---------------------------------------------------------


class LimitedServer:
    """Like the sandbox: a bucket of `limit` tokens a second, one second of burst unless
    told; a 429 uses no token and says when the next one is due (retry-after-ms)."""

    def __init__(
        self, limit: float, latency: float, retry_after: bool = True, burst: float | None = None
    ):
        self.limit = limit
        self.latency = latency
        self.retry_after = retry_after
        self.burst = burst or limit
        self.tokens = self.burst
        self.last = 0.0
        self.log: list[tuple[float, int]] = []

    async def request(self) -> tuple[int, float | None]:
        await asyncio.sleep(self.latency / 2)
        t = now()
        self.tokens = min(self.burst, self.tokens + (t - self.last) * self.limit)
        self.last = t
        if self.tokens >= 1:
            self.tokens -= 1
            status, wait = 200, None
        else:
            status = 429
            wait = math.ceil((1 - self.tokens) / self.limit * 1000) / 1000
        self.log.append((t, status))
        await asyncio.sleep(self.latency / 2)
        return status, wait if self.retry_after else None


def run_against(server: LimitedServer, rate: float, workers: int, seconds: float) -> RateLimiter:
    async def main():
        limiter = make_limiter(rate)

        async def worker() -> None:
            while now() < seconds:
                await limiter.acquire()
                status, wait = await server.request()
                if status == 429:
                    limiter.on_throttle(wait)
                else:
                    limiter.on_success()

        await asyncio.gather(*(worker() for _ in range(workers)))
        return limiter

    return simulate(main)


def settled(server: LimitedServer, start: float, end: float) -> tuple[float, float]:
    """Successful requests per second and the share of 429s in [start, end)."""
    window = [status for t, status in server.log if start <= t < end]
    ok = window.count(200)
    return ok / (end - start), window.count(429) / len(window)


@pytest.mark.parametrize(
    ("latency", "retry_after"), [(0.002, True), (0.02, True), (0.002, False)], ids=str
)
def test_adapts_to_a_server_limit_below_the_configured_rate(latency, retry_after):
    """Server limit 300/s, client told 2,000: after 5 s, >= 90% of 300/s and <= 2% 429s."""
    server = LimitedServer(300, latency, retry_after)
    limiter = run_against(server, 2_000, workers=64, seconds=65)
    ok_rate, throttled = settled(server, 5, 65)
    assert ok_rate >= 0.9 * 300
    assert throttled <= 0.02
    assert limiter.rate < 2_000
    assert limiter.throttles == sum(1 for _, s in server.log if s == 429)


def test_hovers_just_under_a_strict_limit():
    """A server with almost no burst punishes overshoot at once; plain AIMD (halving each
    time) averages about 75% of the limit there, the limiter must still keep 90%."""
    server = LimitedServer(300, 0.02, burst=5)
    run_against(server, 2_000, workers=64, seconds=65)
    ok_rate, throttled = settled(server, 5, 65)
    assert ok_rate >= 0.9 * 300
    assert throttled <= 0.02


def test_no_429s_when_the_server_limit_is_above_the_configured_rate():
    server = LimitedServer(300, 0.002)
    limiter = run_against(server, 250, workers=16, seconds=20)
    ok_rate, throttled = settled(server, 0, 20)
    assert throttled == 0
    assert ok_rate == pytest.approx(250, rel=0.01)
    assert limiter.changes == 0
