"""`batchtag validate` through the CLI on good manifests: the summary of every form and file
type, the form and scope options, and no network. Refusals are in test_cli_refusals.py."""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from helpers import API_KEY
from manifest_helpers import CORPUS, cli_caller, validate

import batchtag
from batchtag.errors import CALLER

# every test twice: small CSV files read the short way, then the full way
pytestmark = pytest.mark.usefixtures("both_paths")

IDS = [
    "2a698d8b-9d9a-40eb-981c-120fc2cf11b4",
    "fd56e04c-44df-4e29-b839-f852016f6305",
    "5b503252-87a8-49a1-80da-8d38fe28a0e8",
]
FILE_TYPES = ["m.csv", "m.csv.gz", "m.parquet", "m.jsonl", "-"]


@pytest.fixture(autouse=True)
def cli_context(monkeypatch):
    with cli_caller(monkeypatch):
        yield


# --- good manifests: every form and file type ------------------------------------------


SCOPE_OF = [("1", "1"), ("1", "1"), ("2", "7")]  # (project_id, region_id) of IDS[0], [1], [2]


def scoped(snapshots: list[int], **columns: list[str]) -> pd.DataFrame:
    """A manifest frame with rows for IDS[i] (i in `snapshots`), each in its SCOPE_OF[i]."""
    return pd.DataFrame(
        {
            "snapshot_id": [IDS[i] for i in snapshots],
            "project_id": [SCOPE_OF[i][0] for i in snapshots],
            "region_id": [SCOPE_OF[i][1] for i in snapshots],
            **columns,
        }
    )


# form -> (rows' snapshots as IDS indexes, the form's own columns)
FRAMES = {
    "long": (
        [0, 0, 1, 2],
        {
            "op": ["set", "delete", "set", "name"],
            "key": ["env", "tmp", "team", ""],
            "value": ["prod", "", "data", "nightly-01"],
            "ticket": ["OPS-1", "OPS-1", "OPS-2", "OPS-3"],
        },
    ),
    "wide": (
        [0, 1, 2],
        {
            "tag:env": ["prod", "", "<delete>"],  # the default marker
            "tag:team": ["", "data", ""],  # empty: leave alone
            "name": ["", "", "nightly-01"],
            "ticket": ["OPS-1", "OPS-2", "OPS-3"],
        },
    ),
    "json": (
        [0, 1, 1, 2],
        {
            "tags": ['{"env": "prod", "tmp": null}', "null", '{"team": "data"}', "{}"],
            "name": ["", "", "", "nightly-01"],
            "ticket": ["OPS-1", "OPS-2", "OPS-2", "OPS-3"],
        },
    ),
}


def form_frame(form: str) -> pd.DataFrame:
    snapshots, columns = FRAMES[form]
    return scoped(snapshots, **columns)


# form -> (rows, operations) ; every form: 3 snapshots in scopes (1,1)x2 and (2,7)x1
FORMS = {
    "long": (4, {"set": 2, "delete": 1, "name": 1}),
    "wide": (3, {"set": 2, "delete": 1, "name": 1}),
    "json": (4, {"set": 2, "delete": 1, "clear": 1, "name": 1}),
}
SCOPES = [
    {"project_id": 1, "region_id": 1, "snapshots": 2},
    {"project_id": 2, "region_id": 7, "snapshots": 1},
]


def write(frame: pd.DataFrame, path: Path) -> Path:
    """The frame as the file type its name says; JSON Lines gets native JSON values
    (integer IDs, `tags` as an object or null), as a pipeline would write them."""
    name = path.name
    if name.endswith(".csv.gz"):
        with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
            frame.to_csv(fh, index=False)
    elif name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        with open(path, "w", encoding="utf-8") as fh:
            for record in frame.to_dict(orient="records"):
                for column in ("project_id", "region_id"):
                    if column in record:
                        record[column] = int(record[column])
                if "tags" in record:
                    record["tags"] = json.loads(record["tags"])
                fh.write(json.dumps(record) + "\n")
    return path


