"""`batchtag validate` through the CLI, and apply's refusal of bad input before any request.

Messages of the bad-manifest corpus are checked at library level in test_manifest.py; here
the CLI side: exit codes, what lands on stdout/stderr, and that nothing is sent."""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import API_KEY, env_for, set_rows, write_long_csv

import batchtag
from batchtag import errors
from batchtag.cli import main
from batchtag.errors import ManifestError
from batchtag.sandbox import SandboxConfig, SandboxServer

CORPUS = Path(__file__).parent / "data" / "manifests"
BAD_INPUTS = sorted(p.name for p in CORPUS.iterdir()) + ["no-such-file.csv"]
IDS = [
    "2a698d8b-9d9a-40eb-981c-120fc2cf11b4",
    "fd56e04c-44df-4e29-b839-f852016f6305",
    "5b503252-87a8-49a1-80da-8d38fe28a0e8",
]
SCOPE_VARS = ("GCORE_CLOUD_PROJECT_ID", "GCORE_CLOUD_REGION_ID")
# no key, no scope, and a base URL where nothing listens: validate must not care
NO_NETWORK: dict[str, str | None] = {
    "GCORE_BASE_URL": "http://127.0.0.1:9",
    "GCORE_API_KEY": None,
    **dict.fromkeys(SCOPE_VARS),
}
FILE_TYPES = ["m.csv", "m.csv.gz", "m.parquet", "m.jsonl", "-"]


def validate(*args, env=None, stdin=None):
    return CliRunner().invoke(
        main, ["validate", *map(str, args)], env={**NO_NETWORK, **(env or {})}, input=stdin
    )


@pytest.fixture(autouse=True)
def cli_spelling():
    """Messages name options the CLI way (`--form`), as the CLI entry point sets them."""
    token = errors.CALLER.set("cli")
    yield
    errors.CALLER.reset(token)


@pytest.fixture(autouse=True)
def no_scope_env(monkeypatch):
    """`batchtag.validate(...)` in this process must not see a stray scope env var."""
    for var in SCOPE_VARS:
        monkeypatch.delenv(var, raising=False)


# --- good manifests: every form and file type ------------------------------------------


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


def wide_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "snapshot_id": IDS,
            "project_id": ["1", "1", "2"],
            "region_id": ["1", "1", "7"],
            "tag:env": ["prod", "", "<delete>"],  # the default marker
            "tag:team": ["", "data", ""],  # empty: leave alone
            "name": ["", "", "nightly-01"],
            "ticket": ["OPS-1", "OPS-2", "OPS-3"],
        }
    )


def json_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "snapshot_id": [IDS[0], IDS[1], IDS[1], IDS[2]],
            "project_id": ["1", "1", "1", "2"],
            "region_id": ["1", "1", "1", "7"],
            "tags": ['{"env": "prod", "tmp": null}', "null", '{"team": "data"}', "{}"],
            "name": ["", "", "", "nightly-01"],
            "ticket": ["OPS-1", "OPS-2", "OPS-2", "OPS-3"],
        }
    )


