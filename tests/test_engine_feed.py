"""The engine over an `EntryFeed` in virtual time: it waits for entries not announced yet,
sends each as soon as it is, and a stop reports the ones never announced as well."""

from __future__ import annotations

import numpy as np
import pytest
from engine_runs import fake, run, sets, times, top_of_jitter  # noqa: F401 (autouse fixture)

from batchtag.read import EntryFeed

pytestmark = pytest.mark.timeout(30)


def test_entries_go_out_as_they_are_announced_and_the_run_ends_with_the_feed():
    client = fake()
    ids = client.store.ids()[:6]
    feed = EntryFeed(sets(ids))
    start = client.clock.monotonic()

    def during(engine):
        feed.attach(engine)
        client.clock.call_later(1.0, lambda: feed.announce(np.array([4, 2])))
        client.clock.call_later(2.0, feed.close)  # the read is over: the rest is ready

    _, results = run(client, feed, during=during)
    assert {s: r.status for s, r in results.items()} == dict.fromkeys(ids, "ok")
    sent = {sid: times(client, sid)[0] - start for sid in ids}
    assert sent[ids[2]] == sent[ids[4]] == pytest.approx(1.0, abs=0.01)
    assert all(sent[sid] == pytest.approx(2.0, abs=0.01) for sid in (ids[0], ids[1], ids[3]))


def test_an_abort_while_waiting_reports_the_entries_never_announced():
    client = fake()
    ids = client.store.ids()[:5]
    feed = EntryFeed(sets(ids))

    def during(engine):
        feed.attach(engine)
        client.clock.call_later(1.0, lambda: feed.announce(np.array([3])))
        client.clock.call_later(2.0, lambda: engine.abort("reading the state: HTTP 503"))

    engine, results = run(client, feed, during=during)
    assert results[ids[3]].status == "ok"
    skipped = [results[s] for s in ids if s != ids[3]]
    assert {r.status for r in skipped} == {"skipped"} and len(results) == 5
    assert {r.error for r in skipped} == {"not sent: run aborted (reading the state: HTTP 503)"}
    assert client.stats.requests["PATCH"] == 1


def test_the_feed_says_when_the_engine_waits_for_entries_and_when_it_has_some():
    client = fake()
    ids = client.store.ids()[:4]
    heard: list[tuple[float, bool]] = []
    feed = EntryFeed(sets(ids), on_hungry=lambda hungry: heard.append((now(), hungry)))
    now = client.clock.monotonic
    start = now()

    def during(engine):
        feed.attach(engine)
        client.clock.call_later(1.0, lambda: feed.announce(np.array([0, 1])))
        client.clock.call_later(3.0, feed.close)

    run(client, feed, during=during)
    # hungry from the start (nothing announced): told when fed, when it waits again, when fed
    assert [(round(at - start, 2), hungry) for at, hungry in heard] == [
        (1.0, False),
        (1.0, True),
        (3.0, False),
    ]
    assert not feed.hungry


def test_the_feed_says_when_enough_is_ready_ahead_of_its_consumer():
    heard: list[bool] = []
    feed = EntryFeed(list("abcdef"), ahead=3, on_ahead=heard.append)
    feed.announce(np.array([0, 1]))
    assert not feed.ahead and heard == []
    feed.announce(np.array([2, 3]))  # four ready, none handed out
    assert feed.ahead and heard == [True]
    assert [next(feed), next(feed)] == ["a", "b"]  # two left: below three
    assert not feed.ahead and heard == [True, False]
    feed.close()  # the rest is ready as it is: four again
    assert feed.ahead and heard == [True, False, True]
    assert list(feed) == ["c", "d", "e", "f"]
    assert not feed.ahead and heard == [True, False, True, False]
