"""`batchtag plan` and `batchtag.plan()` against the sandbox: verdicts, exact diff rows, the
detailed exit code, the -o formats, colour only on a terminal, and no write ever sent."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import API_KEY, SID, closed_url, env_for, invoke, patches, write_long_csv

import batchtag
from batchtag.cli import main
from batchtag.record import CHANGE_COLUMNS, CHANGE_KINDS
from batchtag.tabular import read_table

RO_KEY = "created-by"
COMPARED = ["snapshot_id", "verdict", "field", "key", "change", "old", "new"]


def set_state(server, sid, tags, *, ro=None, name=None, task_id=None):
    """Put a snapshot into a known state (user tags, read-only tags, name, lock)."""
    snap = server.store.find(1, 1, sid)
    snap.tags = {**tags, **(ro or {})}
    snap.read_only = set(ro or {})
    snap.task_id = task_id
    if name is not None:
        snap.name = name
    return snap


@pytest.fixture
def mixed(make_sandbox, tmp_path):
    """A sandbox and a manifest with one snapshot per verdict and kind of change."""
    server = make_sandbox(snapshots=12)
    ids = server.store.ids()
    a, b, c, d, e, f = ids[:6]
    set_state(server, a, {"env": "dev"}, ro={RO_KEY: "gcore"}, name="db-a")
    set_state(server, b, {"env": "prod"})
    set_state(server, c, {}, task_id="task-1")
    set_state(server, d, {"owner": "ann", "env": "dev"})
    set_state(server, e, {"x": "1", "y": "2"})
    set_state(server, f, {"env": "prod"}, name="old-name")
    rows = [
        {"snapshot_id": a, "op": "set", "key": "env", "value": "prod"},  # change
        {"snapshot_id": b, "op": "set", "key": "env", "value": "prod"},  # noop
        {"snapshot_id": SID, "op": "set", "key": "env", "value": "prod"},  # not_found
        {"snapshot_id": c, "op": "set", "key": "env", "value": "prod"},  # locked
        {"snapshot_id": d, "op": "rename", "key": "owner", "value": "team"},  # rename
        {"snapshot_id": e, "op": "clear", "key": "", "value": ""},  # clear + set
        {"snapshot_id": e, "op": "set", "key": "y", "value": "3"},
        {"snapshot_id": f, "op": "name", "key": "", "value": "new-name"},  # name
    ]
    manifest = write_long_csv(tmp_path / "m.csv", rows)
    expected = [
        (a, "change", "tag", "env", "change", "dev", "prod"),
        (SID, "not_found", None, None, None, None, None),
        (c, "locked", "tag", "env", "add", None, "prod"),
        (d, "change", "tag", "owner", "remove", "ann", None),
        (d, "change", "tag", "team", "add", None, "ann"),
        (e, "change", "tag", "x", "remove", "1", None),
        (e, "change", "tag", "y", "change", "2", "3"),
        (f, "change", "name", None, "change", "old-name", "new-name"),
    ]
    return server, manifest, expected


def rows_of(records):
    return [tuple(r.get(c) for c in COMPARED) for r in records]


def test_python_plan_gives_every_verdict_with_exact_rows_and_sends_no_write(mixed):
    server, manifest, expected = mixed
    diff = batchtag.plan(
        manifest, base_url=server.base_url, api_key=API_KEY, project_id=1, region_id=1
    )
    assert list(diff.columns) == CHANGE_COLUMNS
    assert rows_of(diff.astype(object).where(diff.notna(), None).to_dict("records")) == expected
    summary = diff.attrs["summary"]
    assert summary["verdicts"] == {
        "change": 4,
        "noop": 1,
        "not_found": 1,
        "locked": 1,
        "conflict": 0,
    }
    assert summary["writes"] == 5
    assert summary["keys"]["env"] == {"add": 1, "remove": 0, "change": 1}
    assert patches(server) == 0
    assert server.store.find(1, 1, expected[0][0]).tags["env"] == "dev"


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_output_file_holds_the_full_diff_in_each_format(mixed, tmp_path, suffix):
    server, manifest, expected = mixed
    out = tmp_path / f"diff{suffix}"
    result = invoke(["plan", str(manifest), "-o", str(out), "--limit", "1"], server)
    assert result.exit_code == 1, result.output  # a snapshot is not found: an error
    columns, records = read_table(out, CHANGE_KINDS)
    assert columns == CHANGE_COLUMNS
    assert rows_of(records) == expected
    assert [r["rows"] for r in records][:2] == [[1], [3]]
    assert "... and 5 more snapshots" in result.output  # 6 with changes, 1 shown
    assert patches(server) == 0


def test_limit_0_prints_the_same_summary_and_still_writes_every_row(mixed, tmp_path):
    server, manifest, expected = mixed
    full = invoke(["plan", str(manifest)], server)
    bare = invoke(["plan", str(manifest), "--limit", "0"], server)
    assert bare.exit_code == full.exit_code == 1
    assert bare.output.strip() == full.output.split("\n\n")[0].strip()
    out = tmp_path / "diff.csv"
    written = invoke(["plan", str(manifest), "--limit", "0", "-o", str(out)], server)
    assert rows_of(read_table(out, CHANGE_KINDS)[1]) == expected
    assert f"change file written to {out} ({len(expected)} rows)" in written.output


def test_a_negative_limit_is_one_line_exit_2_before_any_request(mixed, tmp_path):
    server, manifest, _ = mixed
    before = server.stats()["total_requests"]
    result = invoke(["plan", str(manifest), "--limit", "-1", "-o", str(tmp_path / "d.csv")], server)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == ["error: --limit -1: give 0 or more snapshots to show"]
    assert result.stdout == ""
    assert server.stats()["total_requests"] == before and not (tmp_path / "d.csv").exists()


def test_an_existing_output_is_refused_unless_overwrite(mixed, tmp_path):
    """Like a report: -o never replaces a file silently (exit 2, one line, no request)."""
    server, manifest, expected = mixed
    out = tmp_path / "diff.csv"
    out.write_text("yesterday's diff\n")
    before = server.stats()["total_requests"]
    result = invoke(["plan", str(manifest), "-o", str(out)], server)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"error: --output {out} already exists: choose another --output, or pass --overwrite"
        " to replace it"
    ]
    assert server.stats()["total_requests"] == before
    assert out.read_text() == "yesterday's diff\n"
    python = {"base_url": server.base_url, "api_key": API_KEY, "project_id": 1, "region_id": 1}
    with pytest.raises(batchtag.UsageError, match=r"already exists: .* overwrite=True"):
        batchtag.plan(manifest, output=out, **python)
    assert server.stats()["total_requests"] == before
    assert invoke(["plan", str(manifest), "-o", str(out), "--overwrite"], server).exit_code == 1
    assert rows_of(read_table(out, CHANGE_KINDS)[1]) == expected
    diff = batchtag.plan(manifest, output=out, overwrite=True, **python)
    assert len(diff) == len(expected)


def test_printed_plan_is_plain_text_off_a_terminal_and_coloured_on_one(mixed):
    server, manifest, _ = mixed
    plain = invoke(["plan", str(manifest)], server)
    assert "Plan: 4 to change, 1 locked, 1 no-op, 1 not found (7 snapshots, 5 writes)" in (
        plain.output
    )
    assert "~ env: dev → prod" in plain.output
    assert "- owner (was ann)" in plain.output and "+ team=ann" in plain.output
    assert "~ name: old-name → new-name" in plain.output
    assert "\x1b[" not in plain.output
    coloured = CliRunner().invoke(main, ["plan", str(manifest)], env=env_for(server), color=True)
    assert "\x1b[" in coloured.output


def test_detailed_exitcode_is_0_unchanged_2_changes_1_errors(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=5)
    a, b = server.store.ids()[:2]
    set_state(server, a, {"env": "prod"})
    set_state(server, b, {"env": "dev"})

    def plan(rows, *flags):
        manifest = write_long_csv(tmp_path / "m.csv", rows)
        return invoke(["plan", str(manifest), *flags], server).exit_code

    same = [{"snapshot_id": a, "op": "set", "key": "env", "value": "prod"}]
    change = same + [{"snapshot_id": b, "op": "set", "key": "env", "value": "prod"}]
    missing = change + [{"snapshot_id": SID, "op": "delete", "key": "env", "value": ""}]
    assert plan(same, "--detailed-exitcode") == 0
    assert plan(change, "--detailed-exitcode") == 2
    assert plan(missing, "--detailed-exitcode") == 1
    assert plan(change) == 0  # without the flag, changes are not an error
    assert plan(missing) == 1
    # With the flag every error is 1, so 2 always means drift: a bad manifest, a bad option,
    # a missing key, an API that cannot be reached.
    bad = [{"snapshot_id": "nope", "op": "set", "key": "env", "value": "x"}]
    assert plan(bad) == 2 and plan(bad, "--detailed-exitcode") == 1
    assert plan(change, "--detailed-exitcode", "--limit", "lots") == 1
    manifest = str(write_long_csv(tmp_path / "m.csv", change))
    no_key = invoke(["plan", manifest, "--detailed-exitcode"], server, GCORE_API_KEY="")
    assert no_key.exit_code == 1 and "API key" in no_key.output
    away = ["plan", manifest, "--detailed-exitcode", "--retries", "0"]
    assert invoke(away, server, GCORE_BASE_URL=closed_url()).exit_code == 1
    assert patches(server) == 0


def test_a_few_snapshots_of_a_big_scope_are_read_by_get_with_the_same_rows(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=3500)  # 4 list pages: more requests than 2 GETs
    b = server.store.ids()[2000]
    set_state(server, b, {"env": "dev"}, ro={RO_KEY: "gcore"})
    rows = [
        {"snapshot_id": SID, "op": "set", "key": RO_KEY, "value": "me"},
        {"snapshot_id": b, "op": "set", "key": "env", "value": "prod"},
        {"snapshot_id": b, "op": "set", "key": RO_KEY, "value": "me"},
    ]
    out = tmp_path / "diff.csv"
    result = invoke(["plan", str(write_long_csv(tmp_path / "m.csv", rows)), "-o", str(out)], server)
    assert result.exit_code == 1, result.output
    assert rows_of(read_table(out, CHANGE_KINDS)[1]) == [
        (SID, "not_found", None, None, None, None, None),
        (b, "change", "tag", "env", "change", "dev", "prod"),
        (b, "change", "tag", RO_KEY, "read_only", "gcore", "me"),
    ]
    assert server.stats()["endpoints"] == {"list": 1, "get": 2}  # the first page gives the count


def test_bad_input_exits_2_before_any_request(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=3)
    manifest = write_long_csv(tmp_path / "m.csv", [{"snapshot_id": "nope", "op": "set"}])
    result = invoke(["plan", str(manifest)], server)
    assert result.exit_code == 2 and "error" in result.output
    good = write_long_csv(
        tmp_path / "g.csv", [{"snapshot_id": SID, "op": "set", "key": "k", "value": "v"}]
    )
    result = invoke(["plan", str(good), "-o", str(tmp_path / "diff.xlsx")], server)
    assert result.exit_code == 2 and "diff.xlsx" in result.output
    assert sum(server.stats()["requests"].values()) == 0


def test_plan_inside_a_running_loop_and_plan_async_agree(mixed):
    import asyncio

    server, manifest, expected = mixed
    kw = {"base_url": server.base_url, "api_key": API_KEY, "project_id": 1, "region_id": 1}

    async def notebook_cell():
        blocking = batchtag.plan(manifest, **kw)  # a running loop: it runs in a helper thread
        return blocking, await batchtag.plan_async(manifest, **kw)

    blocking, awaited = asyncio.run(notebook_cell())
    assert blocking.equals(awaited) and len(blocking) == len(expected)
    assert blocking.attrs["summary"]["verdicts"] == awaited.attrs["summary"]["verdicts"]


def test_an_unreachable_api_is_one_line_exit_3_and_abort_run_in_python(sandbox, tmp_path):
    manifest = write_long_csv(
        tmp_path / "m.csv", [{"snapshot_id": SID, "op": "set", "key": "a", "value": "b"}]
    )
    url = closed_url()
    result = invoke(["plan", str(manifest), "--retries", "0"], sandbox, GCORE_BASE_URL=url)
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot read the snapshots: ")
    assert f"Cannot connect to host {url[7:]}" in lines[0]
    with pytest.raises(batchtag.AbortRun, match="cannot read the snapshots") as info:
        batchtag.plan(manifest, project_id=1, region_id=1, base_url=url, api_key=API_KEY, retries=0)
    frames = [Path(f.filename).name for f in traceback.extract_tb(info.value.__traceback__)]
    assert frames == ["test_cli_plan.py", "_functions.py"]  # no internal frames
