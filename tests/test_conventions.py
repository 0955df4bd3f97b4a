"""Conventions (issue 24, item 6): NO_COLOR and --color/--no-color on every command, `-` as
stdout for every output option, and a confirmation prompt that names the API host, the
scopes and the number of snapshots that will change."""

from __future__ import annotations

import csv
import importlib
import io
import json

import pytest
from click.testing import CliRunner
from helpers import env_for, invoke, set_rows, write_long_csv

from batchtag.cli import COMMANDS, main
from batchtag.logs import color_choice

ANSI = "\x1b["
apply_module = importlib.import_module("batchtag.cli.apply")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_color_and_no_color(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "--color / --no-color" in result.output


@pytest.fixture
def changes(sandbox, tmp_path):
    ids = sandbox.store.ids()[:3]
    return write_long_csv(tmp_path / "m.csv", set_rows(ids, "colour", "blue"))


def plan_output(sandbox, manifest, *flags: str, **env: str) -> str:
    """The printed plan as a terminal would get it (click strips nothing it need not)."""
    result = CliRunner().invoke(
        main, ["plan", str(manifest), *flags], env={**env_for(sandbox), **env}, color=True
    )
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_no_color_is_honoured_and_the_options_win_over_it(sandbox, changes):
    assert ANSI in plan_output(sandbox, changes)  # a terminal: colour
    assert ANSI not in plan_output(sandbox, changes, NO_COLOR="1")
    assert ANSI in plan_output(sandbox, changes, "--color", NO_COLOR="1")
    assert ANSI not in plan_output(sandbox, changes, "--no-color")
    assert ANSI in plan_output(sandbox, changes, NO_COLOR="")  # empty: not set
    piped = invoke(["plan", str(changes), "--color"], sandbox)  # not a terminal, asked for
    assert ANSI in piped.stdout
    assert color_choice(None, {"NO_COLOR": "1"}) is False and color_choice(None, {}) is None


def test_dash_is_stdout_for_every_output_option(sandbox, changes, tmp_path):
    plan = invoke(["plan", str(changes), "-o", "-"], sandbox)
    assert plan.exit_code == 0
    assert plan.stdout.splitlines()[0].startswith("project_id,region_id,snapshot_id,verdict")
    assert len(plan.stdout.splitlines()) == 4 and "Plan: 3 to change" in plan.stderr
    report = tmp_path / "r.csv"
    applied = invoke(
        ["apply", str(changes), "--report", str(report), "--summary-json", "-"], sandbox
    )
    (line,) = applied.stdout.splitlines()
    assert json.loads(line)["counts"]["ok"] == 3 and "exit code 0" in applied.stderr
    undo = invoke(["undo", str(report), "-o", "-"], sandbox)
    rows = list(csv.DictReader(io.StringIO(undo.stdout)))  # the change file, as CSV
    assert len(rows) == 3 and {(r["key"], r["change"], r["new"]) for r in rows} == {
        ("colour", "remove", "")
    }
    assert "written to stdout" in undo.stderr
    export = invoke(["export", "-o", "-", "--columns", "snapshot_id,tag:colour"], sandbox)
    assert export.stdout.splitlines()[0] == '"snapshot_id","tag:colour"'  # pyarrow's CSV
    assert len(export.stdout.splitlines()) == 201
    both = invoke(["export", "--summary-json", "-"], sandbox)
    assert both.exit_code == 2 and "only one output can go to stdout" in both.stderr
    assert not (tmp_path / "-").exists()


def test_the_prompt_names_the_api_host_the_scopes_and_how_many_will_change(
    sandbox, changes, tmp_path, monkeypatch
):
    monkeypatch.setattr(apply_module, "CONFIRM_ABOVE", 2)
    monkeypatch.setattr(apply_module, "interactive", lambda: True)
    args = ["apply", str(changes), "--report", str(tmp_path / "r.csv")]
    declined = CliRunner().invoke(main, args, input="n\n", env=env_for(sandbox))
    host = sandbox.base_url.split("://", 1)[1]
    assert f"This will change 3 snapshots on {host} (project 1 region 1). Continue?" in (
        declined.output
    )
    assert declined.exit_code == 3 and sandbox.stats()["total_requests"] == 0
