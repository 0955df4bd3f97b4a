"""Planning: rows merged per snapshot in file order, and every form and file type reading
back into the same plan (a hypothesis round trip)."""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from manifest_helpers import NO_ENV, SID, SID2

from batchtag.manifest import describe_manifest, format_validation, read_plan
from batchtag.model import Plan, PlanEntry, SharedDict

LONG = ["snapshot_id", "project_id", "region_id", "op", "key", "value"]


def long_frame(rows: list[tuple], **extra_columns) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=LONG)
    for name, values in extra_columns.items():
        frame[name] = values
    return frame


def test_rows_merge_per_snapshot_in_file_order():
    frame = long_frame(
        [
            (SID, "1", "2", "set", "env", "prod"),
            (SID2, "1", "2", "name", "", "second"),
            (SID, "1", "2", "delete", "old", ""),
            (SID, "1", "3", "set", "env", "dev"),  # another region: another snapshot entry
            (SID, "1", "2", "set", "env", "prod"),  # identical duplicate: fine
        ],
        ticket=["", "T-2", "T-1", "", "T-9"],
    )
    frame.index = [10, 20, 30, 40, 50]  # a DataFrame's rows are named by index label
    plan = read_plan(frame, env=NO_ENV)
    assert [e.key for e in plan] == [(1, 2, SID), (1, 2, SID2), (1, 3, SID)]
    first = plan.entries[0]
    assert (first.tags, first.rows, first.extra) == (
        {"env": "prod", "old": None},
        [10, 30, 50],
        {"ticket": "T-1"},
    )
    assert plan.entries[1].name == "second"
    assert plan.entries[2].extra == {"ticket": ""}
    assert plan.rows == 5
    assert plan.ops == {"set": 3, "delete": 1, "clear": 0, "rename": 0, "name": 1}
    assert plan.passthrough == ["ticket"]


def test_clear_then_set_is_a_replace_and_rename_needs_current_tags():
    frame = long_frame(
        [
            (SID, "1", "2", "clear", "", ""),
            (SID, "1", "2", "set", "env", "prod"),
            (SID2, "1", "2", "rename", "team", "owner"),
        ]
    )
    replace, rename = read_plan(frame, env=NO_ENV).entries
    assert (replace.clear, replace.tags, replace.needs_current) == (True, {"env": "prod"}, True)
    assert replace.target_tags({"a": "1"}) == {"env": "prod"}
    assert (rename.renames, rename.needs_current) == ({"team": "owner"}, True)


def test_a_clear_wipes_earlier_writes_of_the_same_snapshot():
    frame = long_frame([(SID, "1", "2", "set", "a", "1"), (SID, "1", "2", "clear", "", "")])
    (entry,) = read_plan(frame, env=NO_ENV).entries
    assert (entry.clear, entry.tags, entry.needs_current) == (True, {}, False)
    assert entry.body() == {"tags": None}


def test_op_and_ids_are_trimmed_and_uuid_lowercased():
    frame = long_frame([(f" {SID.upper()} ", " 01 ", "2", " SET ", "env", "prod")])
    assert read_plan(frame, env=NO_ENV).entries[0].key == (1, 2, SID)


def test_summary_counts_and_text():
    frame = long_frame(
        [
            (SID, "1", "2", "set", "env", "prod"),
            (SID, "1", "2", "rename", "a", "b"),
            (SID, "1", "3", "delete", "x", ""),  # the same id in another scope: allowed
        ],
        owner=["bob", "", ""],
    )
    summary = describe_manifest(read_plan(frame, env=NO_ENV))
    assert summary == {
        "form": "long",
        "rows": 3,
        "snapshots": 2,
        "operations": {"set": 1, "delete": 1, "clear": 0, "rename": 1, "name": 0},
        "scopes": [
            {"project_id": 1, "region_id": 2, "snapshots": 1},
            {"project_id": 1, "region_id": 3, "snapshots": 1},
        ],
        "passthrough": ["owner"],
        "needs_current": 1,
        "ids_in_several_scopes": 1,
        "notes": [],
    }
    text = format_validation(summary)
    assert "3 rows, 2 snapshots" in text
    assert "set 1, delete 1, rename 1" in text
    assert "project 1 region 3: 1 snapshots" in text
    assert "1 snapshots need their current tags" in text
    assert "note: 1 snapshot ids appear in more than one scope" in text


