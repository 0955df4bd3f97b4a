"""Running the engine over FakeClient on a VirtualClock, for the virtual-time engine tests."""

from __future__ import annotations

import random

import pytest

from batchtag.gcore import RateLimiter, VirtualClock
from batchtag.model import PlanEntry, PlanIndex
from batchtag.read import State
from batchtag.send import Engine, EngineOptions
from batchtag.testing import FakeClient


class NoJitter(random.Random):
    def random(self) -> float:
        return 0.0


@pytest.fixture(autouse=True)
def top_of_jitter(monkeypatch):
    """tenacity's wait_random_exponential draws random.uniform(min, high): take `high`."""
    monkeypatch.setattr("random.uniform", lambda low, high: high)


def run(fake: FakeClient, entries, *, on_result=None, during=None, state=None, **options):
    """Run the engine on `fake`'s virtual clock; return (engine, results by snapshot_id).
    `state`: the state read before the run (`known`)."""
    clock = fake.clock
    results: dict = {}
    retries: list[str] = []
    options.setdefault("rate", 1000)
    options.setdefault("concurrency", 4)

    def record(result):
        assert result.snapshot_id not in results, "a snapshot reported twice"
        results[result.snapshot_id] = result
        if on_result is not None:
            on_result(result)

    async def main():
        limiter = RateLimiter(
            options["rate"], clock=clock.monotonic, sleep=clock.sleep, rng=NoJitter()
        )
        engine = Engine(
            fake,
            EngineOptions(**options),
            record,
            on_retry=retries.append,
            limiter=limiter,
            state=state,
            clock=clock,
        )
        if during is not None:
            during(engine)
        await engine.run(entries)
        return engine

    engine = clock.run(main())
    engine.retries = retries
    return engine, results


def fake(**knobs) -> FakeClient:
    return FakeClient(clock=VirtualClock(), **knobs)


def sets(ids, key="batch", value="one"):
    return [PlanEntry(1, 1, sid, tags={key: value}, rows=[i + 1]) for i, sid in enumerate(ids)]


def times(client: FakeClient, sid: str) -> list[float]:
    return [round(c.at, 6) for c in client.calls(sid)]


def known(fake: FakeClient, entries) -> State:
    """The entries' state as a run reads it before sending (straight from `fake`'s store:
    no request)."""
    state = State(PlanIndex.of(entries))
    for entry in entries:
        state.put(state.index.position(entry), fake.store.find(*entry.key).to_json())
    state.finish()
    return state
