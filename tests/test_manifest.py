"""Loading manifests and rejecting bad ones: every problem with its row, line and column."""

from __future__ import annotations

import gzip
import io
import sys

import numpy as np
import pandas as pd
import pytest
from manifest_helpers import CORPUS, NO_ENV, SID, SID2, problems_of

from batchtag.manifest import read_plan

# every test twice: small CSV files read the short way, then the full way
pytestmark = pytest.mark.usefixtures("both_paths")

BIG = 9_007_199_254_740_993  # 2**53 + 1: a float cannot hold it

# file -> expected rendering of its single problem (row, line and column included)
EXPECTED = {
    "bad_uuid.csv": "row 1, line 2, column 'snapshot_id': snapshot_id 'not-a-uuid' is not a uuid",
    "zero_project.csv": "row 1, line 2, column 'project_id': project_id '0' is not a positive",
    "float_region.csv": "row 1, line 2, column 'region_id': region_id '2.5' is not a positive",
    "unknown_op.csv": "row 1, line 2, column 'op': unknown op 'upsert'",
    "set_without_value.csv": "row 1, line 2, column 'value': set needs a value",
    "key_with_space.csv": "row 1, line 2, column 'key': key 'my key' contains whitespace",
    "value_with_equals.csv": "row 1, line 2, column 'value': value 'a=b' contains '='",
    "long_key.csv": "row 1, line 2, column 'key': key is 256 characters long; the limit is 255",
    "delete_with_value.csv": "row 1, line 2, column 'value': delete takes no value (got 'prod')",
    "clear_with_key.csv": "row 1, line 2, column 'key': clear takes no key (got 'env')",
    "short_name.csv": "row 1, line 2, column 'value': name 'ab' is 2 characters long",
    "rename_without_target.csv": "row 1, line 2, column 'value': rename needs the new key",
    "rename_bad_target.csv": "row 1, line 2, column 'value': new key 'new key' contains whitespace",
    "conflict_set.csv": "row 2, line 3, column 'key': conflicting writes to tag 'env' for snapshot"
    f" {SID}: row 1 sets 'prod', row 2 sets 'dev'",
    "conflict_rename.csv": "row 2, line 3, column 'key': conflicting writes to tag 'b'",
    "conflict_name.csv": "row 2, line 3, column 'value': conflicting names",
    "missing_snapshot_id.csv": "column 'snapshot_id': missing required column",
    "ambiguous_form.csv": "ambiguous manifest form: it has columns of the long and json forms;"
    " choose one: form='long' or form='json'",
    "no_form.csv": "cannot tell the manifest form",
    "wide_conflict.csv": "row 2, line 3, column 'tag:env': conflicting writes to tag 'env'",
    "wide_bad_column.csv": "column 'tag:my key': column name: tag key 'my key' contains whitespace",
    "json_invalid.csv": "row 1, line 2, column 'tags': tags is not valid JSON",
    "json_not_object.csv": "row 1, line 2, column 'tags': tags must be a JSON object or null",
    "json_number_value.csv": "row 1, line 2, column 'tags': tag 'env': a value must be a string",
    "ragged.csv": "row 2, line 3: has 4 fields, the header has 6",
    "not_utf8.csv": "line 2: not valid UTF-8 text",
    "broken.jsonl": "row 2, line 2: invalid JSON",
    "manifest.txt": "unknown manifest type 'manifest.txt'",
    "semicolons.csv": "line 1: the file looks separated by semicolons, not commas: use a comma",
    "tabs.csv": "line 1: the file looks separated by tabs, not commas: use a comma",
    "utf16.csv": "the file looks like UTF-16 text: save the file as UTF-8",
    "control_character.csv": "row 1, line 2, column 'value': value 'a\\x1fb' contains the"
    " control character U+001F",
    "tags_twice.jsonl": "row 1, line 1: the key 'tags' appears twice in one object: which one"
    " is meant is ambiguous",
    "report.csv": "this is a batchtag report (columns status, http_status, attempts, ...), not a"
    " manifest: to finish an earlier run, pass the report with resume and the original manifest",
    "rename_to_itself.csv": "row 2, line 3, column 'value': renames 'env' to itself",
    "unclosed_quote.csv": 'line 1: header cell 6 ("value) opens a quote that is never closed',
    "scientific_project.csv": "row 1, line 2, column 'project_id': project_id '1.23457E+11' is"
    " not a positive integer (scientific notation, as a spreadsheet shows long numbers: format"
    " the column as text)",
}