@pytest.mark.parametrize("file_type", FILE_TYPES)
@pytest.mark.parametrize("form", sorted(FORMS))
def test_validate_summarises_each_form_and_file_type(tmp_path, form, file_type):
    rows, operations = FORMS[form]
    csv_path = write(form_frame(form), tmp_path / "m.csv")
    if file_type == "-":
        text = csv_path.read_text()
        result, as_json = validate("-", stdin=text), validate("-", "--json", stdin=text)
        path = csv_path  # what the API reads for the comparison
    else:
        path = write(form_frame(form), tmp_path / file_type)
        result, as_json = validate(path), validate(path, "--json")

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"manifest OK ({form} form): {rows} rows, 3 snapshots" in out
    ops_line = next(line for line in out.splitlines() if line.startswith("operations:"))
    assert sorted(ops_line.removeprefix("operations:").strip().split(", ")) == sorted(
        f"{kind} {n}" for kind, n in operations.items()
    )
    assert "scope project 1 region 1: 2 snapshots" in out
    assert "scope project 2 region 7: 1 snapshots" in out
    assert "passthrough columns: ticket" in out.splitlines()[-2:]
    assert result.stderr == ""

    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data == batchtag.validate(path).summary
    assert data["form"] == form and data["rows"] == rows and data["snapshots"] == 3
    assert {k: n for k, n in data["operations"].items() if n} == operations
    assert data["scopes"] == SCOPES


def test_json_form_clear_plus_set_is_flagged_as_needing_current_tags(tmp_path):
    result = validate(write(form_frame("json"), tmp_path / "m.csv"))
    assert result.exit_code == 0, result.output
    assert "1 snapshots need their current tags read first" in result.stdout


def test_delete_marker_option_changes_what_deletes(tmp_path):
    frame = pd.DataFrame(
        {"snapshot_id": IDS[:2], "tag:env": ["prod", "DROP"], "tag:team": ["<delete>"] * 2}
    )
    path = write(frame, tmp_path / "wide.csv")
    scope = ["--project-id", "1", "--region-id", "1"]
    default = validate(path, *scope)
    assert default.exit_code == 0, default.output
    assert "operations: set 2, delete 2" in default.stdout
    custom = validate(path, "--delete-marker", "DROP", *scope)
    assert custom.exit_code == 0, custom.output
    # DROP now deletes env; "<delete>" is an ordinary value that sets team
    assert "operations: set 3, delete 1" in custom.stdout
    as_json = validate(path, "--json", "--delete-marker", "DROP", *scope)
    expected = batchtag.validate(path, delete_marker="DROP", project_id=1, region_id=1)
    assert json.loads(as_json.stdout) == expected.summary


def test_form_option_forces_the_form():
    ambiguous = CORPUS / "ambiguous_form.csv"
    refused = validate(ambiguous)
    assert refused.exit_code == 2
    assert refused.stderr.endswith("forms; choose one: --form long or --form json\n")
    as_long = validate(ambiguous, "--form", "long", "--json")
    assert as_long.exit_code == 0, as_long.output
    data = json.loads(as_long.stdout)
    assert data["form"] == "long" and data["passthrough"] == ["tags"]
    as_json = validate(ambiguous, "--form", "json")
    assert as_json.exit_code == 0, as_json.output
    assert "manifest OK (json form)" in as_json.stdout and "op, key, value" in as_json.stdout


def test_form_option_naming_a_form_without_its_columns_is_exit_2(tmp_path):
    path = write(form_frame("long"), tmp_path / "m.csv")
    result = validate(path, "--form", "json")
    assert result.exit_code == 2
    assert "column 'tags': missing required column" in result.stderr
    bad_choice = validate(path, "--form", "yaml")
    assert bad_choice.exit_code == 2
    assert "Invalid value for '--form': 'yaml' is not one of" in bad_choice.stderr


# --- project and region: columns, else options, else env ---------------------------------


