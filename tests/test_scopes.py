"""Every region of a project (issue 24, item 4): --all-regions / --all-projects list the
scopes from the API (export, keys, enforce and a policy's [scope]; plan and apply find a
manifest's snapshots); a scope that fails is named, the others go on, exit 1."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers import API_KEY, SID, env_for, invoke, write_long_csv

import batchtag
from batchtag.record import read_report

PROJECTS, REGIONS = [1, 2], [1, 2, 3]


@pytest.fixture
def world(make_sandbox):
    """Two projects x three regions, 12 snapshots each; no GCORE_CLOUD_* scope in the env."""
    return make_sandbox(snapshots=12, project_ids=PROJECTS, region_ids=REGIONS)


def env(sandbox) -> dict[str, str]:
    values = env_for(sandbox)
    values.pop("GCORE_CLOUD_PROJECT_ID"), values.pop("GCORE_CLOUD_REGION_ID")
    return values


def ids_in(sandbox, scopes) -> set[str]:
    return {sid for p, r in scopes for sid in sandbox.store.ids(p, r)}


def cli(args: list[str], sandbox):
    from click.testing import CliRunner

    from batchtag.cli import main

    return CliRunner().invoke(main, args, env=env(sandbox))


def test_export_all_regions_of_a_project_lists_them_from_the_api(world, tmp_path):
    out = tmp_path / "p1.csv"
    result = cli(["export", "--project-id", "1", "--all-regions", "-o", str(out)], world)
    assert result.exit_code == 0, result.stderr
    frame = pd.read_csv(out, dtype=str)
    assert set(frame["snapshot_id"]) == ids_in(world, [(1, r) for r in REGIONS])
    assert set(frame["region_id"].astype(int)) == set(REGIONS)
    assert world.stats()["endpoints"]["region_list"] == 1
    everything = batchtag.export(all_projects=True, all_regions=True, **connection(world))
    assert set(everything["snapshot_id"]) == ids_in(
        world, [(p, r) for p in PROJECTS for r in REGIONS]
    )
    assert everything.attrs["export"]["scopes"] == [[p, r] for p in PROJECTS for r in REGIONS]


def connection(sandbox) -> dict:
    return {"base_url": sandbox.base_url, "api_key": API_KEY}


@pytest.mark.parametrize("status", [403, 404, 500])
def test_a_failing_scope_is_named_the_others_go_on_and_the_exit_code_is_1(
    make_sandbox, tmp_path, status
):
    sandbox = make_sandbox(
        snapshots=12, project_ids=[1], region_ids=REGIONS, fail_scopes=[f"1/2:{status}"]
    )
    out, summary = tmp_path / "inv.csv", tmp_path / "s.json"
    args = [
        "export",
        "--project-id",
        "1",
        "--all-regions",
        "-o",
        str(out),
        "--summary-json",
        str(summary),
    ]
    result = cli(args, sandbox)
    assert result.exit_code == 1, result.stderr
    assert set(pd.read_csv(out, dtype=str)["snapshot_id"]) == ids_in(sandbox, [(1, 1), (1, 3)])
    (line,) = [ln for ln in result.stderr.splitlines() if "scope 1/2" in ln]
    assert f"HTTP {status}" in line and "left out" in line
    assert "1 scope(s) could not be read" in result.stderr
    (failed,) = json.loads(summary.read_text())["failed_scopes"]
    assert (failed["project_id"], failed["region_id"]) == (1, 2) and f"HTTP {status}" in failed[
        "error"
    ]


def test_a_401_still_stops_everything_and_a_lone_scope_keeps_its_own_error(make_sandbox):
    sandbox = make_sandbox(snapshots=3, region_ids=[1, 2], api_key="the-right-key")
    wrong = cli(["export", "--project-id", "1", "--all-regions"], sandbox)  # env: API_KEY
    assert wrong.exit_code == 3 and "credentials rejected (HTTP 401" in wrong.stderr
    lone = make_sandbox(snapshots=3, fail_scopes=["1/1:404"])
    missing = cli(["export", "--project-id", "1", "--region-id", "1"], lone)
    assert missing.exit_code == 2 and "no such project/region" in missing.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--all-regions", "--region-id", "1", "--project-id", "1"],
            "--all-regions reads every region",
        ),
        (
            ["--all-projects", "--project-id", "1", "--region-id", "1"],
            "--all-projects reads every project",
        ),
        (["--all-regions", "--scopes", "s.csv"], "--scopes lists the scopes itself"),
        (["--all-regions"], "no scope: pass --project-id or set GCORE_CLOUD_PROJECT_ID"),
    ],
)
def test_contradicting_scope_options_are_refused_before_any_request(world, args, message):
    for command in ("export", "keys"):
        result = cli([command, *args], world)
        assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert world.stats()["total_requests"] == 0


def test_keys_cover_every_scope_listed_across_pages(make_sandbox):
    regions = list(range(1, 103))  # more regions than one page of the listing holds
    sandbox = make_sandbox(snapshots=1, region_ids=regions)
    frame = batchtag.keys(project_id=1, all_regions=True, **connection(sandbox))
    assert frame.attrs["keys"]["snapshots"] == len(regions)
    assert len(frame.attrs["keys"]["scopes"]) == len(regions)
    assert sandbox.stats()["endpoints"]["region_list"] == 2


POLICY = """
[scope]
project_id = 1
all_regions = true

