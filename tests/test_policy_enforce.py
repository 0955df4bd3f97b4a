"""`enforce` against the sandbox: the sample policy fixes exactly the offending snapshots,
a second run sends nothing, conflicts and bad policies send nothing at all."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import API_KEY, env_for, invoke, patches, scope_of, tags_dict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_frames import inventory, rules_st, snapshot_st

import batchtag
from batchtag import enforce
from batchtag.cli import main
from batchtag.commands import EXIT_DRIFT, ApplyOptions, diff_inventory, scopes
from batchtag.config import Settings
from batchtag.diff import plan_exit_code
from batchtag.gcore import Client
from batchtag.inventory import ScopeChoice
from batchtag.manifest import read_plan
from batchtag.policy import PolicyError, evaluate, load_policy, parse_policy
from batchtag.record import EXIT_FAILED

SAMPLE = Path(__file__).parent.parent / "samples" / "cost-policy.toml"
RULE = "[[rule]]\nname = 'a'\nlower = ['env']"


def read_state(sandbox) -> list[dict]:
    """Every snapshot of project 1 / region 1, through the public list endpoint."""

    async def read() -> dict:
        async with Client(Settings(sandbox.base_url, API_KEY)) as client:
            return await client.list_page(1, 1, limit=1000)

    return asyncio.run(read())["results"]


def exported(sandbox) -> pd.DataFrame:
    """The inventory of project 1 / region 1 with the volumes joined (the sample policy
    reads them), through the real export."""
    return batchtag.export(**scope_of(sandbox), with_volume=True)


def options(sandbox, tmp_path: Path, name: str) -> dict:
    """The connection and a report path; a loopback rate (the default 20/s would make each
    run of ~100 writes take seconds)."""
    report = str(tmp_path / name)
    return {"base_url": sandbox.base_url, "api_key": API_KEY, "report": report, "rate": 1000}


def add_drift(sandbox, tmp_path: Path) -> dict[str, dict]:
    """Hand-made drift on a few snapshots (an upper-case env, tmp tags, an 'Owner')."""
    state = read_state(sandbox)
    with_env = [s["id"] for s in state if "env" in tags_dict(s, user_only=True)][:2]
    others = [s["id"] for s in state if s["id"] not in with_env][:3]
    rows = [(sid, "env", "PROD") for sid in with_env]
    rows += [(sid, "tmp", "scratch") for sid in others[:2]] + [(others[2], "Owner", "carol")]
    drift = pd.DataFrame(rows, columns=["snapshot_id", "key", "value"]).assign(op="set")
    report = batchtag.apply(drift, project_id=1, region_id=1, **options(sandbox, tmp_path, "d.csv"))
    assert set(report["status"]) == {"ok"}
    return {s["id"]: tags_dict(s) for s in read_state(sandbox)}


def test_enforce_fixes_exactly_the_offending_snapshots_and_a_second_run_sends_nothing(
    sandbox, tmp_path
):
    before = add_drift(sandbox, tmp_path)
    policy = load_policy(SAMPLE)
    expected = evaluate(policy, exported(sandbox))
    hit = set(expected["rule"].str.split("; ").explode())
    assert {"no tmp tags", "env in lower case", "owner, not Owner"} <= hit
    sent = patches(sandbox)
    report = enforce(SAMPLE, project_id=1, region_id=1, **options(sandbox, tmp_path, "1.csv"))
    changed = set(expected["snapshot_id"])
    assert patches(sandbox) - sent == len(changed)  # one PATCH per offending snapshot
    assert set(report["status"]) == {"ok"} and set(report["snapshot_id"]) == changed
    assert report.attrs["summary"]["exit_code"] == 0
    assert (
        report.set_index("snapshot_id")["rule"].loc[list(expected["snapshot_id"])]
        == expected["rule"].to_numpy()
    ).all()
    after = {s["id"]: tags_dict(s) for s in read_state(sandbox)}
    assert {k: v for k, v in after.items() if k not in changed} == {
        k: v for k, v in before.items() if k not in changed
    }
    for sid in changed:
        tags = after[sid]
        assert "cost-center" in tags and "tmp" not in tags and "Owner" not in tags
        assert tags.get("env", "").islower() or "env" not in tags
    # the drift check is clean now, and a second run sends nothing
    connection = {"base_url": sandbox.base_url, "api_key": API_KEY}
    assert batchtag.enforce(SAMPLE, check=True, project_id=1, region_id=1, **connection).empty
    sent = patches(sandbox)
    again = enforce(SAMPLE, project_id=1, region_id=1, **options(sandbox, tmp_path, "2.csv"))
    assert patches(sandbox) == sent and again.empty


def test_check_returns_the_drift_and_sends_nothing(sandbox, tmp_path):
    add_drift(sandbox, tmp_path)
    sent = sandbox.stats()["requests"]
    drift = enforce(SAMPLE, check=True, inventory=exported(sandbox))
    assert len(drift) and set(drift.columns) >= {"snapshot_id", "op", "key", "value", "rule"}
    assert sandbox.stats()["requests"].get("PATCH", 0) == sent.get("PATCH", 0)
    diff = drift.attrs["diff"]
    assert set(diff["snapshot_id"]) == set(drift["snapshot_id"])
    assert set(diff["verdict"]) == {"change"}
    assert EXIT_DRIFT == 2


def test_conflicting_rules_send_nothing(sandbox, tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[[rule]]\nname='a'\nset={cc='1'}\n[[rule]]\nname='b'\nset={cc='2'}\n")
    with pytest.raises(PolicyError, match="rules 'a' and 'b' write different values"):
        enforce(path, inventory=exported(sandbox), **options(sandbox, tmp_path, "r.csv"))
    assert patches(sandbox) == 0 and not (tmp_path / "r.csv").exists()


def test_cli_bad_policy_is_one_line_exit_2_and_no_request(sandbox, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[[rule]]\nname = 'x'\nwhere = 'sise > 1'\nlower = ['env']\n")
    result = invoke(["enforce", str(path), "--yes"], sandbox)
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert f"policy {path}: rule 'x' (line 1): where: unknown column 'sise'" in result.stderr
    assert sum(sandbox.stats()["requests"].values()) == 0


def test_cli_help_lists_the_guards_a_scheduler_needs():
    text = CliRunner().invoke(main, ["enforce", "--help"]).output
    for flag in [
        "--check",
        "--max-changes",
        "--dry-run",
        "--summary-json",
        "--log-format",
        "--yes",
    ]:
        assert flag in text


def test_the_policy_scope_is_narrowed_by_an_option_inside_it_and_refuses_one_outside():
    policy = parse_policy("[scope]\nregion_id=[1,7]\n[[rule]]\nname='a'\nlower=['env']")
    assert scopes(policy, ApplyOptions()) == ScopeChoice(region_id=[1, 7])
    assert scopes(policy, ApplyOptions(project_id=3, region_id=7)) == ScopeChoice(3, 7)
    with pytest.raises(batchtag.UsageError, match=r"region_id=5 is outside the policy's \[scope\]"):
        scopes(policy, ApplyOptions(region_id=5))
    with pytest.raises(batchtag.UsageError, match=r"all_regions would widen the policy's"):
        scopes(policy, ApplyOptions(all_regions=True))
    every = parse_policy("[scope]\nproject_id=2\nall_regions=true\n[[rule]]\nname='a'\nlower=['e']")
    assert scopes(every, ApplyOptions()) == ScopeChoice(project_id=[2], all_regions=True)
    assert scopes(every, ApplyOptions(region_id=4)) == ScopeChoice([2], 4)  # narrowed
    assert scopes(parse_policy(RULE), ApplyOptions(all_projects=True)) == ScopeChoice(
        all_projects=True
    )
    for scope, message in [
        ("all_regions = true\nregion_id = 1", "all_regions = true lists every region; drop"),
        ("all_regions = 'yes'", "all_regions: expected true or false"),
        ("all_region = true", "unknown key 'all_region' (did you mean 'all_regions'?)"),
    ]:
        with pytest.raises(PolicyError, match=re.escape(message)):
            parse_policy(f"[scope]\n{scope}\n{RULE}")


def test_cli_check_guard_enforce_check_exit_codes(sandbox, tmp_path):
    """The scheduler's view: drift (2), the max-changes guard (3, nothing sent), a run (0)
    with a JSON summary and JSON logs, then clean (0)."""
    add_drift(sandbox, tmp_path)
    sent = patches(sandbox)
    check = invoke(["enforce", str(SAMPLE), "--check"], sandbox)
    assert check.exit_code == 2 and "drift: " in check.output
    summary = tmp_path / "summary.json"
    args = ["--report", str(tmp_path / "run.csv"), "--summary-json", str(summary)]
    args += ["--log-format", "json", "--yes", "--rate", "1000"]
    guarded = invoke(["enforce", str(SAMPLE), "--max-changes", "10%", *args], sandbox)
    assert guarded.exit_code == 3 and "refusing to start" in guarded.stderr
    assert patches(sandbox) == sent
    run = invoke(
        ["enforce", str(SAMPLE), "--max-changes", "100%", "--overwrite", "-v", *args], sandbox
    )
    assert run.exit_code == 0, run.stderr
    assert json.loads(summary.read_text())["exit_code"] == 0
    logged = [json.loads(line) for line in run.stderr.splitlines() if line.strip()]
    messages = [record.get("message", "") for record in logged]
    no_tmp = load_policy(SAMPLE).rules[1]
    assert f"{no_tmp.label}: matches 2 snapshots, 2 noncompliant" in messages  # the drift above
    assert API_KEY not in run.stderr
    clean = invoke(["enforce", str(SAMPLE), "--check"], sandbox)
    assert clean.exit_code == 0 and "clean: 0 tag changes on 0 snapshots" in clean.output


def test_cli_check_prints_the_plan_diff_and_dry_run_sends_nothing(sandbox, tmp_path):
    add_drift(sandbox, tmp_path)
    offenders = evaluate(load_policy(SAMPLE), exported(sandbox))
    sent = patches(sandbox)
    check = invoke(["enforce", str(SAMPLE), "--check"], sandbox)
    assert check.exit_code == 2
    assert f"Plan: {offenders['snapshot_id'].nunique()} to change" in check.output
    assert "- tmp (was scratch)" in check.output  # a line of the diff
    report = tmp_path / "dry.csv"
    dry = invoke(["enforce", str(SAMPLE), "--dry-run", "--report", str(report), "-y"], sandbox)
    assert dry.exit_code == 0, dry.stderr
    rows = pd.read_csv(report, dtype=str)
    assert set(rows["status"]) == {"planned"}
    assert set(rows["snapshot_id"]) == set(offenders["snapshot_id"])
    assert patches(sandbox) == sent


def test_max_changes_percent_counts_the_exported_inventory(sandbox, tmp_path):
    add_drift(sandbox, tmp_path)
    inventory = exported(sandbox)
    changed = evaluate(load_policy(SAMPLE), inventory)["snapshot_id"].nunique()
    just_enough = -(-changed * 100 // len(inventory))  # ceil: floor(size * N / 100) >= changed
    sent = patches(sandbox)
    for limit, code in [(changed - 1, 3), (f"{just_enough - 1}%", 3), (f"{just_enough}%", 0)]:
        args = ["--max-changes", str(limit), "--report", str(tmp_path / "g.csv"), "--overwrite"]
        result = invoke(["enforce", str(SAMPLE), *args, "-y", "--rate", "1000"], sandbox)
        assert result.exit_code == code, (limit, result.stderr)
        if code == 3:
            assert f"would change {changed} of {len(inventory)} snapshots" in result.stderr
            assert patches(sandbox) == sent
    assert patches(sandbox) == sent + changed


def test_enforce_takes_no_resume(sandbox, tmp_path):
    result = invoke(["enforce", str(SAMPLE), "--resume", str(tmp_path / "r.csv")], sandbox)
    assert result.exit_code == 2 and "--resume" in result.output + result.stderr
    with pytest.raises(TypeError, match="'resume'"):
        enforce(SAMPLE, resume=str(tmp_path / "r.csv"))
    assert sum(sandbox.stats()["requests"].values()) == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snaps=st.lists(snapshot_st, max_size=6), text=rules_st())
def test_the_plan_from_the_exported_state_is_the_manifest_and_check_agrees(snaps, text):
    """The plan step diffs the manifest against the inventory itself (no second read): it
    shows exactly the manifest's (snapshot, key) changes, new values included, and the
    --check exit code is 2 exactly when there is something to change."""
    frame = inventory(snaps)
    manifest = evaluate(parse_policy(text, "generated"), frame)
    plan = read_plan(manifest, form="long")
    diff, state = diff_inventory(frame, plan, 0)
    state.close()
    assert set(diff["verdict"]) <= {"change", "conflict"}
    refused = set(manifest.loc[manifest["op"] == "rename", "snapshot_id"])  # rename onto a value
    assert set(diff.loc[diff["verdict"] == "conflict", "snapshot_id"]) == refused
    changes = diff[diff["verdict"] == "change"]
    shown = set(zip(changes["snapshot_id"], changes["key"], changes["new"].fillna(""), strict=True))
    writes = manifest[~manifest["snapshot_id"].isin(refused)]
    wanted = zip(writes["snapshot_id"], writes["key"], writes["value"], strict=True)
    assert shown == set(wanted)
    expected = EXIT_FAILED if refused else EXIT_DRIFT if len(manifest) else 0
    assert plan_exit_code(diff.attrs["summary"]) == expected


def test_an_interrupted_enforce_says_to_run_it_again_not_to_resume(sandbox, tmp_path, monkeypatch):
    add_drift(sandbox, tmp_path)
    monkeypatch.setattr(
        "batchtag.commands._apply.install_signal_handlers", lambda engine: engine.interrupt()
    )
    report = tmp_path / "en.csv"
    result = invoke(["enforce", str(SAMPLE), "--report", str(report), "-y"], sandbox)
    assert result.exit_code == 130, result.output
    assert "  to finish: run the same command again" in result.output.splitlines()
    assert "--resume" not in result.output


def test_cli_check_prints_rule_counts_as_text_and_no_manifest_rows(sandbox, tmp_path):
    add_drift(sandbox, tmp_path)
    rules = evaluate(load_policy(SAMPLE), exported(sandbox)).attrs["rules"]
    check = invoke(["enforce", str(SAMPLE), "--check"], sandbox)
    assert check.exit_code == 2
    lines = check.output.splitlines()
    for name, counts in rules.items():
        line = f"  {name}: {counts['matched']} matched, {counts['noncompliant']} noncompliant"
        if name == "cost tags follow the volume":  # the copy rule counts its orphans too
            line += f", {counts['orphans']} whose volume is gone (left alone)"
        assert line in lines
    heads = [line for line in lines if line.startswith("~ 1/1/")]
    assert heads and not [line for line in heads if "  rows " in line]
    assert not [line for line in lines if line.endswith("}")]


def many_rules(count: int) -> str:
    """`count` rules, each setting a key of its own on the bigger snapshots."""
    return "\n".join(
        f"[[rule]]\nname = 'r{i}'\nwhere = 'size >= {i % 7}'\nset = {{ k{i} = 'v{i}' }}"
        for i in range(count)
    )


def test_enforce_with_many_rules_prints_no_library_warning(make_sandbox, tmp_path):
    """150 rules, each adding a tag column: pandas used to warn about a fragmented frame
    on the user's terminal. The CLI in its own process, Python's default warning filters."""
    server = make_sandbox(snapshots=60, api_key=API_KEY)
    policy = tmp_path / "many.toml"
    policy.write_text(many_rules(150))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(env_for(server))
    result = subprocess.run(
        [sys.executable, "-m", "batchtag", "enforce", str(policy), "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == EXIT_DRIFT, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    assert "Plan: 60 to change" in result.stdout
    assert server.stats()["requests"].get("PATCH", 0) == 0


def test_a_policy_saved_with_a_utf8_bom_is_read(sandbox, tmp_path):
    """Windows editors start UTF-8 files with a BOM, which TOML does not allow."""
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + SAMPLE.read_bytes())
    plain = invoke(["enforce", str(SAMPLE), "--check"], sandbox)
    with_bom = invoke(["enforce", str(bom), "--check"], sandbox)
    assert with_bom.exit_code == plain.exit_code == EXIT_DRIFT, with_bom.output
    assert with_bom.output.replace(str(bom), str(SAMPLE)) == plain.output
    assert load_policy(bom).rules == load_policy(SAMPLE).rules
