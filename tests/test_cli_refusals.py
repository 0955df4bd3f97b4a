"""What `validate` and `apply` refuse: exit 2, every problem on stderr, nothing sent.

Messages of the bad-manifest corpus are checked at library level in test_manifest.py; here
the CLI side: exit codes, what lands on stdout/stderr, and that no request is sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import API_KEY, env_for, set_rows, write_long_csv
from manifest_helpers import CORPUS, NO_NETWORK, cli_caller, validate

import batchtag
from batchtag.cli import main
from batchtag.errors import ManifestError
from batchtag.sandbox import SandboxConfig, SandboxServer

# every test twice: small CSV files read the short way, then the full way
pytestmark = pytest.mark.usefixtures("both_paths")

BAD_INPUTS = sorted(p.name for p in CORPUS.iterdir()) + ["no-such-file.csv"]
IDS = [
    "2a698d8b-9d9a-40eb-981c-120fc2cf11b4",
    "fd56e04c-44df-4e29-b839-f852016f6305",
]


@pytest.fixture(autouse=True)
def cli_context(monkeypatch):
    with cli_caller(monkeypatch):
        yield


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


@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
def test_a_header_with_an_unclosed_quote_is_exit_2_naming_the_line(sandbox, tmp_path, command):
    """The csv module reads the rest of the file into the quoted header cell: this used to
    be a manifest of 0 snapshots, applied with exit 0."""
    path = tmp_path / "m.csv"
    path.write_text(f'snapshot_id,op,key,"value\n{IDS[0]},set,env,prod\n{IDS[1]},set,env,dev\n')
    args = [command, str(path), "--project-id", "1", "--region-id", "1"]
    if command == "apply":
        args += ["--yes", "--report", str(tmp_path / "r.csv")]
    result = CliRunner().invoke(main, args, env=env_for(sandbox))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines()[1].startswith(
        '  line 1: header cell 4 ("value) opens a quote that is never closed'
    )
    assert sandbox.stats()["total_requests"] == 0
    assert not (tmp_path / "r.csv").exists()


# --- bad manifests -----------------------------------------------------------------------


def api_error(path: Path) -> ManifestError:
    """The error the Python API gives for the manifest (`validate()` holds it)."""
    checked = batchtag.validate(path)
    assert not checked.ok
    with pytest.raises(ManifestError) as caught:
        checked.raise_for_problems()
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