# --- round trip: a random plan, written in each form and file type, reads back the same ----

TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8",
        exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
        exclude_characters="=\x85\u180e\u200b\ufeff",
    ),
    min_size=1,
    max_size=12,
)
IDS = st.integers(min_value=1, max_value=10**18 - 1)
NAMES = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=3, max_size=20
).filter(lambda s: s.strip() == s and s != "<delete>")


@st.composite
def entries(draw, *, clear: bool, renames: bool) -> list[PlanEntry]:
    count = draw(st.integers(1, 5))
    scope = draw(st.tuples(IDS, IDS))
    out = []
    for _ in range(count):
        keys = draw(st.lists(TEXT, min_size=0, max_size=4, unique=True))
        tags = {k: draw(st.none() | TEXT.filter(lambda v: v != "<delete>")) for k in keys}
        entry = PlanEntry(
            project_id=draw(st.sampled_from([scope[0], draw(IDS)])),
            region_id=scope[1],
            snapshot_id=str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
            tags=tags,
            clear=clear and draw(st.booleans()),
            name=draw(st.none() | NAMES),
        )
        if renames:
            taken = set(tags)
            olds = [k for k in draw(st.lists(TEXT, max_size=2, unique=True)) if k not in taken]
            taken.update(olds)
            for old in olds:
                new = draw(TEXT.filter(lambda k, used=frozenset(taken): k not in used))
                if new not in entry.renames.values():
                    entry.renames[old] = new
        out.append(entry)
    return out


def where(e: PlanEntry) -> dict:
    """The columns naming an entry's snapshot, as every manifest form has them."""
    return {"snapshot_id": e.snapshot_id, "project_id": e.project_id, "region_id": e.region_id}


def long_rows(plan: list[PlanEntry]) -> list[dict]:
    rows = []
    for e in plan:
        base = where(e)
        if e.clear:
            rows.append({**base, "op": "clear", "key": "", "value": ""})
        for old, new in e.renames.items():
            rows.append({**base, "op": "rename", "key": old, "value": new})
        for k, v in e.tags.items():
            op = "delete" if v is None else "set"
            rows.append({**base, "op": op, "key": k, "value": v or ""})
        if e.name is not None:
            rows.append({**base, "op": "name", "key": "", "value": e.name})
        if not (e.clear or e.renames or e.tags or e.name):
            rows.append({**base, "op": "name", "key": "", "value": "keep-it"})
            e.name = "keep-it"
    return rows


def wide_rows(plan: list[PlanEntry]) -> list[dict]:
    rows = []
    for e in plan:
        row = where(e)
        row.update({f"tag:{k}": "<delete>" if v is None else v for k, v in e.tags.items()})
        row["name"] = e.name or ""
        rows.append(row)
    return rows


def json_rows(plan: list[PlanEntry]) -> list[dict]:
    rows = []
    for e in plan:
        base = where(e)
        if e.clear:
            rows.append({**base, "tags": None, "name": ""})
        rows.append({**base, "tags": e.tags, "name": e.name or ""})
    return rows


def write(rows: list[dict], kind: str, folder: Path, form: str):
    """Every cell as text, the way a user's file holds it (JSON Lines keeps native JSON)."""
    if kind == "jsonl":
        path = folder / "m.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path
    text_rows = [
        {k: (json.dumps(v) if k == "tags" else str(v)) for k, v in r.items()} for r in rows
    ]
    frame = pd.DataFrame(text_rows).fillna("")
    if kind == "frame":
        return frame
    if kind == "parquet":
        frame.to_parquet(folder / "m.parquet")
        return folder / "m.parquet"
    data = frame.to_csv(index=False).encode()
    if kind == "csv":
        (folder / "m.csv").write_bytes(data)
        return folder / "m.csv"
    (folder / "m.csv.gz").write_bytes(gzip.compress(data))
    return folder / "m.csv.gz"


FORMS = {
    "long": (long_rows, {"clear": True, "renames": True}),
    "wide": (wide_rows, {"clear": False, "renames": False}),
    "json": (json_rows, {"clear": True, "renames": False}),
}


