"""The compliance summary of enforce (issue 24, item 3): the inventory size and, per rule,
matched / noncompliant / changed, in the text summary, the JSON event, --summary-json and
Python; `enforce --check -o FILE` writes the full drift in the format of `plan -o`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import API_KEY, invoke, patches

import batchtag
from batchtag.tabular import read_table

POLICY = """
[[rule]]
name = "no tmp"
where = "`tag:tmp`.notna()"
delete = ["tmp"]

[[rule]]
name = "owned"
where = "`tag:team`.notna() and `tag:owner`.isna()"
set = { owner = "team-lead" }

[[rule]]
name = "lower env"
where = "`tag:env`.notna()"
lower = ["env"]
"""


@pytest.fixture
def drifted(make_sandbox, tmp_path):
    """A sandbox with known drift: 3 tmp tags, 2 upper-case envs; the policy file."""
    sandbox = make_sandbox(snapshots=120, lock_ms=60_000)
    options = {"base_url": sandbox.base_url, "api_key": API_KEY, "project_id": 1, "region_id": 1}
    frame = batchtag.export(**options)
    with_env = frame.loc[frame["tag:env"].notna(), "snapshot_id"].tolist()[:2]
    others = frame.loc[frame["tag:env"].isna(), "snapshot_id"].tolist()[:3]
    rows = [(sid, "env", "PROD") for sid in with_env] + [(sid, "tmp", "x") for sid in others]
    drift = pd.DataFrame(rows, columns=["snapshot_id", "key", "value"]).assign(op="set")
    batchtag.apply(drift, report=str(tmp_path / "made-drift.csv"), rate=1000, **options)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return sandbox, policy, batchtag.export(**options), options


def expected(inventory: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """(matched, noncompliant) per rule, counted here from the inventory."""
    env = inventory["tag:env"].dropna()
    owned = inventory["tag:team"].notna() & inventory["tag:owner"].isna()
    return {
        "no tmp": (int(inventory["tag:tmp"].notna().sum()),) * 2,
        "owned": (int(owned.sum()),) * 2,
        "lower env": (len(env), int((env != env.str.lower()).sum())),
    }


def test_check_reports_the_inventory_and_each_rules_figures_everywhere(drifted, tmp_path):
    sandbox, policy, inventory, options = drifted
    want = expected(inventory)
    summary = tmp_path / "s.json"
    text = invoke(["enforce", str(policy), "--check", "--summary-json", str(summary)], sandbox)
    assert text.exit_code == 2, text.stderr
    lines = text.stdout.splitlines()
    assert f"compliance: {len(inventory)} snapshots in the inventory" in lines
    for name, (matched, noncompliant) in want.items():
        assert f"  {name}: {matched} matched, {noncompliant} noncompliant" in lines
    written = json.loads(summary.read_text())
    assert written["inventory"] == len(inventory) and written["exit_code"] == 2
    figures = {r["name"]: (r["matched"], r["noncompliant"], r["changed"]) for r in written["rules"]}
    assert figures == {name: (*counts, 0) for name, counts in want.items()}
    event = invoke(["enforce", str(policy), "--check", "--log-format", "json"], sandbox)
    (compliance,) = [
        e for e in map(json.loads, event.stdout.splitlines()) if e["event"] == "compliance"
    ]
    assert compliance["inventory"] == len(inventory) and compliance["rules"] == written["rules"]
    drift = batchtag.enforce(policy, check=True, **options)
    assert drift.attrs["summary"]["rules"] == written["rules"]
    assert patches(sandbox) == 5  # the drift made above: nothing sent since


def test_a_run_counts_what_each_rule_changed(drifted, tmp_path):
    sandbox, policy, inventory, options = drifted
    want = expected(inventory)
    report = batchtag.enforce(policy, report=str(tmp_path / "r.csv"), rate=1000, **options)
    summary = report.attrs["summary"]
    assert summary["inventory"] == len(inventory) and summary["exit_code"] == 0
    for rule in summary["rules"]:
        matched, noncompliant = want[rule["name"]]
        assert (rule["matched"], rule["noncompliant"]) == (matched, noncompliant)
        ok = report[(report["status"] == "ok") & report["rule"].str.contains(rule["name"])]
        assert rule["changed"] == len(ok) == noncompliant
    result = invoke(["enforce", str(policy), "--report", str(tmp_path / "again.csv")], sandbox)
    lines = result.stdout.splitlines()
    assert result.exit_code == 0 and "lower env" in result.stdout
    for name in want:  # compliant now: matched again, nothing to change
        assert any(
            ln.startswith(f"  {name}: ") and ln.endswith("0 noncompliant, 0 changed")
            for ln in lines
        )


def test_changed_counts_only_what_was_written(make_sandbox, tmp_path):
    """Snapshots held by a task past --lock-budget fail: the rule did not change them."""
    sandbox = make_sandbox(snapshots=60, lock_rate=0.3, lock_ms=60_000, seed=3)
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nname = "all"\nset = { audited = "yes" }\n')
    summary = tmp_path / "s.json"
    args = ["enforce", str(policy), "--lock-budget", "0.2", "--rate", "1000"]
    result = invoke(
        [*args, "--report", str(tmp_path / "r.csv"), "--summary-json", str(summary)], sandbox
    )
    assert result.exit_code == 1, result.stderr
    (rule,) = json.loads(summary.read_text())["rules"]
    audited = sum(s.tags.get("audited") == "yes" for s in sandbox.store.snapshots(1, 1))
    assert rule["matched"] == rule["noncompliant"] == 60
    assert rule["changed"] == audited < 60
    assert f"  all: 60 matched, 60 noncompliant, {audited} changed" in result.stdout.splitlines()


def test_check_o_writes_the_whole_drift_as_plan_o_writes_it_and_limit_caps_the_print(
    drifted, tmp_path
):
    sandbox, policy, inventory, options = drifted
    manifest = batchtag.enforce(policy, check=True, **options)
    snapshots = manifest["snapshot_id"].nunique()
    drift = tmp_path / "changes.csv"
    result = invoke(["enforce", str(policy), "--check", "-o", str(drift), "--limit", "1"], sandbox)
    assert result.exit_code == 2
    heads = [ln for ln in result.stdout.splitlines() if ln.startswith("~ 1/1/")]
    assert len(heads) == 1 and f"... and {snapshots - 1} more snapshots" in result.stdout
    # the same manifest through `plan -o`: the same columns, the same changes
    manifest.to_csv(tmp_path / "m.csv", index=False)
    planned = tmp_path / "plan.csv"
    assert invoke(["plan", str(tmp_path / "m.csv"), "-o", str(planned)], sandbox).exit_code == 0
    (ours_cols, ours), (theirs_cols, theirs) = read_table(drift), read_table(planned)
    assert ours_cols == theirs_cols
    keyed = lambda rows: sorted((r["snapshot_id"], r["key"], r["old"], r["new"]) for r in rows)  # noqa: E731
    assert keyed(ours) == keyed(theirs) and len(ours) == len(manifest)
    stdout = invoke(["enforce", str(policy), "--check", "-o", "-", "--limit", "0"], sandbox)
    assert stdout.stdout.splitlines()[0] == ",".join(ours_cols)  # the drift, nothing else
    assert "compliance:" in stdout.stderr


def test_o_without_check_is_refused_before_any_request(drifted, tmp_path):
    sandbox, policy, _, _ = drifted
    before = sandbox.stats()["total_requests"]
    result = invoke(["enforce", str(policy), "-o", str(tmp_path / "d.csv")], sandbox)
    assert result.exit_code == 2 and "--output writes the drift of --check" in result.stderr
    assert sandbox.stats()["total_requests"] == before and not Path(tmp_path / "d.csv").exists()
