"""`batchtag validate` through the CLI, and apply's refusal of bad input before any request."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import env_for, set_rows, write_long_csv

import batchtag
from batchtag.cli import main

CORPUS = Path(__file__).parent / "data" / "manifests"
IDS = [
    "2a698d8b-9d9a-40eb-981c-120fc2cf11b4",
    "fd56e04c-44df-4e29-b839-f852016f6305",
    "5b503252-87a8-49a1-80da-8d38fe28a0e8",
]
NO_NETWORK = {"GCORE_BASE_URL": "http://127.0.0.1:9", "GCORE_API_KEY": ""}


def validate(*args, env=None, stdin=None):
    return CliRunner().invoke(
        main, ["validate", *map(str, args)], env=env or NO_NETWORK, input=stdin
    )


def long_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "snapshot_id": [IDS[0], IDS[0], IDS[1], IDS[2]],
            "project_id": ["1", "1", "1", "2"],
            "region_id": ["1", "1", "1", "7"],
            "op": ["set", "delete", "set", "name"],
            "key": ["env", "tmp", "team", ""],
            "value": ["prod", "", "data", "nightly-01"],
            "ticket": ["OPS-1", "OPS-1", "OPS-2", "OPS-3"],
        }
    )


def write(frame: pd.DataFrame, path: Path) -> Path:
    name = path.name
    if name.endswith(".csv.gz"):
        with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
            frame.to_csv(fh, index=False)
    elif name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


@pytest.mark.parametrize("name", ["m.csv", "m.csv.gz", "m.parquet", "m.jsonl"])
def test_validate_summarises_each_file_type_without_network(tmp_path, name):
    path = write(long_frame(), tmp_path / name)
    result = validate(path)
    assert result.exit_code == 0, result.output
    assert "4 rows, 3 snapshots" in result.output
    assert "set 2" in result.output and "delete 1" in result.output and "name 1" in result.output
    assert "project 1 region 1" in result.output and "project 2 region 7" in result.output
    as_json = validate(path, "--json")
    assert json.loads(as_json.output) == batchtag.validate(path)


def test_validate_reads_csv_from_stdin():
    result = validate("-", stdin=long_frame().to_csv(index=False))
    assert result.exit_code == 0 and "3 snapshots" in result.output


def test_wide_and_json_forms_with_marker_option(tmp_path):
    wide = pd.DataFrame(
        {"snapshot_id": IDS[:2], "tag:env": ["prod", "DROP"], "tag:team": ["", "data"]}
    )
    path = write(wide, tmp_path / "wide.csv")
    scope = ["--project-id", "1", "--region-id", "1"]
    data = json.loads(validate(path, "--json", "--delete-marker", "DROP", *scope).output)
    assert data["form"] == "wide" and data["operations"]["delete"] == 1
    tags = ['{"env": "prod", "tmp": null}', "null"]
    json_form = pd.DataFrame({"snapshot_id": IDS[:2], "tags": tags})
    data = json.loads(validate(write(json_form, tmp_path / "j.csv"), "--json", *scope).output)
    assert data["form"] == "json" and data["operations"]["clear"] == 1


def test_form_option_forces_the_form(tmp_path):
    path = write(long_frame(), tmp_path / "m.csv")
    result = validate(path, "--form", "json")
    assert result.exit_code == 2 and "column 'tags': missing required column" in result.stderr
    assert '"form": "long"' in validate(path, "--json", "--form", "long").output


def test_scope_from_options_then_env(tmp_path):
    frame = long_frame().drop(columns=["project_id", "region_id"])
    path = write(frame, tmp_path / "m.csv")
    missing = validate(path)
    assert missing.exit_code == 2 and "GCORE_CLOUD_PROJECT_ID" in missing.output
    by_option = json.loads(validate(path, "--json", "--project-id", "3", "--region-id", "4").output)
    assert by_option["scopes"] == [{"project_id": 3, "region_id": 4, "snapshots": 3}]
    env = {**NO_NETWORK, "GCORE_CLOUD_PROJECT_ID": "5", "GCORE_CLOUD_REGION_ID": "6"}
    by_env = json.loads(validate(path, "--json", env=env).output)
    assert by_env["scopes"] == [{"project_id": 5, "region_id": 6, "snapshots": 3}]


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("bad_uuid.csv", "column 'snapshot_id'"),
        ("unknown_op.csv", "column 'op'"),
        ("key_with_space.csv", "column 'key'"),
        ("short_name.csv", "column 'value'"),
        ("ragged.csv", "line "),
        ("not_utf8.csv", "UTF-8"),
    ],
)
def test_bad_manifests_exit_2_with_row_and_column(name, where):
    result = validate(CORPUS / name, "--project-id", "1", "--region-id", "1")
    assert result.exit_code == 2, result.output
    assert "manifest has" in result.stderr and where in result.stderr
    assert "Traceback" not in result.output


def test_every_problem_is_listed_once_capped_with_a_count(tmp_path):
    rows = [{"snapshot_id": f"bad-{i}", "op": "set", "key": "k", "value": "v"} for i in range(80)]
    path = write_long_csv(tmp_path / "m.csv", rows)
    result = validate(path, "--project-id", "1", "--region-id", "1")
    assert result.exit_code == 2
    assert "manifest has 80 problems" in result.stderr
    assert "row 1, line 2, column 'snapshot_id'" in result.stderr
    assert "... and 30 more problems" in result.stderr


def test_apply_refuses_a_bad_manifest_before_any_request(sandbox, tmp_path):
    rows = set_rows(sandbox.store.ids()[:3]) + [{"snapshot_id": "nope", "op": "set", "key": "a"}]
    path = write_long_csv(tmp_path / "m.csv", rows)
    args = ["apply", str(path), "--report", str(tmp_path / "r.csv"), "--yes"]
    result = CliRunner().invoke(main, args, env=env_for(sandbox))
    assert result.exit_code == 2 and "row 4" in result.stderr
    assert sandbox.stats()["total_requests"] == 0
    assert not (tmp_path / "r.csv").exists()


def test_what_validate_accepts_apply_sends(sandbox, tmp_path):
    # a snapshot with a user tag to rename, and another to replace all tags of
    tagged = [s for s in sandbox.store.snapshots() if set(s.tags) - s.read_only]
    renamed, replaced = tagged[0], tagged[1]
    old_key = sorted(set(renamed.tags) - renamed.read_only)[0]
    old_value = renamed.tags[old_key]
    ids = [replaced.id, renamed.id]
    rows = [
        {"snapshot_id": ids[0], "op": "clear"},
        {"snapshot_id": ids[0], "op": "set", "key": "team", "value": "storage"},
        {"snapshot_id": ids[1], "op": "rename", "key": old_key, "value": "renamed-key"},
    ]
    path = write_long_csv(tmp_path / "m.csv", rows)
    assert validate(path, env={**NO_NETWORK, **scope_env()}).exit_code == 0
    args = ["apply", str(path), "--report", str(tmp_path / "r.csv")]
    result = CliRunner().invoke(main, args, env=env_for(sandbox))
    assert result.exit_code == 0, result.output
    assert sandbox.store.find(1, 1, ids[0]).tags.keys() - {"team"} <= read_only(sandbox, ids[0])
    after = sandbox.store.find(1, 1, ids[1]).tags
    assert after.get("renamed-key") == old_value and old_key not in after


def scope_env() -> dict[str, str]:
    return {"GCORE_CLOUD_PROJECT_ID": "1", "GCORE_CLOUD_REGION_ID": "1"}


def read_only(sandbox, snapshot_id: str) -> set[str]:
    return set(sandbox.store.find(1, 1, snapshot_id).read_only)
