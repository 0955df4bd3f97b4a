"""No silent overwrite, and exit codes automation can wire:

- a rename onto a key that holds a different value is refused (plan and apply: a
  `conflict`; enforce: naming the rule and the snapshot) unless the rename asks for it
  (an `overwrite` manifest column, `overwrite = true` in a policy's rename);
- blank tag cells of a wide manifest without --empty-deletes get a note (validate, plan,
  apply);
- `enforce --check`: 0 clean, 2 drift, 1 any error (bad policy, missing key, unreachable
  API, a conflict), as `plan --detailed-exitcode`.
"""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import change_state, closed_url, invoke, patches, scope_of, tags_of, write_long_csv

import batchtag

NOTE = "2 blank tag cells ignored; --empty-deletes deletes those tags"


def rename_rows(ids, overwrite=None):
    rows = [{"snapshot_id": sid, "op": "rename", "key": "Owner", "value": "owner"} for sid in ids]
    if overwrite is not None:
        for row, flag in zip(rows, overwrite, strict=True):
            row["overwrite"] = flag
    return rows


def test_a_rename_onto_another_value_is_refused_unless_its_row_says_overwrite(sandbox, tmp_path):
    a, b, c = sandbox.store.ids()[:3]
    change_state(sandbox, a, {"Owner": "ann", "owner": "bob"})  # owner holds another value
    change_state(sandbox, b, {"Owner": "ann"})  # nothing there: renamed
    change_state(sandbox, c, {"Owner": "ann", "owner": "ann"})  # the same value: renamed
    manifest = write_long_csv(tmp_path / "m.csv", rename_rows([a, b, c]))
    checked = invoke(["validate", str(manifest)], sandbox)
    assert "a rename onto a key that holds a different value is refused" in checked.output
    plan = invoke(["plan", str(manifest), "--detailed-exitcode"], sandbox)
    assert plan.exit_code == 1, plan.output
    assert f"! 1/1/{a}  conflict, left alone\n    ! owner: 'bob' now, 'ann' expected" in (
        plan.output
    )
    result = invoke(["apply", str(manifest), "--report", str(tmp_path / "r.csv")], sandbox)
    assert result.exit_code == 1, result.output
    report = batchtag.read_report(tmp_path / "r.csv").set_index("snapshot_id")
    assert report["status"].to_dict() == {a: "conflict", b: "ok", c: "ok"}
    assert report.loc[a, "error"] == (
        "rename 'Owner' -> 'owner' refused: 'owner' holds 'bob', not 'ann' "
        "(overwrite to replace it); left alone"
    )
    assert tags_of(sandbox, a) == {"Owner": "ann", "owner": "bob"}
    assert tags_of(sandbox, b) == {"owner": "ann"} == tags_of(sandbox, c)
    asked = write_long_csv(tmp_path / "o.csv", rename_rows([a], overwrite=["true"]))
    replaced = invoke(["apply", str(asked), "--report", str(tmp_path / "o.csv.r.csv")], sandbox)
    assert replaced.exit_code == 0, replaced.output
    assert tags_of(sandbox, a) == {"owner": "ann"}


def test_a_bad_overwrite_cell_is_one_line_naming_row_and_column(sandbox, tmp_path):
    manifest = write_long_csv(
        tmp_path / "m.csv", rename_rows(sandbox.store.ids()[:2], ["", "sure"])
    )
    result = invoke(["validate", str(manifest)], sandbox)
    assert result.exit_code == 2
    assert "row 2, line 3, column 'overwrite': overwrite 'sure': use true or false" in result.output


def test_blank_tag_cells_get_a_note_unless_empty_deletes(sandbox, tmp_path):
    a, b = sandbox.store.ids()[:2]
    wide = tmp_path / "w.csv"
    pd.DataFrame({"snapshot_id": [a, b], "tag:k1": ["x", ""], "tag:k2": ["", "y"]}).to_csv(
        wide, index=False
    )
    assert f"note: {NOTE}" in invoke(["validate", str(wide)], sandbox).output
    assert f"note: {NOTE}" in invoke(["plan", str(wide)], sandbox).output
    applied = invoke(["apply", str(wide), "--report", str(tmp_path / "r.csv")], sandbox)
    assert f"note: {NOTE}" in applied.output
    quiet = invoke(["validate", str(wide), "--empty-deletes"], sandbox)
    assert "note:" not in quiet.output
    frame = batchtag.plan(pd.read_csv(wide, dtype=str), **scope_of(sandbox))
    assert frame.attrs["summary"]["notes"] == [
        "2 blank tag cells ignored; empty_deletes=True deletes those tags"
    ]


