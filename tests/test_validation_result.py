"""`validate()` returns a `Validation`; problems are a DataFrame that names label and position;
DataFrame inputs a notebook makes by accident get a hint; docs say what users need."""

from __future__ import annotations

import inspect
import os
import pydoc
import warnings

import pandas as pd
import pytest
from helpers import API_KEY, SID, SID2, invoke, scope_of

import batchtag
from batchtag.sandbox import SandboxConfig

SCOPE = {"project_id": 1, "region_id": 1}


def long(ids, keys, values=None) -> pd.DataFrame:
    return pd.DataFrame(
        {"snapshot_id": ids, "op": "set", "key": keys, "value": values or ["v"] * len(ids)}
    )


def test_a_valid_manifest_gives_ok_and_the_summary():
    checked = batchtag.validate(long([SID, SID2], ["a", "b"]), **SCOPE)
    assert checked.ok and bool(checked) and checked.error is None
    assert checked.summary["snapshots"] == 2 and checked.summary["operations"]["set"] == 2
    assert list(checked.problems.columns) == ["row_label", "position", "line", "column", "message"]
    assert checked.problems.empty
    checked.raise_for_problems()  # nothing to raise
    assert repr(checked) == "<Validation: ok, long form, 2 snapshots>"
    assert str(checked).startswith("manifest OK (long form): 2 rows, 2 snapshots")


def test_problems_are_a_frame_and_the_error_carries_the_same_one(sandbox):
    bad = long([SID, SID2, "not-a-uuid"], ["a", "b c", "d"])
    checked = batchtag.validate(bad, **SCOPE)
    assert not checked.ok and not checked and checked.summary is None
    problems = checked.problems
    assert problems[["row_label", "position", "column"]].values.tolist() == [
        [1, 1, "key"],
        [2, 2, "snapshot_id"],
    ]
    assert problems["message"].tolist()[0] == "key 'b c' contains whitespace"
    assert str(problems["position"].dtype) == "Int64" and problems["line"].isna().all()
    with pytest.raises(batchtag.ManifestError) as raised:
        checked.raise_for_problems()
    pd.testing.assert_frame_equal(raised.value.problems, problems)
    assert str(checked) == str(raised.value)
    with pytest.raises(batchtag.ManifestError) as applied:  # apply and plan still raise
        batchtag.apply(bad, **scope_of(sandbox))
    pd.testing.assert_frame_equal(applied.value.problems, problems)
    assert sandbox.stats()["requests"] == {}