# form -> (frame, rows, operations) ; every form: 3 snapshots in scopes (1,1)x2 and (2,7)x1
FORMS = {
    "long": (long_frame, 4, {"set": 2, "delete": 1, "name": 1}),
    "wide": (wide_frame, 3, {"set": 2, "delete": 1, "name": 1}),
    "json": (json_frame, 4, {"set": 2, "delete": 1, "clear": 1, "name": 1}),
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
    make, rows, operations = FORMS[form]
    csv_path = write(make(), tmp_path / "m.csv")
    if file_type == "-":
        text = csv_path.read_text()
        result, as_json = validate("-", stdin=text), validate("-", "--json", stdin=text)
        path = csv_path  # what the API reads for the comparison
    else:
        path = write(make(), tmp_path / file_type)
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
    assert out.splitlines()[-1] == "passthrough columns: ticket"
    assert result.stderr == ""

    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data == batchtag.validate(path)
    assert data["form"] == form and data["rows"] == rows and data["snapshots"] == 3
    assert {k: n for k, n in data["operations"].items() if n} == operations
    assert data["scopes"] == SCOPES


def test_json_form_clear_plus_set_is_flagged_as_needing_current_tags(tmp_path):
    result = validate(write(json_frame(), tmp_path / "m.csv"))
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
    assert json.loads(as_json.stdout) == expected


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
    path = write(long_frame(), tmp_path / "m.csv")
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
    path = write(long_frame(), tmp_path / "m.csv")
    env = {"GCORE_CLOUD_PROJECT_ID": "8", "GCORE_CLOUD_REGION_ID": "8"}
    result = validate(path, "--json", "--project-id", "9", "--region-id", "9", env=env)
    assert scopes_of(result) == SCOPES


def test_scope_options_beat_env_and_env_is_the_fallback(tmp_path):
    path = write(long_frame().drop(columns=["project_id", "region_id"]), tmp_path / "m.csv")
    env = {"GCORE_CLOUD_PROJECT_ID": "5", "GCORE_CLOUD_REGION_ID": "6"}
    by_option = validate(path, "--json", "--project-id", "3", "--region-id", "4", env=env)
    assert scopes_of(by_option) == [{"project_id": 3, "region_id": 4, "snapshots": 3}]
    by_env = validate(path, "--json", env=env)
    assert scopes_of(by_env) == [{"project_id": 5, "region_id": 6, "snapshots": 3}]
    mixed = validate(path, "--json", "--region-id", "4", env=env)
    assert scopes_of(mixed) == [{"project_id": 5, "region_id": 4, "snapshots": 3}]


def test_blank_scope_cells_are_filled_from_the_option(tmp_path):
    frame = long_frame()
    frame.loc[3, ["project_id", "region_id"]] = ""
    path = write(frame, tmp_path / "m.csv")
    result = validate(path, "--json", "--project-id", "2", "--region-id", "7")
    assert scopes_of(result) == SCOPES


def test_missing_scope_is_exit_2_naming_column_option_and_env(tmp_path):
    path = write(long_frame().drop(columns=["project_id", "region_id"]), tmp_path / "m.csv")
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
    path = write(long_frame().drop(columns=["project_id", "region_id"]), tmp_path / "m.csv")
    result = validate(path, *args, env=env)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines()[1:] == [
        f"  column 'project_id': {named} is not a positive integer"
    ]


def test_a_non_integer_scope_option_is_a_usage_error(tmp_path):
    path = write(long_frame().drop(columns=["project_id", "region_id"]), tmp_path / "m.csv")
    result = validate(path, "--project-id", "x", "--region-id", "1")
    assert result.exit_code == 2 and result.stdout == ""
    assert "'x' is not a valid integer" in result.stderr


def test_a_report_given_as_manifest_points_to_the_resume_option():
    result = validate(CORPUS / "report.csv")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.endswith(
        "not a manifest: to finish an earlier run, pass the report with --resume and the"
        " original manifest\n"
    )


def test_a_semicolon_csv_is_exit_2_saying_use_a_comma():
    result = validate(CORPUS / "semicolons.csv")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines()[1].startswith(
        "  line 1: the file looks separated by semicolons, not commas: use a comma"
    )


# --- bad manifests -----------------------------------------------------------------------


def api_error(path: Path) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        batchtag.validate(path)
    return caught.value


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_is_exit_2_with_the_full_problem_list_on_stderr(name):
    result = validate(CORPUS / name)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not a crash
    assert result.stdout == ""
    assert result.stderr == f"error: {api_error(CORPUS / name)}\n"


def test_every_problem_is_listed_with_its_row_and_column(tmp_path):
    good = IDS[0]
    rows = [
        {"snapshot_id": "nope", "project_id": "1", "op": "set", "key": "a", "value": "b"},
        {"snapshot_id": IDS[1], "project_id": "0", "op": "set", "key": "a", "value": "b"},
        {"snapshot_id": good, "project_id": "1", "op": "upsert", "key": "a", "value": "b"},
        {"snapshot_id": good, "project_id": "1", "op": "set", "key": "my key", "value": "b"},
        {"snapshot_id": good, "project_id": "1", "op": "set", "key": "c", "value": ""},
        {"snapshot_id": good, "project_id": "1", "op": "name", "key": "", "value": "ab"},
        {"snapshot_id": good, "project_id": "1", "op": "set", "key": "env", "value": "prod"},
        {"snapshot_id": good, "project_id": "1", "op": "set", "key": "env", "value": "dev"},
    ]
    path = write_long_csv(tmp_path / "m.csv", rows)
    result = validate(path, "--region-id", "1")
    assert result.exit_code == 2
    expected = [
        (1, "snapshot_id"),
        (2, "project_id"),
        (3, "op"),
        (4, "key"),
        (5, "value"),
        (6, "value"),
        (8, "key"),  # the second, conflicting write
    ]
    assert result.stderr.startswith(f"error: manifest has {len(expected)} problems:\n")
    listed = result.stderr.splitlines()[1:]
    assert len(listed) == len(expected), result.stderr
    for line, (row, column) in zip(listed, expected, strict=True):
        assert line.startswith(f"  row {row}, line {row + 1}, column {column!r}: "), line


def test_a_long_problem_list_is_capped_with_a_count(tmp_path):
    rows = [{"snapshot_id": f"bad-{i}", "op": "set", "key": "k", "value": "v"} for i in range(80)]
    path = write_long_csv(tmp_path / "m.csv", rows)
    result = validate(path, "--project-id", "1", "--region-id", "1")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "error: manifest has 80 problems:"
    shown = [line for line in lines if line.startswith("  row ")]
    assert len(shown) == ManifestError.max_listed
    assert shown[0].startswith("  row 1, line 2, column 'snapshot_id'")
    assert shown[-1].startswith(f"  row {ManifestError.max_listed}, ")
    assert lines[-1] == f"  ... and {80 - ManifestError.max_listed} more problems"


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
    path = write(json_frame(), tmp_path / "m.csv")  # clear + set: apply would GET first
    closed = validate(path)  # NO_NETWORK: nothing on port 9, no API key
    assert closed.exit_code == 0, closed.output
    port = listener.getsockname()[1]
    env = {"GCORE_BASE_URL": f"http://127.0.0.1:{port}", "GCORE_API_KEY": API_KEY}
    listening = validate(path, env=env)
    assert listening.exit_code == 0, listening.output
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig()) as server:
        yield server


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_apply_refuses_every_bad_input_before_any_request(shared_sandbox, tmp_path, name):
    before = shared_sandbox.stats()["total_requests"]
    report = tmp_path / "r.csv"
    args = ["apply", str(CORPUS / name), "--base-url", shared_sandbox.base_url]
    args += ["--api-key", API_KEY, "--yes", "--report", str(report)]
    result = CliRunner().invoke(main, args, env=NO_NETWORK)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {api_error(CORPUS / name)}\n"
    assert shared_sandbox.stats()["total_requests"] == before
    assert not report.exists()