def scopes_of(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["scopes"]


def test_scope_columns_beat_options_and_env(tmp_path):
    path = write(form_frame("long"), tmp_path / "m.csv")
    env = {"GCORE_CLOUD_PROJECT_ID": "8", "GCORE_CLOUD_REGION_ID": "8"}
    result = validate(path, "--json", "--project-id", "9", "--region-id", "9", env=env)
    assert scopes_of(result) == SCOPES


def test_scope_options_beat_env_and_env_is_the_fallback(tmp_path):
    path = write(form_frame("long").drop(columns=["project_id", "region_id"]), tmp_path / "m.csv")
    env = {"GCORE_CLOUD_PROJECT_ID": "5", "GCORE_CLOUD_REGION_ID": "6"}
    by_option = validate(path, "--json", "--project-id", "3", "--region-id", "4", env=env)
    assert scopes_of(by_option) == [{"project_id": 3, "region_id": 4, "snapshots": 3}]
    by_env = validate(path, "--json", env=env)
    assert scopes_of(by_env) == [{"project_id": 5, "region_id": 6, "snapshots": 3}]
    mixed = validate(path, "--json", "--region-id", "4", env=env)
    assert scopes_of(mixed) == [{"project_id": 5, "region_id": 4, "snapshots": 3}]


def test_blank_scope_cells_are_filled_from_the_option(tmp_path):
    frame = form_frame("long")
    frame.loc[3, ["project_id", "region_id"]] = ""
    path = write(frame, tmp_path / "m.csv")
    result = validate(path, "--json", "--project-id", "2", "--region-id", "7")
    assert scopes_of(result) == SCOPES


def test_missing_scope_is_exit_2_naming_column_option_and_env(tmp_path):
    path = write(form_frame("long").drop(columns=["project_id", "region_id"]), tmp_path / "m.csv")
    result = validate(path)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines()[1:] == [
        "  column 'project_id': missing: give a project_id column, pass --project-id, or set"
        " GCORE_CLOUD_PROJECT_ID",
        "  column 'region_id': missing: give a region_id column, pass --region-id, or set"
        " GCORE_CLOUD_REGION_ID",
    ]


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--project-id", "0", "--region-id", "1"], {}, "--project-id 0"),
        (["--region-id", "1"], {"GCORE_CLOUD_PROJECT_ID": "abc"}, "GCORE_CLOUD_PROJECT_ID='abc'"),
    ],
)
def test_bad_scope_option_or_env_is_exit_2(tmp_path, args, env, named):
    path = write(form_frame("long").drop(columns=["project_id", "region_id"]), tmp_path / "m.csv")
    result = validate(path, *args, env=env)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines()[1:] == [
        f"  column 'project_id': {named} is not a positive integer"
    ]


def test_a_non_integer_scope_option_is_a_usage_error(tmp_path):
    path = write(form_frame("long").drop(columns=["project_id", "region_id"]), tmp_path / "m.csv")
    result = validate(path, "--project-id", "x", "--region-id", "1")
    assert result.exit_code == 2 and result.stdout == ""
    assert "'x' is not a valid integer" in result.stderr


# --- no network --------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port that accepts connections, to catch any attempt to reach the API."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def test_validate_never_touches_the_network(tmp_path, listener):
    path = write(form_frame("json"), tmp_path / "m.csv")  # clear + set: apply would GET first
    closed = validate(path)  # NO_NETWORK: nothing on port 9, no API key
    assert closed.exit_code == 0, closed.output
    port = listener.getsockname()[1]
    env = {"GCORE_BASE_URL": f"http://127.0.0.1:{port}", "GCORE_API_KEY": API_KEY}
    listening = validate(path, env=env)
    assert listening.exit_code == 0, listening.output
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected


@pytest.mark.parametrize("form", ["long", "json"])
def test_empty_deletes_on_a_long_or_json_manifest_is_a_usage_error(tmp_path, form):
    if form == "long":
        frame = pd.DataFrame({"snapshot_id": IDS[:1], "op": ["set"], "key": ["a"], "value": ["b"]})
    else:
        frame = pd.DataFrame({"snapshot_id": IDS[:1], "tags": ['{"a": "b"}']})
    path = write(frame, tmp_path / "m.csv")
    result = validate(path, "--empty-deletes", "--project-id", "1", "--region-id", "1")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: --empty-deletes applies to the wide form only; this manifest is in the {form} form"
    )
    token = CALLER.set("python")  # this module's fixture spells options the CLI way
    try:
        with pytest.raises(batchtag.UsageError, match=r"^empty_deletes=True applies to the wide"):
            batchtag.validate(path, empty_deletes=True, project_id=1, region_id=1)
    finally:
        CALLER.reset(token)


def test_policy_error_is_exported_at_top_level():
    from batchtag.policy import PolicyError

    assert batchtag.PolicyError is PolicyError and "PolicyError" in dir(batchtag)
    assert issubclass(batchtag.PolicyError, batchtag.UsageError)
