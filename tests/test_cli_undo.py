"""`batchtag undo` and `batchtag.undo()` against the sandbox: the undo file (a change file)
reverts a run, a snapshot whose changed keys drifted is `conflict` and left alone unless
--force, rows written blind are listed and the rest reverted; and the property
plan == apply, apply + apply(undo) == original."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers import API_KEY, closed_url, invoke, live_examples, patches, write_long_csv
from hypothesis import given
from hypothesis import strategies as st
from test_cli_plan import set_state

import batchtag
from batchtag.model import CONFLICT


def state(server, ids):
    """(user tags, read-only tags, name) per snapshot."""
    out = {}
    for sid in ids:
        snap = server.store.find(1, 1, sid)
        user = {k: v for k, v in snap.tags.items() if k not in snap.read_only}
        ro = {k: v for k, v in snap.tags.items() if k in snap.read_only}
        out[sid] = (user, ro, snap.name)
    return out


@pytest.fixture
def run1(make_sandbox, tmp_path):
    """A run (reading the before-state) that tagged a, b, c and renamed d."""
    server = make_sandbox(snapshots=10)
    ids = server.store.ids()[:4]
    original = state(server, ids)
    rows = [{"snapshot_id": sid, "op": "set", "key": "batch", "value": "one"} for sid in ids[:3]]
    rows.append({"snapshot_id": ids[3], "op": "name", "key": "", "value": "renamed"})
    manifest = write_long_csv(tmp_path / "m.csv", rows)
    report = tmp_path / "run1.csv"
    result = invoke(["apply", str(manifest), "--check-current", "--report", str(report)], server)
    assert result.exit_code == 0, result.output
    assert server.store.find(1, 1, ids[3]).name == "renamed"
    return server, ids, original, report


def apply_file(server, path, report):
    result = invoke(["apply", str(path), "--report", str(report)], server)
    assert result.exit_code == 0, result.output


def test_undo_file_reverts_the_run_but_not_a_snapshot_changed_since(run1, tmp_path):
    server, ids, original, report = run1
    server.store.find(1, 1, ids[0]).tags["batch"] = "theirs"  # someone else, later
    drifted = state(server, ids[:1])
    result = invoke(["undo", str(report)], server)
    assert result.exit_code == 1, result.output
    assert "undo: 3 snapshot(s) to revert" in result.output
    assert f"{CONFLICT} 1/1/{ids[0]}" in result.output and "batch: 'one' → 'theirs'" in (
        result.output
    )
    undo_file = tmp_path / "run1.undo.jsonl"  # the default: next to the report
    assert [json.loads(line)["snapshot_id"] for line in open(undo_file)] == ids[1:]
    assert [json.loads(line)["field"] for line in open(undo_file)] == ["tag", "tag", "name"]
    apply_file(server, undo_file, tmp_path / "undo1.csv")
    assert state(server, ids[:1]) == drifted
    assert state(server, ids[1:]) == {sid: original[sid] for sid in ids[1:]}


def test_force_reverts_the_drifted_snapshot_too(run1, tmp_path):
    server, ids, original, report = run1
    server.store.find(1, 1, ids[0]).tags["batch"] = "theirs"
    out = tmp_path / "forced.jsonl"
    result = invoke(["undo", str(report), "-o", str(out), "--force"], server)
    assert result.exit_code == 0, result.output
    apply_file(server, out, tmp_path / "undo1.csv")
    assert state(server, ids) == original


def test_undo_of_a_partly_blind_run_reverts_the_rest_and_lists_why(run1, tmp_path):
    server, ids, original, report = run1
    blind = pd.read_csv(report, dtype=str, keep_default_na=False)
    blind.loc[blind["snapshot_id"] == ids[0], "tags_before"] = ""  # as a blind write leaves it
    blind_report = tmp_path / "blind.csv"
    blind.to_csv(blind_report, index=False)
    result = invoke(["undo", str(blind_report)], server)
    assert result.exit_code == 1, result.output
    assert "undo: 3 snapshot(s) to revert" in result.output
    assert "1 cannot be undone" in result.output
    assert f"skipped 1/1/{ids[0]}: cannot be undone: the run did not read" in result.output
    apply_file(server, tmp_path / "blind.undo.jsonl", tmp_path / "undo1.csv")
    assert state(server, ids[1:]) == {sid: original[sid] for sid in ids[1:]}
    assert state(server, ids[:1])[ids[0]][0]["batch"] == "one"  # left as the run made it


def test_undo_file_takes_any_change_file_format(run1, tmp_path):
    server, ids, original, report = run1
    for suffix in (".csv", ".parquet"):
        out = tmp_path / f"u{suffix}"
        result = invoke(["undo", str(report), "-o", str(out)], server)
        assert result.exit_code == 0, result.output
        assert len(batchtag.read_changes(out)) == 4  # 3 tags and a name
    apply_file(server, tmp_path / "u.parquet", tmp_path / "undo1.csv")
    assert state(server, ids) == original


def test_python_undo_returns_a_manifest_apply_takes(run1, tmp_path):
    server, ids, original, report = run1
    server.store.find(1, 1, ids[1]).tags["batch"] = "theirs"
    kw = {"base_url": server.base_url, "api_key": API_KEY}
    inverse = batchtag.undo(report, **kw)
    assert sorted(set(inverse["snapshot_id"])) == sorted([ids[0], ids[2], ids[3]])
    skipped = inverse.attrs["skipped"]
    assert skipped[["snapshot_id", "status"]].values.tolist() == [[ids[1], CONFLICT]]
    assert inverse.attrs["summary"]["skipped"] == {CONFLICT: 1}
    batchtag.apply(inverse, report=tmp_path / "undo.csv", **kw)
    assert state(server, [ids[0], ids[2], ids[3]]) == {
        sid: original[sid] for sid in (ids[0], ids[2], ids[3])
    }


# ---------------------------------------------------------------- the property

KEYS = ["env", "team", "owner"]
values = st.sampled_from(["a", "b"])
user_tags = st.dictionaries(st.sampled_from(KEYS), values, max_size=3)
operations = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), values, min_size=1, max_size=2).map(
        lambda d: [("set", k, v) for k, v in d.items()]
    ),
    st.sampled_from(KEYS).map(lambda k: [("delete", k, "")]),
    st.lists(st.sampled_from(KEYS), min_size=2, max_size=2, unique=True).map(
        lambda p: [("rename", p[0], p[1])]
    ),
    st.tuples(st.sampled_from(KEYS), values).map(lambda t: [("clear", "", ""), ("set", *t)]),
    st.sampled_from(["name-1", "name-2"]).map(lambda n: [("name", "", n)]),
)


def predicted(diff, before):
    """The state `plan` says the snapshots will be in."""
    after = {sid: (dict(user), ro, name) for sid, (user, ro, name) in before.items()}
    for row in diff.astype(object).where(diff.notna(), None).to_dict("records"):
        user, ro, name = after[row["snapshot_id"]]
        if row["field"] == "name":
            after[row["snapshot_id"]] = (user, ro, row["new"])
        elif row["change"] == "remove":
            del user[row["key"]]
        elif row["change"] in ("add", "change"):
            user[row["key"]] = row["new"]
    return after


@pytest.fixture(scope="module")
def prop_server():
    from batchtag.sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(snapshots=8)) as server:
        yield server


FOUR_SNAPSHOTS = st.tuples(  # (current user tags, operations) of four snapshots
    st.lists(user_tags, min_size=4, max_size=4), st.lists(operations, min_size=4, max_size=4)
)


@live_examples(10, timeout=60)
@given(scenario=FOUR_SNAPSHOTS)
def test_apply_ends_where_plan_said_and_undo_takes_it_back(prop_server, tmp_path, scenario):
    server, (current, ops) = prop_server, scenario
    ids = server.store.ids()[:4]
    for i, (sid, tags) in enumerate(zip(ids, current, strict=True)):
        set_state(server, sid, tags, ro={"created-by": "gcore"} if i % 2 else None, name="name-0")
    original = state(server, ids)
    rows = [
        {"snapshot_id": sid, "op": op, "key": key, "value": value}
        for sid, group in zip(ids, ops, strict=True)
        for op, key, value in group
    ]
    manifest = pd.DataFrame(rows)
    kw = {"base_url": server.base_url, "api_key": API_KEY}
    scope = {"project_id": 1, "region_id": 1}
    diff = batchtag.plan(manifest, **kw, **scope)
    sent = patches(server)
    report = batchtag.apply(
        manifest, report=tmp_path / "run.csv", overwrite=True, check_current=True, **kw, **scope
    )
    assert state(server, ids) == predicted(diff, original)  # a conflict's rows: notes only
    assert patches(server) - sent == diff.attrs["summary"]["writes"]
    assert set(report["status"]) <= {"ok", "noop", "conflict"}
    inverse = batchtag.undo(
        tmp_path / "run.csv", output=tmp_path / "run.undo.jsonl", overwrite=True, **kw
    )
    assert inverse.attrs["skipped"].empty
    written = inverse.attrs["summary"]["output"]  # beside an earlier example's: never replaced
    if len(inverse):  # (a run that changed nothing: an empty JSON Lines file, nothing to apply)
        undo_run = ["apply", written, "--report", str(tmp_path / "u.csv")]
        result = invoke([*undo_run, "--overwrite"], server)
        assert result.exit_code == 0, result.output
    assert state(server, ids) == original


def strict_lines(path) -> list[dict]:
    """Every line parsed by a strict JSON parser (NaN / Infinity refused)."""

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return [json.loads(line, parse_constant=refuse) for line in open(path)]


def test_undo_file_is_strict_json_when_only_some_names_changed(run1, tmp_path):
    server, ids, _, report = run1
    out = tmp_path / "strict.jsonl"
    result = invoke(["undo", str(report), "-o", str(out)], server)
    assert result.exit_code == 0, result.output
    rows = {row["snapshot_id"]: row for row in strict_lines(out)}
    assert rows[ids[0]]["field"] == "tag" and rows[ids[0]]["new"] is None
    assert rows[ids[3]]["field"] == "name" and rows[ids[3]]["old"] == "renamed"


def test_undo_never_replaces_the_undo_file_of_the_run(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=5)
    ids = server.store.ids()[:2]
    manifest = write_long_csv(
        tmp_path / "m.csv",
        [{"snapshot_id": sid, "op": "set", "key": "batch", "value": "one"} for sid in ids],
    )
    report, undo_file = tmp_path / "run1.csv", tmp_path / "run1.undo.jsonl"
    args = ["apply", str(manifest), "--report", str(report), "--undo-file", str(undo_file)]
    assert invoke(args, server).exit_code == 0
    written = undo_file.read_text()
    result = invoke(["undo", str(report)], server)
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"error: --output {undo_file} already exists (it may be the undo file the run wrote "
        "itself): choose another --output, or pass --overwrite to keep it and write beside it"
    ]
    assert undo_file.read_text() == written
    with pytest.raises(batchtag.UsageError, match=r"overwrite=True"):
        batchtag.undo(report, output=undo_file, base_url=server.base_url, api_key=API_KEY)
    result = invoke(["undo", str(report), "--overwrite"], server)
    assert result.exit_code == 0, result.output
    beside = tmp_path / "run1.undo-2.jsonl"
    assert f"written to {beside}" in result.output
    assert f"({undo_file} exists and is kept)" in result.output
    assert undo_file.read_text() == written
    assert [row["snapshot_id"] for row in strict_lines(beside)] == ids


def test_undo_of_a_run_still_going_is_refused_unless_forced(run1, tmp_path):
    from batchtag.record import ReportLock

    server, ids, _, report = run1
    with ReportLock(report):  # as a running apply holds it
        result = invoke(["undo", str(report)], server)
        assert result.exit_code == 2, result.output
        assert "still being written by a running batchtag" in result.output
        assert "--force" in result.output
        assert not (tmp_path / "run1.undo.jsonl").exists()
        forced = invoke(["undo", str(report), "--force"], server)
        assert forced.exit_code == 0, forced.output
    assert len(batchtag.read_changes(tmp_path / "run1.undo.jsonl")) == 4


def test_undo_with_an_unreachable_api_is_one_line_exit_3(run1, tmp_path):
    server, _, _, report = run1
    result = invoke(["undo", str(report), "--retries", "0"], server, GCORE_BASE_URL=closed_url())
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot read the snapshots: ")
    assert not (tmp_path / "run1.undo.jsonl").exists()


def refused_undo(server, report) -> str:
    """`batchtag undo REPORT`: exit 2, one line on stderr (returned), nothing read or written."""
    before = sum(server.stats()["requests"].values())
    result = invoke(["undo", str(report)], server)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert sum(server.stats()["requests"].values()) == before
    assert not report.with_suffix(".undo.jsonl").exists()
    return lines[0]


@pytest.mark.parametrize(
    "cell, said",
    [
        (
            '["env", "prod"]',
            'tags_before holds a JSON list, not the tags as an object {"key": "value"}',
        ),
        (
            '"env=prod"',
            'tags_before holds a JSON string, not the tags as an object {"key": "value"}',
        ),
        ('{"env": 1}', "tags_before: tag 'env' has the value 1, not text"),
    ],
)
def test_a_tags_before_cell_that_is_not_tags_is_one_line_naming_the_row(run1, tmp_path, cell, said):
    server, ids, _, report = run1
    edited = pd.read_csv(report, dtype=str, keep_default_na=False)
    edited.loc[1, "tags_before"] = cell
    path = tmp_path / "edited.csv"
    edited.to_csv(path, index=False)
    line = refused_undo(server, path)
    assert line == f"error: {path}: row 2 (snapshot {edited.loc[1, 'snapshot_id']}): {said}"


def test_a_report_without_tags_after_is_refused_naming_tags_after(run1, tmp_path):
    server, _, _, report = run1
    path = tmp_path / "cut.csv"
    pd.read_csv(report, dtype=str, keep_default_na=False).drop(columns="tags_after").to_csv(
        path, index=False
    )
    line = refused_undo(server, path)
    assert "tags_after is empty (or the column is missing)" in line and "tags_before" not in line
    frame = batchtag.read_report(report).drop(columns="tags_after")
    with pytest.raises(batchtag.UsageError, match="no tags_after column") as caught:
        batchtag.undo(frame, base_url=server.base_url, api_key=API_KEY)
    assert "tags_before" not in str(caught.value)


def test_undo_of_a_dry_run_says_it_changed_nothing(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=5)
    rows = [{"snapshot_id": s, "op": "set", "key": "b", "value": "1"} for s in server.store.ids()]
    manifest = write_long_csv(tmp_path / "m.csv", rows)
    report = tmp_path / "dry.csv"
    assert (
        invoke(["apply", str(manifest), "--dry-run", "--report", str(report)], server).exit_code
        == 0
    )
    line = refused_undo(server, report)
    assert line == (
        f"error: {report}: the report of a dry run (its rows are 'planned'): a dry run changed"
        " nothing, so there is nothing to undo"
    )