def test_a_files_problems_name_row_and_line(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(f"\nsnapshot_id,op,key,value\n{SID},set,a,1\n{SID2},set,b c,2\n")
    problems = batchtag.validate(path, **SCOPE).problems
    assert problems[["row_label", "position", "line", "column"]].values.tolist() == [
        [2, 1, 4, "key"]
    ]


def test_a_repeated_index_label_comes_with_the_position():
    bad = long([SID, SID2], ["a", "b c"]).set_axis([0, 0])
    checked = batchtag.validate(bad, **SCOPE)
    assert "row label 0 (position 1), column 'key'" in str(checked)
    assert checked.problems[["row_label", "position"]].values.tolist() == [[0, 1]]
    unique = long([SID, SID2], ["a", "b c"]).set_axis([10, 20])
    assert "row label 20, column 'key'" in str(batchtag.validate(unique, **SCOPE))
    assert batchtag.validate(unique, **SCOPE).problems["position"].tolist() == [1]


def test_a_multiindex_or_an_index_named_like_a_column_says_reset_index():
    frame = long([SID, SID2], ["a", "b"])
    multi = batchtag.validate(frame.set_index(["snapshot_id", "op"]), **SCOPE)
    assert "MultiIndex (levels 'snapshot_id', 'op'): call reset_index() first" in str(multi)
    assert "missing" not in str(multi)
    named = batchtag.validate(frame.set_index("snapshot_id"), **SCOPE)
    assert "index is named 'snapshot_id'" in str(named) and "reset_index()" in str(named)
    assert batchtag.validate(frame.set_index("snapshot_id").reset_index(), **SCOPE).ok


def test_values_that_are_not_text_are_sent_as_text_with_one_warning(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=3, api_key=API_KEY)
    ids = server.store.ids()
    frame = long(ids, ["flag", "big", "n"], [True, 1e20, 3])
    with pytest.warns(UserWarning) as caught:
        batchtag.apply(frame, report=str(tmp_path / "r.csv"), **scope_of(server))
    (warning,) = caught
    text = str(warning.message)
    assert "column 'value' holds values that are not text" in text
    assert "row label 0: True is sent as 'true'" in text
    assert warning.filename == __file__  # points at the caller's line
    tags = {s.id: s.tags for s in server.store.snapshots()}
    assert [tags[i][k] for i, k in zip(ids, ["flag", "big", "n"], strict=True)] == [
        "true",
        "1e+20",
        "3",
    ]
    path = tmp_path / "m.parquet"
    pd.DataFrame({"snapshot_id": ids, "tag:size": [10, 20, None]}).to_parquet(path)
    with pytest.warns(UserWarning, match=r"column 'tag:size' .* row 1: 10.0 is sent as '10'"):
        batchtag.validate(path, **SCOPE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # text cells: no warning
        batchtag.validate(long(ids, ["a", "b", "c"]), **SCOPE)


def test_the_command_line_logs_the_note_instead(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=2, api_key=API_KEY)
    path = tmp_path / "m.parquet"
    pd.DataFrame({"snapshot_id": server.store.ids(), "tag:n": [1, 2]}).to_parquet(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a log line, not a Python warning
        result = invoke(["validate", str(path)], server)
    assert result.exit_code == 0 and result.stdout.startswith("manifest OK (wide form)")
    assert result.stderr == (
        "WARNING batchtag.manifest: column 'tag:n' holds values that are not text, sent as"
        " their text: row 1: 1 is sent as '1'; store it as text to choose the text yourself\n"
    )


def test_a_python_dry_run_writes_no_file_unless_asked(sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ids = sandbox.store.ids()[:3]
    frame = batchtag.apply(long(ids, ["a", "b", "c"]), dry_run=True, **scope_of(sandbox))
    assert set(frame["status"]) == {"planned"} and frame.attrs["summary"]["report"] is None
    assert os.listdir(tmp_path) == []
    asked = batchtag.apply(
        long(ids, ["a", "b", "c"]), dry_run=True, report="dry.csv", **scope_of(sandbox)
    )
    assert (tmp_path / "dry.csv").exists() and len(asked) == 3
    assert sandbox.stats()["requests"].get("PATCH", 0) == 0


def test_docstrings_say_what_users_need():
    doc = inspect.getdoc(batchtag)
    for form, example in [
        ("long", "0f3c...,set,cost-center,cc-42"),
        ("wide", "snapshot_id,tag:cost-center,tag:tmp"),
        ("json", '{"snapshot_id": "0f3c...", "tags": {"cost-center": "cc-42", "tmp": null}}'),
    ]:
        assert f"\n{form}\n" in doc and example in doc
    validate = pydoc.render_doc(batchtag.validate, renderer=pydoc.plaintext)
    assert "AbortRun" not in validate and "Validation" in validate
    for func in (batchtag.enforce, batchtag.export):
        assert "await" not in inspect.getdoc(func).split("Examples")[1]
    undo = inspect.getdoc(batchtag.undo)
    output = undo[undo.index("output : ") :].split("\n")[1]
    assert "change file" in output and all(s in output for s in (".csv", ".parquet", ".jsonl"))
    apply = inspect.getdoc(batchtag.apply)
    assert "reports/batchtag-YYYYmmdd-HHMMSS.csv" in apply and "Interrupted" in apply
    config = inspect.getdoc(SandboxConfig)
    for name in SandboxConfig.__dataclass_fields__:
        assert name in config, name
