"""Change control as properties against the sandbox, for random states, manifests and later
edits by someone else:

- `apply` of a plan file changes exactly the snapshots whose planned keys still hold what
  the plan saw (or already what it wants), and reports the rest `conflict`, untouched;
- apply, then edits of other keys, then undo: the run's keys are restored, the others kept;
- undo works for a default run of any size in any scope (GETs or list pages).

Each example starts from the sandbox's seeded state (`sb.reset()`); later edits go through
the API, as another client would make them.
"""

from __future__ import annotations

import asyncio
import json

import pandas as pd
import pytest
from helpers import live_examples
from hypothesis import given
from hypothesis import strategies as st

import batchtag
from batchtag.config import Settings
from batchtag.gcore import Client

KEYS = ["k1", "k2", "k3"]
VALUES = ["a", "b"]
OTHER_KEYS = ["x1", "x2"]  # keys no manifest here touches
SCOPES = [(1, 1), (1, 2), (2, 1), (2, 2)]


@pytest.fixture(scope="module")
def sb():
    with batchtag.sandbox(snapshots=40, env=False) as running:
        yield running


@pytest.fixture(scope="module")
def scopes_sb():
    """Four scopes of 2,100 snapshots each (3 list pages): small runs read by GET, bigger
    ones by pages."""
    with batchtag.sandbox(snapshots=2100, project_ids=[1, 2], region_ids=[1, 2], env=False) as s:
        yield s


@pytest.fixture(scope="module")
def scope_ids(scopes_sb) -> dict[tuple[int, int], list[str]]:
    """Each scope's seeded snapshot ids, listed once: `reset()` brings back the same ones."""
    return {scope: [s["id"] for s in scopes_sb.snapshots(*scope)] for scope in SCOPES}


def keywords(sandbox, **more):
    return {"base_url": sandbox.url, "api_key": sandbox.api_key, "rate": 5000, **more}


def patch_all(sandbox, patches: dict[tuple[int, int, str], dict]) -> None:
    """Send each snapshot its merge patch (tags and/or name), as another client would."""

    async def go() -> None:
        async with Client(Settings(sandbox.url, sandbox.api_key)) as client:
            for (project, region, sid), body in patches.items():
                await client.patch_snapshot(project, region, sid, json.dumps(body).encode())

    asyncio.run(go())


def user_tags(sandbox, project: int, region: int, sid: str) -> dict[str, str]:
    snap = sandbox.store.find(project, region, sid)
    return {k: v for k, v in snap.tags.items() if k not in snap.read_only}


def start(sandbox, states: list[dict[str, str]]) -> list[str]:
    """Reset the sandbox and give its first snapshots these user tags (only those)."""
    sandbox.reset()
    ids = [s["id"] for s in sandbox.snapshots()][: len(states)]
    patch_all(sandbox, {(1, 1, sid): {"tags": None} for sid in ids})
    patch_all(sandbox, {(1, 1, sid): {"tags": t} for sid, t in zip(ids, states, strict=True) if t})
    return ids


tags_st = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3)
writes_st = st.dictionaries(  # a snapshot's manifest: set (a value) or delete (None) per key
    st.sampled_from(KEYS), st.none() | st.sampled_from(VALUES), min_size=1, max_size=3
)
edits_st = st.dictionaries(  # someone's later merge patch, on planned keys and others
    st.sampled_from(KEYS + OTHER_KEYS), st.none() | st.sampled_from([*VALUES, "c"]), max_size=3
)


def manifest_of(ids: list[str], writes: list[dict]) -> pd.DataFrame:
    rows = [
        {"snapshot_id": sid, "op": "delete" if v is None else "set", "key": k, "value": v or ""}
        for sid, w in zip(ids, writes, strict=True)
        for k, v in w.items()
    ]
    return pd.DataFrame(rows)


def merged(tags: dict[str, str], patch: dict[str, str | None]) -> dict[str, str]:
    out = dict(tags)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