POLICY = '[scope]\nproject_id = 1\nregion_id = 1\n[[rule]]\nname = "owner, not Owner"\n'
POLICY += 'where = "`tag:Owner`.notna()"\n'


def test_enforce_refuses_a_rename_onto_another_value_naming_rule_and_snapshot(sandbox, tmp_path):
    a, b = sandbox.store.ids()[:2]
    change_state(sandbox, a, {"Owner": "ann", "owner": "bob"})
    change_state(sandbox, b, {"Owner": "ann"})
    policy = tmp_path / "p.toml"
    policy.write_text(POLICY + 'rename = { Owner = "owner" }\n')
    check = invoke(["enforce", str(policy), "--check"], sandbox)
    assert check.exit_code == 1, check.output  # a conflict is an error
    assert "owner, not Owner: 2 matched, 1 noncompliant, 1 refused" in check.output
    assert (
        "rule 'owner, not Owner' (line 4): rename 'Owner' -> 'owner' refused on 1 snapshots"
        f" whose 'owner' holds another value (e.g. 1/1/{a})" in check.stderr
    )
    report = batchtag.enforce(policy, report=tmp_path / "r.csv", **scope_of(sandbox))
    rows = report.set_index("snapshot_id")
    assert rows.loc[a, "status"] == "conflict" and rows.loc[a, "rule"] == "owner, not Owner"
    assert rows.loc[b, "status"] == "ok"
    assert report.attrs["summary"]["exit_code"] == 1
    assert tags_of(sandbox, a) == {"Owner": "ann", "owner": "bob"}
    policy.write_text(POLICY + 'rename = { Owner = "owner", overwrite = true }\n')
    batchtag.enforce(policy, report=tmp_path / "r2.csv", **scope_of(sandbox))
    assert tags_of(sandbox, a) == {"owner": "ann"}


def test_enforce_check_exits_0_clean_2_drift_1_any_error(sandbox, tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text(
        '[scope]\nproject_id = 1\nregion_id = 1\n[[rule]]\nname = "cc"\n'
        'where = "`tag:cost-center`.isna()"\nset = { "cost-center" = "x" }\n'
    )
    check = ["enforce", str(policy), "--check"]
    assert invoke(check, sandbox).exit_code == 2  # drift
    assert (
        invoke(["enforce", str(policy), "--report", str(tmp_path / "r.csv")], sandbox).exit_code
        == 0
    )
    assert invoke(check, sandbox).exit_code == 0  # clean
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rule]]\nname = 'x'\nfrobnicate = 1\n")
    assert invoke(["enforce", str(bad)], sandbox).exit_code == 2  # not a check: apply's code
    assert invoke(["enforce", str(bad), "--check"], sandbox).exit_code == 1
    assert invoke([*check, "--rate", "fast"], sandbox).exit_code == 1  # a bad option
    assert invoke(check, sandbox, GCORE_API_KEY="").exit_code == 1  # no key
    away = invoke([*check, "--retries", "0"], sandbox, GCORE_BASE_URL=closed_url())
    assert away.exit_code == 1
    assert patches(sandbox) > 0


@pytest.mark.parametrize("flag", ["--detailed-exitcode", None])
def test_plan_conflicts_are_errors(sandbox, tmp_path, flag):
    a = sandbox.store.ids()[0]
    change_state(sandbox, a, {"Owner": "ann", "owner": "bob"})
    manifest = write_long_csv(tmp_path / "m.csv", rename_rows([a]))
    result = invoke(["plan", str(manifest), *([flag] if flag else [])], sandbox)
    assert result.exit_code == 1