def test_corpus_covers_every_file():
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted([*EXPECTED, "missing_region.csv"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_manifest_is_reported(name):
    found = problems_of(CORPUS / name)
    assert len(found) == 1, found
    assert found[0].startswith(EXPECTED[name]), found[0]


def test_missing_scope_names_column_option_and_env():
    found = problems_of(CORPUS / "missing_region.csv")
    assert found == [
        "column 'project_id': missing: give a project_id column, pass project_id, or set"
        " GCORE_CLOUD_PROJECT_ID",
        "column 'region_id': missing: give a region_id column, pass region_id, or set"
        " GCORE_CLOUD_REGION_ID",
    ]


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        "snapshot_id,project_id,region_id,op,key,value\n"
        f"{SID},1,2,set,env,prod\n"
        "nope,x,2,set,a b,\n"
        f"{SID2},1,2,frobnicate,,\n"
        f"{SID},1,2,set,env,dev\n"
    )
    found = problems_of(path)
    assert found == [
        "row 2, line 3, column 'snapshot_id': snapshot_id 'nope' is not a uuid"
        " (8-4-4-4-12 hex digits)",
        "row 2, line 3, column 'project_id': project_id 'x' is not a positive integer",
        "row 2, line 3, column 'key': key 'a b' contains whitespace",
        "row 2, line 3, column 'value': set needs a value",
        "row 3, line 4, column 'op': unknown op 'frobnicate': use set, delete, clear, rename"
        " or name",
        f"row 4, line 5, column 'key': conflicting writes to tag 'env' for snapshot {SID}:"
        " row 1 sets 'prod', row 4 sets 'dev'",
    ]


def test_line_numbers_follow_quoted_newlines_and_blank_lines(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        "snapshot_id,project_id,region_id,op,key,value,note\n"
        f'{SID},1,2,set,env,prod,"two\nlines"\n'
        "\n"
        f"{SID2},1,2,set,env,bad value,\n"
    )
    assert problems_of(path) == [
        "row 2, line 5, column 'value': value 'bad value' contains whitespace"
    ]


def test_ragged_rows_are_all_listed_with_their_lines(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        "snapshot_id,project_id,region_id,op,key,value\n"
        f"{SID},1,2,set,env\n"
        f"{SID},1,2,set,env,prod\n"
        f"{SID2},1,2,set,env,prod,extra\n"
        f"{SID2},1,2,set,k,bad value\n"
    )
    assert problems_of(path) == [
        "row 1, line 2: has 5 fields, the header has 6",
        "row 3, line 4: has 7 fields, the header has 6",
        "row 4, line 5, column 'value': value 'bad value' contains whitespace",
    ]


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "m.csv"
    text = f"snapshot_id,project_id,region_id,op,key,value\n{SID},1,2,set,env,prod\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    plan = read_plan(path, env=NO_ENV)
    assert [e.as_json()["tags"] for e in plan] == [{"env": "prod"}]


def test_missing_file_and_directory_are_manifest_errors(tmp_path):
    assert problems_of(tmp_path / "nope.csv") == [
        f"manifest file {str(tmp_path / 'nope.csv')!r} does not exist"
    ]
    assert problems_of(tmp_path) == [f"manifest file {str(tmp_path)!r} is a directory"]


def test_empty_file_is_a_manifest_error(tmp_path):
    (tmp_path / "m.csv").write_text("")
    expected = [f"line 1: {tmp_path / 'm.csv'} is empty: a manifest needs a header row"]
    assert problems_of(tmp_path / "m.csv") == expected
    (tmp_path / "m.csv").write_text("\n\r\n\n")  # blank lines only
    assert problems_of(tmp_path / "m.csv") == expected


def test_gzip_csv_is_read_and_a_broken_one_is_reported(tmp_path):
    text = f"snapshot_id,project_id,region_id,op,key,value\n{SID},1,2,set,env,prod\n"
    (tmp_path / "m.csv.gz").write_bytes(gzip.compress(text.encode()))
    assert read_plan(tmp_path / "m.csv.gz", env=NO_ENV).entries[0].tags == {"env": "prod"}
    (tmp_path / "bad.csv.gz").write_bytes(b"not gzip at all")
    assert problems_of(tmp_path / "bad.csv.gz")[0].startswith("cannot read")


def test_csv_from_stdin(monkeypatch):
    text = f"snapshot_id,project_id,region_id,op,key,value\n{SID.upper()},7,8,set,env,prod\n"
    fake = io.TextIOWrapper(io.BytesIO(text.encode()))
    monkeypatch.setattr(sys, "stdin", fake)
    plan = read_plan("-", env=NO_ENV)
    assert [e.key for e in plan] == [(7, 8, SID)]  # uuid normalised to lowercase


def test_scope_from_option_then_env(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(f"snapshot_id,region_id,op,key,value\n{SID},3,set,env,prod\n")
    assert read_plan(path, project_id=5, env={"GCORE_CLOUD_PROJECT_ID": "6"}).entries[0].key == (
        5,
        3,
        SID,
    )
    assert read_plan(path, env={"GCORE_CLOUD_PROJECT_ID": "6"}).entries[0].key == (6, 3, SID)
    assert problems_of(path, env={"GCORE_CLOUD_PROJECT_ID": "six"}) == [
        "column 'project_id': GCORE_CLOUD_PROJECT_ID='six' is not a positive integer"
    ]


def test_blank_id_cells_use_the_option_or_are_errors(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        f"snapshot_id,project_id,region_id,op,key,value\n{SID},{BIG},2,set,env,prod\n"
        f"{SID2},,2,set,env,prod\n"
    )
    plan = read_plan(path, project_id=4, env=NO_ENV)
    assert [e.project_id for e in plan] == [BIG, 4]
    assert problems_of(path) == [
        "row 2, line 3, column 'project_id': project_id is empty and there is no default:"
        " pass project_id or set GCORE_CLOUD_PROJECT_ID"
    ]


# --- big integer IDs: exact, or a clear error, never a rounded ID --------------------------


def _id_frame(project: pd.Series) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "snapshot_id": [SID, SID2],
            "project_id": project,
            "region_id": pd.Series([BIG + 2, BIG + 4], dtype="Int64"),
            "op": ["set", "set"],
            "key": ["env", "env"],
            "value": ["prod", "dev"],
        }
    )


