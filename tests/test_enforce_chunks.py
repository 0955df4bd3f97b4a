"""`enforce` a chunk of inventory rows at a time: the same manifest, counts, warnings,
errors, drift, plan and writes as one evaluation of the whole inventory."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
from helpers import API_KEY, invoke, patches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_frames import inventory, rules_st, snapshot_st

import batchtag
from batchtag.policy import Evaluation, PolicyError, evaluate, join_manifests, parse_policy

SAMPLE = Path(__file__).parent.parent / "samples" / "cost-policy.toml"
TIMES = ("started_at", "finished_at", "elapsed_ms")


def outcome(run) -> tuple:
    """What a run said: its result or its error, and its log lines."""
    try:
        return run(), None
    except PolicyError as error:
        return None, str(error)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(snaps=st.lists(snapshot_st, max_size=8), text=rules_st(), size=st.integers(1, 4))
def test_a_chunked_evaluation_is_the_whole_one(snaps, text, size, caplog):
    policy = parse_policy(text, "generated")
    frame = inventory(snaps)

    def logged(run) -> tuple:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="batchtag"):
            result = outcome(run)
        return result, [(r.levelname, r.getMessage()) for r in caplog.records]

    def chunked() -> pd.DataFrame:
        evaluation = Evaluation(policy)
        parts = [evaluation.add(frame.iloc[i : i + size]) for i in range(0, len(frame), size)]
        parts = parts or [evaluation.add(frame)]
        manifest = join_manifests(parts)
        manifest.attrs["rules"] = evaluation.finish()
        return manifest

    (whole, error), lines = logged(lambda: evaluate(policy, frame))
    (parts, parts_error), parts_lines = logged(chunked)
    assert parts_error == error
    assert parts_lines == lines
    if error is None:
        pd.testing.assert_frame_equal(parts, whole)
        assert parts.attrs["rules"] == whole.attrs["rules"]


def drift(sandbox, tmp_path: Path) -> None:
    """Snapshots the sample policy changes: a tmp tag, an upper-case env, an 'Owner'."""
    ids = batchtag.export(base_url=sandbox.base_url, api_key=API_KEY, project_id=1, region_id=1)[
        "snapshot_id"
    ].tolist()
    rows = [(sid, "tmp", "scratch") for sid in ids[:9]]
    rows += [(sid, "env", "PROD") for sid in ids[9:14]] + [(ids[14], "Owner", "carol")]
    changes = pd.DataFrame(rows, columns=["snapshot_id", "key", "value"]).assign(op="set")
    batchtag.apply(
        changes,
        project_id=1,
        region_id=1,
        base_url=sandbox.base_url,
        api_key=API_KEY,
        report=str(tmp_path / "drift.csv"),
        overwrite=True,
        rate=1000,
    )


def check(sandbox, tmp_path: Path, name: str) -> tuple:
    """`enforce --check -o` on the command line: its exit code, output and change file."""
    out = tmp_path / f"{name}.csv"
    summary = tmp_path / f"{name}.json"
    args = ["enforce", str(SAMPLE), "--check", "-o", str(out), "--summary-json", str(summary)]
    result = invoke(args, sandbox)
    text = result.output.replace(str(out), "OUT")
    facts = json.loads(summary.read_text())
    return result.exit_code, text, out.read_bytes(), facts


def run(sandbox, tmp_path: Path, name: str) -> tuple:
    """`enforce` on the command line: exit code, report (times left out), compliance, and
    the snapshots' tags after it."""
    report, summary = tmp_path / f"run-{name}.csv", tmp_path / f"run-{name}.json"
    args = ["enforce", str(SAMPLE), "-y", "--report", str(report), "--summary-json", str(summary)]
    result = invoke([*args, "--rate", "1000"], sandbox)
    assert result.exit_code in (0, 1), result.output
    frame = batchtag.read_report(report).drop(columns=list(TIMES))
    frame = frame.sort_values("snapshot_id").reset_index(drop=True)
    facts = json.loads(summary.read_text())
    after = batchtag.export(base_url=sandbox.base_url, api_key=API_KEY, project_id=1, region_id=1)
    tags = after.set_index("snapshot_id")["tags"].to_dict()
    return result.exit_code, frame, {k: facts[k] for k in ("rules", "inventory")}, tags


@pytest.mark.parametrize("rows", [7, 64])
def test_enforce_in_chunks_checks_and_writes_as_in_one(sandbox, tmp_path, monkeypatch, rows):
    """The export hands the inventory over a few rows at a time (`rows` a chunk, not the
    default 50k): the check's output, change file and figures, and the run's report,
    figures and writes are those of one chunk."""
    drift(sandbox, tmp_path)
    whole = check(sandbox, tmp_path, "whole")
    assert whole[0] in (1, 2) and whole[3]["drift"]["snapshots"] >= 15  # 1: a refused rename
    monkeypatch.setattr("batchtag.inventory._files.SPILL_ROWS", rows)
    assert check(sandbox, tmp_path, "parts") == whole
    sent = patches(sandbox)
    parts = run(sandbox, tmp_path, "parts")
    parts_sent = patches(sandbox) - sent
    assert parts_sent >= 15
    sandbox.reset()
    drift(sandbox, tmp_path)
    monkeypatch.undo()
    sent = patches(sandbox)
    one = run(sandbox, tmp_path, "one")
    assert patches(sandbox) - sent == parts_sent
    assert parts[0] == one[0]
    pd.testing.assert_frame_equal(parts[1], one[1])
    assert parts[2:] == one[2:]


def test_a_given_inventory_in_chunks_gives_the_same_drift(sandbox, tmp_path, monkeypatch):
    drift(sandbox, tmp_path)
    frame = batchtag.export(
        base_url=sandbox.base_url, api_key=API_KEY, project_id=1, region_id=1, with_volume=True
    )
    whole = batchtag.enforce(SAMPLE, check=True, inventory=frame)
    monkeypatch.setattr("batchtag.commands._enforce.STATE_CHUNK", 5)
    parts = batchtag.enforce(SAMPLE, check=True, inventory=frame)
    pd.testing.assert_frame_equal(parts, whole)
    pd.testing.assert_frame_equal(parts.attrs["diff"], whole.attrs["diff"])
    assert parts.attrs["summary"] == whole.attrs["summary"]
    assert parts.attrs["diff"]["rows"].notna().all()  # the manifest's rows, as before
    # the same snapshot twice: one piece, so its rows make one entry as in one manifest
    doubled = pd.concat([frame, frame.iloc[:3]], ignore_index=True)
    assert len(batchtag.enforce(SAMPLE, check=True, inventory=doubled)) >= len(whole)