@live_examples(25, timeout=300)
@given(
    scenario=st.integers(2, 6).flatmap(
        lambda n: st.tuples(
            st.lists(tags_st, min_size=n, max_size=n),
            st.lists(writes_st, min_size=n, max_size=n),
            st.lists(edits_st, min_size=n, max_size=n),
        )
    )
)
def test_a_plan_file_applies_where_its_keys_are_unchanged_and_the_rest_is_conflict(
    sb, tmp_path, scenario
):
    states, writes, edits = scenario
    ids = start(sb, states)
    plan = batchtag.plan(manifest_of(ids, writes), **keywords(sb, project_id=1, region_id=1))
    path = tmp_path / "plan.parquet"  # reviewed, then applied later
    batchtag.write_changes(plan, path)
    patch_all(sb, {(1, 1, sid): {"tags": e} for sid, e in zip(ids, edits, strict=True) if e})
    now = {sid: user_tags(sb, 1, 1, sid) for sid in ids}
    rows = plan[plan["field"] == "tag"].astype(object).where(plan.notna(), None)
    expected, conflicts = dict(now), set()
    for sid, group in rows.groupby("snapshot_id"):
        if any(now[sid].get(r.key) not in (r.old, r.new) for r in group.itertuples()):
            conflicts.add(sid)  # a planned key changed since: untouched
        else:
            expected[sid] = merged(now[sid], dict(zip(group.key, group.new, strict=True)))
    report = batchtag.apply(path, report=tmp_path / "r.csv", overwrite=True, **keywords(sb))
    status = dict(zip(report.snapshot_id, report.status, strict=True))
    assert {sid for sid, s in status.items() if s == "conflict"} == conflicts
    assert set(status.values()) <= {"ok", "noop", "conflict"}
    assert {sid: user_tags(sb, 1, 1, sid) for sid in ids} == expected


@live_examples(25, timeout=300)
@given(
    scenario=st.integers(1, 6).flatmap(
        lambda n: st.tuples(
            st.lists(tags_st, min_size=n, max_size=n),
            st.lists(writes_st, min_size=n, max_size=n),
            st.lists(
                st.dictionaries(st.sampled_from(OTHER_KEYS), st.sampled_from(VALUES), max_size=2),
                min_size=n,
                max_size=n,
            ),
        )
    )
)
def test_undo_after_unrelated_edits_restores_the_runs_keys_and_keeps_the_others(
    sb, tmp_path, scenario
):
    states, writes, edits = scenario
    ids = start(sb, states)
    report = tmp_path / "run.csv"
    batchtag.apply(
        manifest_of(ids, writes),
        report=report,
        overwrite=True,
        **keywords(sb, project_id=1, region_id=1),
    )
    patch_all(sb, {(1, 1, sid): {"tags": e} for sid, e in zip(ids, edits, strict=True) if e})
    expected = {  # the run's keys as they were, the later edits kept
        sid: merged(before, edit) for sid, before, edit in zip(ids, states, edits, strict=True)
    }
    back = batchtag.undo(report, **keywords(sb))
    assert back.attrs["skipped"].empty, back.attrs["skipped"]
    if len(back):
        batchtag.apply(back, report=tmp_path / "undo.csv", overwrite=True, **keywords(sb))
    assert {sid: user_tags(sb, 1, 1, sid) for sid in ids} == expected


@live_examples(12, timeout=300)
@given(
    sizes=st.lists(st.sampled_from([0, 1, 2, 3, 5, 40, 300]), min_size=4, max_size=4),
    value=st.sampled_from(VALUES),
)
def test_undo_works_for_a_default_run_of_any_size_in_any_scope(
    scopes_sb, scope_ids, tmp_path, sizes, value
):
    sb = scopes_sb
    sb.reset()
    rows, picked = [], []
    for (project, region), size in zip(SCOPES, sizes, strict=True):
        ids = scope_ids[project, region][-size:] if size else []
        picked += [(project, region, sid) for sid in ids]
        rows += [
            {"project_id": project, "region_id": region, "snapshot_id": sid, "tag:k1": value}
            for sid in ids
        ]
    if not rows:
        return
    original = {key: user_tags(sb, *key) for key in picked}
    report = tmp_path / "run.csv"
    run = batchtag.apply(pd.DataFrame(rows), report=report, overwrite=True, **keywords(sb))
    assert run.tags_before.notna().all()  # every default run reads: every row can be undone
    back = batchtag.undo(report, **keywords(sb))
    assert back.attrs["skipped"].empty
    if len(back):
        batchtag.apply(back, report=tmp_path / "undo.csv", overwrite=True, **keywords(sb))
    assert {key: user_tags(sb, *key) for key in picked} == original
