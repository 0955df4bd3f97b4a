"""The engine over a state read before the run (batchtag.read._state), in virtual time."""

from __future__ import annotations

import pytest

from batchtag.errors import ApiError
from batchtag.gcore import RateLimiter, VirtualClock
from batchtag.model import PlanEntry
from batchtag.read import Reader, State, read_state
from batchtag.send import Engine, EngineOptions
from batchtag.testing import FakeClient

pytestmark = pytest.mark.timeout(30)
GHOST = "aaaaaaaa-0000-4000-8000-000000000001"


def run_with_state(client: FakeClient, entries: list[PlanEntry], mode: bool | None):
    """Read the state like an apply run, then run the engine; (state, results by id)."""
    clock = client.clock
    results: dict = {}

    async def main() -> State:
        limiter = RateLimiter(1000, clock=clock.monotonic, sleep=clock.sleep)
        reader = Reader(client, concurrency=4, limiter=limiter, sleep=clock.sleep)
        state = await read_state(reader, entries, mode)
        engine = Engine(
            client,
            EngineOptions(rate=1000, concurrency=4),
            lambda r: results.__setitem__(r.snapshot_id, r),
            limiter=limiter,
            state=state,
            clock=clock,
        )
        await engine.run(entries)
        return state

    return clock.run(main()), results


def user_tags(client: FakeClient, sid: str) -> dict[str, str]:
    snap = client.store.find(1, 1, sid)
    return {k: v for k, v in snap.tags.items() if k not in snap.read_only}


def test_only_changes_are_sent_and_a_409_retry_keeps_the_minimal_body():
    client = FakeClient(clock=VirtualClock(), snapshots=30)
    changed, same = [s for s in client.store.ids() if user_tags(client, s)][:2]
    kept = dict(user_tags(client, changed))
    current = user_tags(client, same)
    client.script(changed, ApiError(409, "ConflictError", "locked"))
    entries = [
        PlanEntry(1, 1, changed, tags={**kept, "new": "x"}),  # unchanged keys + one new
        PlanEntry(1, 1, same, tags=current),  # nothing to change
        PlanEntry(1, 1, GHOST, tags={"a": "b"}),  # not in the scope
    ]
    state, results = run_with_state(client, entries, True)
    assert {s: r.status for s, r in results.items()} == {
        changed: "ok",
        same: "noop",
        GHOST: "not_found",
    }
    patches = client.calls(method="PATCH")
    assert [c.snapshot_id for c in patches] == [changed, changed]  # the 409, then the retry
    assert results[changed].body == {"tags": {"new": "x"}} and results[changed].attempts == 2
    assert results[GHOST].error == "not found when the state was read"
    assert results[GHOST].attempts == 0 and results[same].attempts == 0
    assert results[same].tags_before == current == results[same].tags_after
    assert user_tags(client, changed) == {**kept, "new": "x"}
    assert len(state) == 0  # each snapshot's state is dropped once the engine took it


def test_no_check_current_reads_only_what_a_rename_needs():
    client = FakeClient(clock=VirtualClock(), snapshots=30)
    sid = next(s for s in client.store.ids() if user_tags(client, s))
    old = sorted(user_tags(client, sid))[0]
    others = [s for s in client.store.ids() if s != sid][:5]
    entries = [PlanEntry(1, 1, sid, renames={old: "moved"})]
    entries += [PlanEntry(1, 1, s, tags={"k": "v"}) for s in others]
    _, results = run_with_state(client, entries, False)
    assert {r.status for r in results.values()} == {"ok"}
    assert [c.method for c in client.calls(sid)] == ["GET", "PATCH"]  # read, then written
    assert all([c.method for c in client.calls(s)] == ["PATCH"] for s in others)
    assert "moved" in user_tags(client, sid) and old not in user_tags(client, sid)