def test_nullable_int64_ids_with_blanks_are_exact(tmp_path):
    frame = _id_frame(pd.Series([BIG, None], dtype="Int64"))
    found = problems_of(frame)
    assert found == [
        "row label 1, column 'project_id': project_id is empty and there is no default:"
        " pass project_id or set GCORE_CLOUD_PROJECT_ID"
    ]
    plan = read_plan(frame, project_id=1, env=NO_ENV)
    assert [(e.project_id, e.region_id) for e in plan] == [(BIG, BIG + 2), (1, BIG + 4)]
    frame.to_parquet(tmp_path / "m.parquet")
    plan = read_plan(tmp_path / "m.parquet", project_id=1, env=NO_ENV)
    assert [(e.project_id, e.region_id) for e in plan] == [(BIG, BIG + 2), (1, BIG + 4)]


def test_float_id_column_above_2_53_is_an_error_not_a_rounded_id(tmp_path):
    frame = _id_frame(pd.Series([float(BIG), np.nan]))  # what pandas does to int + blank
    found = problems_of(frame, project_id=1)
    assert found[0].startswith(
        "column 'project_id': holds floating-point numbers that are not exact integers"
    )
    frame.to_parquet(tmp_path / "m.parquet")
    assert problems_of(tmp_path / "m.parquet", project_id=1)[0] == found[0]


