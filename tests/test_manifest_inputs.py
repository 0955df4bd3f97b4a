"""Manifests as users really hand them over: spreadsheet exports, odd encodings and
separators, DataFrames with their own index, numbers where text is expected, edited exports.

Corpus files with one problem each are in test_manifest.py; these are the cases that need a
plan to compare, several spellings, or a property.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import API_KEY
from hypothesis import given, settings
from hypothesis import strategies as st
from manifest_helpers import NO_ENV, SID, SID2, cli_caller, problems_of

import batchtag
from batchtag.errors import ManifestError
from batchtag.manifest import read_plan

# every test twice: small CSV files read the short way, then the full way
pytestmark = pytest.mark.usefixtures("both_paths")

SCOPE = {"project_id": 1, "region_id": 2, "env": NO_ENV}
HEADER = "snapshot_id,project_id,region_id,op,key,value"


def refused(source, **options) -> list[str]:
    return problems_of(source, **{**SCOPE, **options})


def tags_of(source, **options) -> list[dict]:
    return [e.tags for e in read_plan(source, **{**SCOPE, **options})]


# --- CSV headers and line numbers ------------------------------------------------------------


@pytest.mark.parametrize("ending", ["", "\n", "\r\n", "\n\n"])
@pytest.mark.parametrize("bom", ["", "\ufeff"])
def test_a_header_only_csv_is_zero_operations_with_or_without_a_final_newline(
    tmp_path, ending, bom
):
    path = tmp_path / "m.csv"
    path.write_text(bom + HEADER + ending, newline="")
    plan = read_plan(path, **SCOPE)
    assert (len(plan), plan.rows, plan.form) == (0, 0, "long")


def test_blank_lines_before_the_header_are_skipped_and_lines_stay_right(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(f"\n\n{HEADER}\n{SID},1,2,set,env,prod\n{SID2},1,2,set,env,bad value\n")
    assert refused(path) == ["row 2, line 5, column 'value': value 'bad value' contains whitespace"]
    path.write_text(f"\r\n{HEADER}\r\n{SID},1,2,set,env,prod\r\n")
    assert tags_of(path) == [{"env": "prod"}]


def test_crlf_lines_keep_their_numbers(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(f"{HEADER}\r\n{SID},1,2,set,env,prod\r\n{SID2},1,2,set,a b,x\r\n".encode())
    assert refused(path) == ["row 2, line 3, column 'key': key 'a b' contains whitespace"]


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_a_header_ended_by_any_line_end_is_read(tmp_path, end):
    path = tmp_path / "m.csv"
    path.write_bytes(f"{HEADER}{end}{SID},1,2,set,env,prod{end}".encode())
    assert tags_of(path) == [{"env": "prod"}]


@pytest.mark.parametrize(
    "separator, word", [(";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")]
)
def test_a_csv_separated_by_something_else_says_use_a_comma(tmp_path, separator, word):
    path = tmp_path / "m.csv"
    rows = [HEADER.split(","), [SID, "1", "2", "set", "env", "prod"]]
    path.write_text("\n".join(separator.join(r) for r in rows) + "\n")
    assert refused(path) == [
        f"line 1: the file looks separated by {word}, not commas: use a comma as the separator"
        " (in a spreadsheet, save as 'CSV UTF-8 (comma delimited)')"
    ]


def test_a_comma_csv_with_a_semicolon_in_a_column_name_is_read(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(f"{HEADER},note;s\n{SID},1,2,set,env,prod,a;b\n")
    plan = read_plan(path, **SCOPE)
    assert plan.entries[0].extra == {"note;s": "a;b"}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_files_are_refused_with_save_as_utf8(tmp_path, encoding):
    text = f"{HEADER}\n{SID},1,2,set,env,prod\n"
    (tmp_path / "m.csv").write_bytes(text.encode(encoding))
    assert refused(tmp_path / "m.csv") == [
        "the file looks like UTF-16 text: save the file as UTF-8"
    ]
    jsonl = json.dumps({"snapshot_id": SID, "tags": {"a": "b"}}) + "\n"
    (tmp_path / "m.jsonl").write_bytes(jsonl.encode("utf-16"))
    assert refused(tmp_path / "m.jsonl") == [
        "the file looks like UTF-16 text: save the file as UTF-8"
    ]


def test_a_nul_byte_in_a_cell_is_a_control_character(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(f"{HEADER}\n{SID},1,2,set,env,pr\0od\n".encode())
    assert refused(path) == [
        "row 1, line 2, column 'value': value 'pr\\x00od' contains the control character U+0000"
    ]


def test_header_names_are_trimmed_and_duplicates_refused(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(f" snapshot_id , project_id,region_id ,op,key,value\n{SID},1,2,set,env,x\n")
    assert tags_of(path) == [{"env": "x"}]
    path.write_text(f"snapshot_id,tag:env, tag:env\n{SID},a,b\n")
    assert refused(path) == ["line 1, column 'tag:env': duplicate column name"]


def test_a_tag_column_without_a_key_is_refused(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(f"snapshot_id,tag:,tag:env\n{SID},a,b\n")
    assert refused(path) == ["column 'tag:': column name: tag key is empty"]


def test_spaces_around_ids_and_ops_are_trimmed_but_not_around_tag_values(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(f"{HEADER}\n {SID.upper()} , 7 , 8 , SET ,env,prod\n")
    plan = read_plan(path, env=NO_ENV)
    assert [(e.key, e.tags) for e in plan] == [((7, 8, SID), {"env": "prod"})]
    path.write_text(f"{HEADER}\n{SID},1,2,set,env, prod\n")
    assert refused(path) == ["row 1, line 2, column 'value': value ' prod' contains whitespace"]


# --- JSON: keys named twice ------------------------------------------------------------------


def test_a_jsonl_object_naming_a_key_twice_is_refused_with_its_line(tmp_path):
    path = tmp_path / "m.jsonl"
    good = json.dumps({"snapshot_id": SID2, "tags": {"a": "1"}})
    path.write_text(
        f"{good}\n\n"
        f'{{"snapshot_id": "{SID}", "tags": {{"a": "1"}}, "tags": {{"a": "2"}}}}\n'
        f'{{"snapshot_id": "{SID}", "tags": {{"env": "a", "env": "b"}}}}\n'
    )
    assert refused(path) == [
        "row 2, line 3: the key 'tags' appears twice in one object: which one is meant is"
        " ambiguous",
        "row 3, line 4: the key 'env' appears twice in one object: which one is meant is ambiguous",
    ]


def test_a_tags_cell_naming_a_tag_twice_is_refused(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(f'snapshot_id,tags\n{SID},"{{""env"": ""a"", ""env"": ""b""}}"\n')
    assert refused(path) == [
        "row 1, line 2, column 'tags': tags names the key 'env' twice: which one is meant is"
        " ambiguous"
    ]


# --- control characters ------------------------------------------------------------------------

CONTROL = st.characters(categories=["Cc"])


@settings(max_examples=60, deadline=None)
@given(char=CONTROL, where=st.sampled_from(["key", "value", "wide", "json", "name"]))
def test_a_control_character_anywhere_in_a_tag_or_name_is_refused(char, where):
    text = f"a{char}b"
    if where in ("key", "value"):
        cells = {"op": ["set"], "key": ["env"], "value": ["prod"]}
        cells[where] = [text]
        column = where
    elif where == "wide":
        cells, column = {"tag:env": [text]}, "tag:env"
    elif where == "json":
        cells, column = {"tags": [json.dumps({"env": text})]}, "tags"
    else:
        cells, column = {"name": [f"snap-{text}"]}, "name"
    frame = pd.DataFrame({"snapshot_id": [SID], **cells}, index=[7])
    found = refused(frame)
    assert len(found) == 1 and found[0].startswith(f"row label 7, column {column!r}: ")
    if char not in " \t\n\r\v\f\x85":
        assert found[0].endswith(f"contains the control character U+{ord(char):04X}")


# --- DataFrames: index labels, numbers, objects that are not cells ------------------------------


def test_dataframe_problems_and_plan_rows_name_the_index_label():
    frame = pd.DataFrame(
        {
            "snapshot_id": [SID, "nope", SID],
            "op": ["set", "set", "set"],
            "key": ["env", "env", "env"],
            "value": ["prod", "x", "dev"],
        },
        index=[10, 20, 30],
    )
    assert refused(frame) == [
        "row label 20, column 'snapshot_id': snapshot_id 'nope' is not a uuid (8-4-4-4-12 hex"
        " digits)",
        f"row label 30, column 'key': conflicting writes to tag 'env' for snapshot {SID}: row"
        " label 10 sets 'prod', row label 30 sets 'dev'",
    ]
    frame = frame.drop(index=30).assign(snapshot_id=[SID, SID2])
    frame.index = ["first", "second"]
    assert [e.rows for e in read_plan(frame, **SCOPE)] == [["first"], ["second"]]


def test_a_problem_keeps_the_label_in_its_fields():
    frame = pd.DataFrame({"snapshot_id": ["nope"], "tag:a": ["b"]}, index=["x"])
    with pytest.raises(ManifestError) as caught:
        read_plan(frame, **SCOPE)
    problem = caught.value.details[0]
    assert (problem.row, problem.row_is_label, problem.line) == ("x", True, None)


def test_numbers_in_a_value_column_are_text_ints_exact_floats_shortest():
    frame = pd.DataFrame(
        {
            "snapshot_id": [SID, SID, SID, SID2],
            "op": "set",
            "key": ["a", "b", "c", "d"],
            "value": [1, 2.5, 3.0, 10**15 + 1],  # one object column: each value as typed
        }
    )
    with pytest.warns(UserWarning, match="column 'value' holds values that are not text"):
        assert tags_of(frame) == [{"a": "1", "b": "2.5", "c": "3"}, {"d": "1000000000000001"}]
    floats = frame.assign(value=[1, 2.5, 3, 4]).astype({"value": "float64"})
    with pytest.warns(UserWarning, match="row label 0: 1.0 is sent as '1'"):
        assert tags_of(floats) == [{"a": "1", "b": "2.5", "c": "3"}, {"d": "4"}]


@pytest.mark.parametrize("value", [[1, 2], {"a": 1}, b"bytes", (1,), np.array([1])])
def test_objects_that_are_not_cells_are_refused_naming_row_and_column(value):
    frame = pd.DataFrame(
        {"snapshot_id": [SID, SID2], "op": "set", "key": ["a", "b"], "value": ["ok", None]},
        index=[5, 6],
    )
    frame["value"] = pd.Series(["ok", value], index=[5, 6], dtype=object)
    assert refused(frame) == [
        f"row label 6, column 'value': value holds a {type(value).__name__}, not text or a number"
    ]


def test_a_report_passed_back_as_a_manifest_points_to_resume():
    report = pd.DataFrame(
        {"snapshot_id": [SID], "status": ["failed"], "http_status": [500], "attempts": [3]}
        | {c: [""] for c in ("error", "error_class", "request_id", "tags_before", "tags_after")}
    )
    expected = "this is a batchtag report (columns status, http_status, attempts, ...)"
    (python,) = refused(report)
    assert python.startswith(expected) and "pass the report with resume and" in python
    with cli_caller():
        (cli,) = refused(report)
    assert "pass the report with --resume and" in cli


def test_an_inventory_with_a_status_column_is_still_a_manifest():
    inventory = pd.DataFrame({"snapshot_id": [SID], "status": ["available"], "tag:env": ["x"]})
    plan = read_plan(inventory, **SCOPE)
    assert (plan.entries[0].tags, plan.entries[0].extra) == ({"env": "x"}, {"status": "available"})


def test_an_empty_dataframe_is_an_empty_plan():
    frame = pd.DataFrame({"snapshot_id": [], "project_id": [], "tags": []})  # float64 columns
    assert len(read_plan(frame, **SCOPE)) == 0


# --- Parquet tags: map and JSON text are fine, a struct is refused ------------------------------


def test_parquet_map_tags_are_read_with_their_own_keys(tmp_path):
    tags = pa.array([[("a", "1")], [("b", None)]], type=pa.map_(pa.string(), pa.string()))
    table = pa.table({"snapshot_id": [SID, SID2], "tags": tags})
    pq.write_table(table, tmp_path / "m.parquet")
    assert tags_of(tmp_path / "m.parquet") == [{"a": "1"}, {"b": None}]


def test_parquet_struct_tags_explain_the_null_fill_danger(tmp_path):
    pd.DataFrame({"snapshot_id": [SID, SID2], "tags": [{"a": "1"}, {"b": "2"}]}).to_parquet(
        tmp_path / "m.parquet"
    )
    (found,) = refused(tmp_path / "m.parquet")
    assert found.startswith("column 'tags': is a struct column")
    assert "the keys a row did not have come back as null, which here means 'delete" in found


# --- big files are read a chunk at a time: the chunks must not show ----------------------------

SIDS = [f"aaaaaaaa-0000-4000-8000-{n:012d}" for n in range(1, 8)]


def test_parquet_read_in_batches_is_the_same_plan_and_a_column_problem_is_named_once(
    tmp_path, monkeypatch
):
    path = tmp_path / "m.parquet"
    tickets = ["T-1", None, "T-2", "T-1", None, "T-3", "T-1"]
    table = pa.table({"snapshot_id": SIDS, "tag:env": ["prod"] * 7, "ticket": tickets})
    pq.write_table(table, path)
    whole = [(e.snapshot_id, e.tags, e.rows, e.extra) for e in read_plan(path, **SCOPE)]
    monkeypatch.setattr("batchtag.manifest._frames.BATCH_ROWS", 2)
    assert [(e.snapshot_id, e.tags, e.rows, e.extra) for e in read_plan(path, **SCOPE)] == whole
    assert whole[1][3] == {"ticket": ""}
    pq.write_table(table.append_column("region_id", pa.array([2.5] * 7)), path)
    (found,) = refused(path)
    assert found.startswith("column 'region_id': holds floating-point numbers")


def test_jsonl_read_in_chunks_keeps_columns_rows_and_lines(tmp_path, monkeypatch):
    records = [{"snapshot_id": sid, "tag:env": "prod"} for sid in SIDS]
    records[4]["ticket"] = "T-9"  # a column first seen in a later chunk
    lines = [json.dumps(r) for r in records]
    lines.insert(3, "")  # a blank line: not a row
    lines.insert(6, "{not json")
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(lines) + "\n")
    whole = refused(path)
    monkeypatch.setattr("batchtag.manifest._jsonl.CHUNK_ROWS", 2)
    assert (
        refused(path)
        == whole
        == ["row 6, line 7: invalid JSON: Expecting property name enclosed in double quotes"]
    )
    del lines[6]
    path.write_text("\n".join(lines) + "\n")
    plan = read_plan(path, **SCOPE)
    assert [e.extra for e in plan] == [{"ticket": "T-9" if i == 4 else ""} for i in range(7)]
    assert [e.rows for e in plan] == [[n] for n in range(1, 8)]


# --- empty_deletes: an edited export ------------------------------------------------------------


def test_empty_deletes_turns_empty_wide_cells_into_deletes(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(
        "snapshot_id,name,tag:env,tag:team,ro:created-by\n"
        f"{SID},snap-one,prod,,system\n"
        f"{SID2},,,<delete>,system\n"
    )
    assert tags_of(path) == [{"env": "prod"}, {"team": None}]
    plan = read_plan(path, empty_deletes=True, **SCOPE)
    assert [(e.tags, e.name) for e in plan] == [
        ({"env": "prod", "team": None}, "snap-one"),
        ({"env": None, "team": None}, None),  # an empty name is left alone
    ]
    assert plan.passthrough == ["ro:created-by"]


def test_empty_deletes_counts_na_in_a_dataframe_as_empty():
    frame = pd.DataFrame({"snapshot_id": [SID], "tag:env": [None], "tag:x": [np.nan]})
    assert tags_of(frame) == [{}]
    assert tags_of(frame, empty_deletes=True) == [{"env": None, "x": None}]


def test_a_dataframe_run_reports_index_labels_as_rows(sandbox, tmp_path):
    ids = sandbox.store.ids()[:2]
    frame = pd.DataFrame(
        {"snapshot_id": [ids[0], ids[1], ids[0]], "tag:env": ["a", "b", None]},
        index=["first", 20, "third"],
    )
    report = batchtag.apply(
        frame,
        base_url=sandbox.base_url,
        api_key=API_KEY,
        project_id=1,
        region_id=1,
        report=tmp_path / "r.csv",
    )
    assert [(r.snapshot_id, r.status, r.rows) for r in report.itertuples()] == [
        (ids[0], "ok", ["first", "third"]),
        (ids[1], "ok", [20]),
    ]
    written = pd.read_csv(tmp_path / "r.csv", dtype=str)["rows"].map(json.loads).tolist()
    assert written == [["first", "third"], [20]]


@pytest.mark.parametrize("indent", [None, 2])
def test_a_json_document_in_a_jsonl_file_is_named_as_such(tmp_path, indent):
    records = [{"snapshot_id": SID, "tags": {"a": "b"}}, {"snapshot_id": SID2, "tags": None}]
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(records, indent=indent) + "\n")
    if indent is None:  # one line: an array where an object should be
        assert refused(path) == ["row 1, line 1: a JSON Lines record must be an object"]
    else:
        assert refused(path) == [
            "line 1: the file is one JSON document, not JSON Lines (one object a line)"
        ]


def test_empty_columns_a_spreadsheet_adds_at_the_end_are_ignored_while_empty(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(f"{HEADER},,\n{SID},1,2,set,env,prod,,\n{SID2},1,2,set,env,dev,,\n")
    plan = read_plan(path, **SCOPE)
    assert ([e.tags for e in plan], plan.passthrough) == ([{"env": "prod"}, {"env": "dev"}], [])
    path.write_text(f"{HEADER},,\n{SID},1,2,set,env,prod,,\n{SID2},1,2,set,env,dev,,oops\n")
    assert refused(path) == [
        "row 2, line 3: header cell 8 is empty but this row has a value under it"
    ]
    path.write_text(f"snapshot_id,,tag:env\n{SID},,prod\n")  # not at the end: still refused
    assert refused(path) == ["line 1: header cell 2 is empty: every column needs a name"]


@settings(max_examples=40, deadline=None)
@given(
    blanks=st.lists(st.integers(min_value=0, max_value=3), min_size=4, max_size=4),
    newline=st.sampled_from(["\n", "\r\n"]),
    bad=st.integers(min_value=0, max_value=2),
)
def test_blank_lines_anywhere_keep_rows_and_lines_right(tmp_path_factory, blanks, newline, bad):
    """Blank lines (before the header too) are skipped: rows count data records only, and a
    problem names the line its record is really on."""
    rows = [f"{SID},1,2,set,k{i},{'bad value' if i == bad else 'v'}" for i in range(3)]
    lines: list[str] = []
    for count, line in zip(blanks, [HEADER, *rows], strict=True):
        lines += [""] * count + [line]
    path = tmp_path_factory.mktemp("blank") / "m.csv"
    path.write_bytes(newline.join(lines).encode())  # and no final newline
    line = lines.index(rows[bad]) + 1
    assert refused(path) == [
        f"row {bad + 1}, line {line}, column 'value': value 'bad value' contains whitespace"
    ]


def test_an_empty_json_lines_file_or_a_frame_without_columns_is_an_empty_plan(tmp_path):
    (tmp_path / "nothing.jsonl").write_text("")  # undo of a run that changed nothing
    assert len(read_plan(tmp_path / "nothing.jsonl", **SCOPE)) == 0
    assert len(read_plan(pd.DataFrame(), **SCOPE)) == 0