def unique_snapshots(plan: list[PlanEntry]) -> bool:
    return len({e.snapshot_id for e in plan}) == len(plan)


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "parquet", "jsonl", "frame"])
@pytest.mark.parametrize("form", sorted(FORMS))
def test_round_trip(form, kind, tmp_path_factory):
    to_rows, features = FORMS[form]

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(entries(**features).filter(unique_snapshots))
    def check(plan):
        rows = to_rows(plan)
        source = write(rows, kind, tmp_path_factory.mktemp("rt"), form)
        got = read_plan(source, env=NO_ENV)
        assert [e.as_json() for e in got.entries] == [e.as_json() for e in plan]
        assert got.form == form

    check()


def reference_fingerprint(plan: Plan) -> str:
    """The fingerprint as earlier versions computed it: reports they wrote must resume."""
    digest = hashlib.sha256()
    for entry in plan.entries:
        digest.update(json.dumps(entry.as_json(), sort_keys=True).encode() + b"\n")
    return digest.hexdigest()[:32]


KEY_TEXT = st.text(min_size=1, max_size=8)
TAG_MAP = st.dictionaries(KEY_TEXT, st.none() | st.text(max_size=8), max_size=3)


@settings(max_examples=80, deadline=None)
@given(
    specs=st.lists(
        st.tuples(
            st.integers(1, 10**9),
            st.booleans(),
            TAG_MAP,
            st.dictionaries(KEY_TEXT, KEY_TEXT, max_size=2),
            st.none() | st.text(max_size=8),
            st.booleans(),
        ),
        max_size=6,
    )
)
def test_fingerprint_is_unchanged_from_earlier_versions(specs):
    shared = SharedDict({"env": "prod", "ünï": None})
    entries = [
        PlanEntry(
            project,
            1,
            str(uuid.UUID(int=i)),
            tags=shared if share else SharedDict(tags),
            clear=clear,
            renames=renames,
            name=name,
        )
        for i, (project, clear, tags, renames, name, share) in enumerate(specs)
    ]
    plan = Plan(entries)
    assert plan.fingerprint() == reference_fingerprint(plan)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    specs=st.lists(
        st.tuples(
            st.sampled_from([(1, 1), (7, 1), (2**40, 3)]),
            st.integers(0, 2),
            st.none() | st.text(max_size=8),
            st.sampled_from(["uuid", "upper", "odd"]),
        ),
        min_size=1,
        max_size=9,
    ),
    named=st.booleans(),
    indexed=st.booleans(),
    lines=st.integers(1, 4),
)
def test_a_plan_held_as_columns_has_the_fingerprint_of_its_entries(
    specs, named, indexed, lines, monkeypatch
):
    """The columns' lines (a column at a time, a few entries at once) are the entries' own:
    shared tag states, names, several scopes, ids kept as keys or as text, ids to escape."""
    from batchtag.manifest import PlanEntries

    monkeypatch.setattr("batchtag.manifest._entries.LINES", lines)
    monkeypatch.setattr("batchtag.manifest._entries.BY_ENTRY", 0)  # (small plans: one by one)
    states = [
        (SharedDict({"env": "prod", "ünï": None}), False, SharedDict()),
        (SharedDict(), True, SharedDict({"old": "new"})),
        (SharedDict({"a": '"q"\n'}), True, SharedDict()),
    ]
    ids = {
        "uuid": str(uuid.UUID(int=11)),
        "upper": str(uuid.UUID(int=12)).upper(),
        "odd": 'sn"ap\\ü',
    }
    entries = PlanEntries(
        projects=np.array([s[0][0] for s in specs], dtype=np.int64),
        regions=np.array([s[0][1] for s in specs], dtype=np.int64),
        snapshots=pa.array(
            [f"{ids[s[3]]}-{i}" if s[3] == "odd" else ids[s[3]] for i, s in enumerate(specs)]
        ),
        state_codes=np.array([s[1] for s in specs]),
        states=states,
        names=[s[2] for s in specs] if named else None,
        row_ids=np.arange(1, len(specs) + 1),
        row_bounds=np.arange(len(specs) + 1),
        extra_codes=np.zeros(len(specs), dtype=np.int64),
        extras=[SharedDict()],
    )
    if indexed:  # ids held as keys are then read back through the index's ranks
        entries.plan_index()
    assert Plan(entries).fingerprint() == reference_fingerprint(Plan(list(entries)))