def test_apply_refuses_good_rows_mixed_with_one_bad_row(sandbox, tmp_path):
    rows = set_rows(sandbox.store.ids()[:3]) + [{"snapshot_id": "nope", "op": "set", "key": "a"}]
    path = write_long_csv(tmp_path / "m.csv", rows)
    report = tmp_path / "r.csv"
    args = ["apply", str(path), "--base-url", sandbox.base_url, "--api-key", API_KEY]
    args += ["--yes", "--report", str(report), "--project-id", "1", "--region-id", "1"]
    result = CliRunner().invoke(main, args, env=NO_NETWORK)
    assert result.exit_code == 2
    assert "row 4, line 5, column 'snapshot_id'" in result.stderr
    assert "row 4, line 5, column 'value': set needs a value" in result.stderr
    assert sandbox.stats()["total_requests"] == 0
    assert not report.exists()


def test_what_validate_accepts_apply_sends(sandbox, tmp_path):
    # one snapshot with a user tag to rename, another whose user tags are replaced
    tagged = [s for s in sandbox.store.snapshots() if set(s.tags) - s.read_only]
    renamed, replaced = tagged[0], tagged[1]
    old_key = sorted(set(renamed.tags) - renamed.read_only)[0]
    old_value = renamed.tags[old_key]
    rows = [
        {"snapshot_id": replaced.id, "op": "clear"},
        {"snapshot_id": replaced.id, "op": "set", "key": "team", "value": "storage"},
        {"snapshot_id": renamed.id, "op": "rename", "key": old_key, "value": "renamed-key"},
    ]
    path = write_long_csv(tmp_path / "m.csv", rows)
    scope_env = {"GCORE_CLOUD_PROJECT_ID": "1", "GCORE_CLOUD_REGION_ID": "1"}
    checked = validate(path, "--json", env=scope_env)
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["needs_current"] == 2

    args = ["apply", str(path), "--report", str(tmp_path / "r.csv"), "--yes"]
    result = CliRunner().invoke(main, args, env=env_for(sandbox))
    assert result.exit_code == 0, result.output
    replaced_after = sandbox.store.find(1, 1, replaced.id)
    assert set(replaced_after.tags) - replaced_after.read_only == {"team"}
    assert replaced_after.tags["team"] == "storage"
    after = sandbox.store.find(1, 1, renamed.id).tags
    assert after.get("renamed-key") == old_value and old_key not in after