def test_float_id_column_with_small_whole_numbers_is_read(tmp_path):
    frame = _id_frame(pd.Series([12.0, np.nan]))
    plan = read_plan(frame, project_id=1, env=NO_ENV)
    assert [e.project_id for e in plan] == [12, 1]


def test_jsonl_big_integers_are_exact(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(
        f'{{"snapshot_id": "{SID}", "project_id": {BIG}, "region_id": 2, "op": "set",'
        ' "key": "env", "value": "prod"}\n'
    )
    assert read_plan(path, env=NO_ENV).entries[0].project_id == BIG


# --- forms -------------------------------------------------------------------------------


def test_form_option_forces_a_form_and_other_columns_pass_through():
    frame = pd.DataFrame(
        {"snapshot_id": [SID], "op": ["set"], "key": ["env"], "value": ["prod"], "tags": ["x"]}
    )
    plan = read_plan(frame, form="long", project_id=1, region_id=2, env=NO_ENV)
    assert plan.form == "long"
    assert plan.passthrough == ["tags"]
    assert plan.entries[0].extra == {"tags": "x"}
    assert problems_of(frame, form="yaml", project_id=1, region_id=2) == [
        "unknown form 'yaml': use form='long', form='wide' or form='json'"
    ]


def test_wide_form_marker_and_custom_marker():
    frame = pd.DataFrame(
        {
            "snapshot_id": [SID, SID2],
            "tag:env": ["prod", "<delete>"],
            "tag:old": [None, "DROP"],
            "name": ["", "new-name"],
        }
    )
    plan = read_plan(frame, project_id=1, region_id=2, env=NO_ENV)
    assert [e.tags for e in plan] == [{"env": "prod"}, {"env": None, "old": "DROP"}]
    plan = read_plan(frame, delete_marker="DROP", project_id=1, region_id=2, env=NO_ENV)
    assert [e.tags for e in plan] == [{"env": "prod"}, {"env": "<delete>", "old": None}]
    assert plan.entries[1].name == "new-name"
    assert plan.form == "wide"


def test_json_form_null_clears_and_objects_merge():
    frame = pd.DataFrame(
        {
            "snapshot_id": [SID, SID, SID2],
            "tags": ["null", '{"a": "1", "b": null}', {"c": "3"}],
            "name": ["", "", "named"],
        }
    )
    plan = read_plan(frame, project_id=1, region_id=2, env=NO_ENV)
    first, second = plan.entries
    assert (first.clear, first.tags, first.needs_current) == (True, {"a": "1", "b": None}, True)
    assert (second.clear, second.tags, second.name) == (False, {"c": "3"}, "named")
    assert plan.form == "json"


def test_jsonl_null_tags_clear(tmp_path):
    path = tmp_path / "m.ndjson"
    path.write_text(
        f'{{"snapshot_id": "{SID}", "tags": null}}\n\n{{"snapshot_id": "{SID2}", "tags": {{"a": "b"}}}}\n'
    )
    plan = read_plan(path, project_id=1, region_id=2, env=NO_ENV)
    assert [(e.clear, e.tags, e.rows) for e in plan] == [(True, {}, [1]), (False, {"a": "b"}, [2])]


def test_parquet_struct_tags_column_is_refused(tmp_path):
    frame = pd.DataFrame({"snapshot_id": [SID, SID2], "tags": [{"a": "1"}, {"b": "2"}]})
    frame.to_parquet(tmp_path / "m.parquet")
    found = problems_of(tmp_path / "m.parquet", project_id=1, region_id=2)
    assert found[0].startswith("column 'tags': is a struct column")
    assert "come back as null, which here means 'delete this tag'" in found[0]
    assert len(found) == 1
