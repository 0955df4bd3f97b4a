"""The done-set of a resume (KeySet) and a writer's latest-status log (StatusLog) answer as
a Python set and dict of the same keys would; a key hashes alike alone and in a batch."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from batchtag.model import keys_of
from batchtag.record import KeyColumns, KeySet, StatusLog, key_hash, key_hashes

KEY = st.tuples(st.integers(1, 3), st.integers(1, 3), st.sampled_from(["a", "b", "c", "d"]))


@given(keys=st.sets(KEY), probes=st.lists(KEY))
def test_a_key_set_is_the_set_of_its_keys(keys, probes):
    done = KeySet(*zip(*keys, strict=True)) if keys else KeySet([], [], [])
    assert done == keys and len(done) == len(keys)
    assert [p in done for p in probes] == [p in keys for p in probes]
    assert "not a key" not in done and [1, 1, "a"] not in done


class SmallStatusLog(StatusLog):
    """Blocks of 3 records, hash slices of about 2: every path of a long log."""

    BLOCK = 3
    BUCKET = 2


@given(records=st.lists(st.tuples(KEY, st.sampled_from(["ok", "failed", "noop", None]))))
def test_the_status_log_counts_every_key_by_its_latest_status(records):
    logs = [StatusLog(), SmallStatusLog()]
    latest = {}
    for key, status in records:
        for log in logs:
            log.add(key, status)
        latest[key] = status
    for log in logs:
        assert log.counts() == Counter(latest.values())
        assert log.has_repeats() == (len(latest) < len(records))


def _first_and_last(records):
    """What a dict says: per key in order of its first row, the first and last position."""
    first, last = {}, {}
    for i, (key, _) in enumerate(records):
        first.setdefault(key, i)
        last[key] = i
    return list(first.values()), [last[k] for k in first]


def _logged(records):
    """The records in a KeyColumns, checked for each key's first and latest row; returns
    the log, the latest rows and the latest status by key."""
    log = KeyColumns()
    for key, status in records:
        log.add(key, status)
    first, last = log.positions()
    assert (first.tolist(), last.tolist()) == _first_and_last(records)
    latest = dict(records)
    assert list(log.items(last)) == list(latest.items())
    return log, last, latest


RECORDS = st.lists(st.tuples(KEY, st.sampled_from(["ok", "failed", "noop", None])))


@given(records=RECORDS)
def test_key_columns_find_each_keys_first_and_latest_row(records):
    log, last, latest = _logged(records)
    done = log.keyset(last[log.status_in(last, {"ok", "noop"})])
    assert done == {k for k, s in latest.items() if s in ("ok", "noop")}


UUIDS = ["0b7f3f38-7d53-4a3e-9e0b-8f4d2c1e5a66", "00000000-0000-4000-8000-000000000000"]
EXACT_IDS = st.one_of(
    st.sampled_from(UUIDS), st.sampled_from(UUIDS).map(str.upper), st.text(max_size=6)
)
EXACT_RECORDS = st.lists(
    st.tuples(
        st.tuples(st.integers(1, 3), st.integers(1, 3), EXACT_IDS),
        st.sampled_from(["ok", "failed"]),
    )
)


@given(records=EXACT_RECORDS)
def test_keys_are_exact_and_given_back_as_written(records):
    """A UUID in upper case is another key than in lower case (as in a dict), and every id
    comes back with its own text, whether it is kept as UUID bytes or as a digest."""
    log, last, latest = _logged(records)
    assert set(log.keyset(last)) == set(latest)


SCOPE_IDS = st.integers(-(2**63), 2**63 - 1)
HASHED = st.tuples(SCOPE_IDS, SCOPE_IDS, EXACT_IDS)


@given(keys=st.lists(HASHED, max_size=20))
def test_a_keys_hash_is_the_same_one_at_a_time_and_many_at_once(keys):
    """A run's results (one at a time) and a resumed report's rows (a batch at a time)
    must hash alike, or a snapshot would count twice in the summary."""
    projects = np.array([k[0] for k in keys], dtype=np.int64)
    regions = np.array([k[1] for k in keys], dtype=np.int64)
    many = key_hashes(projects, regions, keys_of([k[2] for k in keys]))
    assert many.tolist() == [key_hash(k) for k in keys]


@given(
    before=st.lists(st.tuples(KEY, st.sampled_from(["ok", "failed", None])), max_size=12),
    after=st.lists(st.tuples(KEY, st.sampled_from(["ok", "skipped"])), max_size=12),
)
def test_a_status_log_extended_by_a_report_then_added_to_counts_each_key_once(before, after):
    """A resumed writer's log: the report's rows at once (`extend`), then the run's results."""
    log = SmallStatusLog()
    statuses = ["failed", None, "ok"]
    hashes = np.array([key_hash(k) for k, _ in before], dtype=np.int64)
    log.extend(hashes, np.array([statuses.index(s) for _, s in before], dtype=np.uint8), statuses)
    for key, status in after:
        log.add(key, status)
    latest = dict([*before, *after])
    assert log.counts() == Counter(latest.values())
    assert log.has_repeats() == (len(latest) < len(before) + len(after))