[[rule]]
name = "audited"
where = "`tag:audited`.isna()"
set = { audited = "yes" }
"""


def test_enforce_with_all_regions_in_the_policy_fixes_every_region_but_the_failing_one(
    make_sandbox, tmp_path
):
    sandbox = make_sandbox(snapshots=10, region_ids=REGIONS, fail_scopes=["1/3:503"])
    policy = tmp_path / "p.toml"
    policy.write_text(POLICY)
    summary = tmp_path / "s.json"
    args = [
        "enforce",
        str(policy),
        "--report",
        str(tmp_path / "r.csv"),
        "--summary-json",
        str(summary),
    ]
    result = cli([*args, "--rate", "1000"], sandbox)
    assert result.exit_code == 1, result.stderr  # the run is partial
    audited = {
        (1, r): {s.tags.get("audited") for s in sandbox.store.snapshots(1, r)} for r in REGIONS
    }
    assert audited == {(1, 1): {"yes"}, (1, 2): {"yes"}, (1, 3): {None}}
    written = json.loads(summary.read_text())
    assert written["inventory"] == 20 and written["counts"]["ok"] == 20
    assert [(f["project_id"], f["region_id"]) for f in written["failed_scopes"]] == [(1, 3)]
    assert "scope 1/3 could not be read, left out: HTTP 503" in result.stdout
    again = cli(["enforce", str(policy), "--check"], sandbox)
    assert again.exit_code == 1  # an error beats "clean" for an alert job


def test_plan_and_apply_find_each_snapshot_of_a_manifest_without_a_region_column(world, tmp_path):
    picks = [world.store.ids(1, r)[0] for r in REGIONS]
    manifest = write_long_csv(
        tmp_path / "m.csv",
        [{"snapshot_id": sid, "op": "set", "key": "found", "value": "yes"} for sid in picks],
    )
    plan = cli(["plan", str(manifest), "--project-id", "1", "--all-regions"], world)
    assert plan.exit_code == 0 and "Plan: 3 to change" in plan.stdout, plan.stderr
    diff = batchtag.plan(
        pd.read_csv(manifest, dtype=str), project_id=1, all_regions=True, **connection(world)
    )
    assert dict(zip(diff["snapshot_id"], diff["region_id"], strict=True)) == dict(
        zip(picks, REGIONS, strict=True)
    )
    report = tmp_path / "r.csv"
    applied = cli(
        ["apply", str(manifest), "--project-id", "1", "--all-regions", "--report", str(report)],
        world,
    )
    assert applied.exit_code == 0, applied.stderr
    rows = read_report(report).set_index("snapshot_id")
    assert [int(rows.loc[sid, "region_id"]) for sid in picks] == REGIONS
    assert all(
        world.store.find(1, r, sid).tags["found"] == "yes"
        for sid, r in zip(picks, REGIONS, strict=True)
    )


def test_a_snapshot_found_nowhere_is_a_manifest_problem_naming_the_row(make_sandbox, tmp_path):
    sandbox = make_sandbox(snapshots=5, region_ids=REGIONS, fail_scopes=["1/2:403"])
    rows = [{"snapshot_id": sandbox.store.ids(1, 1)[0], "op": "set", "key": "k", "value": "v"}]
    rows.append({"snapshot_id": SID, "op": "set", "key": "k", "value": "v"})
    manifest = write_long_csv(tmp_path / "m.csv", rows)
    result = cli(["apply", str(manifest), "--project-id", "1", "--all-regions"], sandbox)
    assert result.exit_code == 2 and sandbox.stats()["requests"].get("PATCH", 0) == 0
    assert (
        f"row 2, line 3, column 'snapshot_id': snapshot {SID} is in none of the 2 scopes read"
        in result.stderr
    )
    assert "1/2 could not be read (HTTP 403" in result.stderr
    ok = write_long_csv(tmp_path / "ok.csv", rows[:1])
    partial = cli(
        [
            "apply",
            str(ok),
            "--project-id",
            "1",
            "--all-regions",
            "--report",
            str(tmp_path / "r.csv"),
        ],
        sandbox,
    )
    assert partial.exit_code == 1  # applied, but a scope could not be looked into
    assert "scope 1/2 could not be read, left out: HTTP 403" in partial.stdout
    assert set(read_report(tmp_path / "r.csv")["status"]) == {"ok"}


def test_a_manifest_with_the_column_is_refused_with_all_regions(world, tmp_path):
    manifest = write_long_csv(
        tmp_path / "m.csv",
        [{"snapshot_id": SID, "region_id": "1", "op": "set", "key": "k", "value": "v"}],
    )
    result = invoke(["plan", str(manifest), "--all-regions"], world)
    assert result.exit_code == 2 and "this manifest has a region_id column" in result.stderr
    assert world.stats()["total_requests"] == 0


def test_with_volume_a_failing_scope_is_left_out_once(make_sandbox, tmp_path):
    """The scope's volume listing fails too: one failure for the scope, the others joined."""
    sandbox = make_sandbox(snapshots=8, region_ids=REGIONS, fail_scopes=["1/3:404"])
    frame = batchtag.export(project_id=1, all_regions=True, with_volume=True, **connection(sandbox))
    summary = frame.attrs["export"]
    assert [(f["project_id"], f["region_id"]) for f in summary["failed_scopes"]] == [(1, 3)]
    assert summary["exit_code"] == 1 and summary["snapshots"] == len(frame) == 16
    assert set(frame["snapshot_id"]) == ids_in(sandbox, [(1, 1), (1, 2)])
    assert frame["volume_name"].notna().any()
