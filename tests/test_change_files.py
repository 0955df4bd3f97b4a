"""Change files: `plan -o` -> review -> `apply FILE` applies what was reviewed and refuses
what went stale, key by key (a snapshot whose planned keys were changed since is `conflict`
and left alone unless --force; other keys never conflict); the same from Python with the
`plan()` frame; and a bad change file is refused before anything is sent."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import API_KEY, SID, change_state, invoke, patches, scope_of, tags_of, write_long_csv

import batchtag
from batchtag.errors import ManifestError, UsageError
from batchtag.record import CHANGE_COLUMNS


def setup(server, tmp_path, ids):
    """Known tags on four snapshots, and a manifest that sets env=prod on all four."""
    for sid in ids:
        change_state(server, sid, {"env": "dev"})
    rows = [{"snapshot_id": sid, "op": "set", "key": "env", "value": "prod"} for sid in ids]
    return write_long_csv(tmp_path / "m.csv", rows)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_apply_of_a_plan_file_applies_what_was_reviewed_and_refuses_what_went_stale(
    make_sandbox, tmp_path, suffix
):
    server = make_sandbox(snapshots=10)
    a, b, c, d = server.store.ids()[:4]
    manifest = setup(server, tmp_path, [a, b, c, d])
    plan = tmp_path / f"plan{suffix}"
    result = invoke(["plan", str(manifest), "-o", str(plan), "--detailed-exitcode"], server)
    assert result.exit_code == 2, result.output  # changes present
    change_state(server, a, {"env": "theirs"})  # a planned key changed since the review
    change_state(server, b, {"env": "dev", "team": "web"})  # another key: no conflict
    change_state(server, c, {"env": "prod"})  # already what the plan wants: no conflict
    sent = patches(server)
    result = invoke(["apply", str(plan), "--report", str(tmp_path / "r.csv")], server)
    assert result.exit_code == 1, result.output  # a conflict is an error
    report = batchtag.read_report(tmp_path / "r.csv").set_index("snapshot_id")
    assert report["status"].to_dict() == {a: "conflict", b: "ok", c: "noop", d: "ok"}
    assert report.loc[a, "error"] == (
        "env: 'theirs' now, 'dev' when the change was written; left alone"
    )
    assert "--force writes them anyway" in result.output
    assert patches(server) - sent == 2  # b and d: a is untouched
    assert tags_of(server, a) == {"env": "theirs"}
    assert tags_of(server, b) == {"env": "prod", "team": "web"}
    assert tags_of(server, d) == {"env": "prod"}
    forced = ["apply", str(plan), "--report", str(tmp_path / "f.csv"), "--force"]
    assert invoke(forced, server).exit_code == 0
    assert tags_of(server, a) == {"env": "prod"}


def test_a_plan_frame_is_a_change_frame_that_apply_takes(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=10)
    a, b = server.store.ids()[:2]
    change_state(server, a, {"env": "dev", "owner": "ann"}, name="db-a")
    change_state(server, b, {"env": "dev"})
    manifest = pd.DataFrame(
        {
            "snapshot_id": [a, a, b],
            "op": ["set", "name", "delete"],
            "key": ["env", "", "env"],
            "value": ["prod", "db-b", ""],
            "ticket": ["T-1", "T-1", "T-2"],
        }
    )
    kw = scope_of(server)
    plan = batchtag.plan(manifest, **kw)
    assert list(plan.columns) == [*CHANGE_COLUMNS, "ticket"]
    change_state(server, a, {"env": "dev", "owner": "bob"}, name="db-a")  # not a planned key
    report = batchtag.apply(plan, report=tmp_path / "r.csv", **kw).set_index("snapshot_id")
    assert report["status"].to_dict() == {a: "ok", b: "ok"}
    assert report.loc[a, "ticket"] == "T-1"  # the manifest's passthrough columns travel along
    assert tags_of(server, a) == {"env": "prod", "owner": "bob"}
    assert server.store.find(1, 1, a).name == "db-b" and tags_of(server, b) == {}
    again = batchtag.apply(plan, report=tmp_path / "again.csv", **kw)
    assert set(again["status"]) == {"noop"}  # applied already: nothing to do, no conflict
    change_state(server, a, {"env": "prod"}, name="someone-else")  # the name moved on
    stale = batchtag.apply(plan, report=tmp_path / "stale.csv", **kw).set_index("snapshot_id")
    assert stale.loc[a, "status"] == "conflict"
    assert "name: 'someone-else' now, 'db-a' when the change was written" in stale.loc[a, "error"]


def test_a_bad_change_file_is_refused_naming_rows_and_columns_before_any_request(sandbox, tmp_path):
    a = sandbox.store.ids()[0]
    rows = [
        {"snapshot_id": a, "field": "tags", "key": "env", "old": "", "new": "x"},
        {"snapshot_id": a, "field": "tag", "key": "a=b", "old": "", "new": "x"},
        {"snapshot_id": a, "field": "tag", "key": "env", "old": "dev", "new": "x"},
        {"snapshot_id": a, "field": "tag", "key": "env", "old": "test", "new": "x"},
        {"snapshot_id": a, "field": "name", "key": "", "old": "db", "new": "x"},
    ]
    bad = write_long_csv(tmp_path / "bad.csv", rows)
    result = invoke(["apply", str(bad), "--report", str(tmp_path / "r.csv")], sandbox)
    assert result.exit_code == 2
    assert "row 1, line 2, column 'field': field 'tags': a change is to a tag or the name" in (
        result.output
    )
    assert "row 2, line 3, column 'key': key 'a=b' contains '='" in result.output
    assert "row 4, line 5, column 'old': a second row for tag 'env' of snapshot" in result.output
    assert "row 5, line 6, column 'new': name 'x' is 1 characters long" in result.output
    assert sandbox.stats()["total_requests"] == 0 and not (tmp_path / "r.csv").exists()
    with pytest.raises(ManifestError, match="it is applied as it is; drop form='long'"):
        batchtag.apply(bad, form="long", **scope_of(sandbox))
    with pytest.raises(UsageError, match="not a change file"):
        batchtag.read_changes(write_long_csv(tmp_path / "m.csv", [{"snapshot_id": SID}]))


def test_validate_and_plan_read_a_change_file(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=10)
    a, b, c, d = server.store.ids()[:4]
    plan = tmp_path / "plan.csv"
    assert invoke(["plan", str(setup(server, tmp_path, [a, b, c, d])), "-o", str(plan)], server)
    checked = invoke(["validate", str(plan)], server)
    assert checked.exit_code == 0, checked.output
    assert checked.output.splitlines()[0] == "change file OK: 4 rows, 4 snapshots"
    change_state(server, a, {"env": "theirs"})
    again = invoke(["plan", str(plan), "--detailed-exitcode"], server)
    assert again.exit_code == 1  # a conflict is an error, even among changes
    assert "Plan: 3 to change, 1 conflict (4 snapshots, 3 writes)" in again.output
    assert f"! 1/1/{a}  conflict, left alone\n    ! env: 'theirs' now, 'dev' expected" in (
        again.output
    )


def test_enforce_check_writes_a_change_file_apply_takes(sandbox, tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text(
        '[scope]\nproject_id = 1\nregion_id = 1\n[[rule]]\nname = "cc"\n'
        'where = "`tag:cost-center`.isna()"\nset = { "cost-center" = "unassigned" }\n'
    )
    drift = tmp_path / "drift.parquet"
    result = invoke(["enforce", str(policy), "--check", "-o", str(drift)], sandbox)
    assert result.exit_code == 2, result.output  # drift
    assert f"change file written to {drift}" in result.output
    changes = batchtag.read_changes(drift)
    assert set(changes["key"]) == {"cost-center"} and changes["old"].isna().all()
    assert patches(sandbox) == 0
    applied = invoke(["apply", str(drift), "--report", str(tmp_path / "r.csv")], sandbox)
    assert applied.exit_code == 0, applied.output
    assert invoke(["enforce", str(policy), "--check"], sandbox).exit_code == 0  # clean now
    refused = invoke(["enforce", str(policy), "-o", str(drift), "--api-key", API_KEY], sandbox)
    assert refused.exit_code == 2 and "--check" in refused.output
