"""The sample manifests (samples/snapshots-*): one per form and file type, generated for the
sandbox's default seed by samples/make_manifests.py; each validates and dry-runs against a
fresh sandbox, every row landing in the report."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import NO_ENV, invoke, patches

from batchtag.cli import main
from batchtag.record import read_report

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
MANIFESTS = {  # file -> the form validate detects
    "snapshots-long.csv": "long",
    "snapshots-wide.csv": "wide",
    "snapshots-json.jsonl": "json",
    "snapshots-wide.parquet": "wide",
}
SCOPE = ["--project-id", "1", "--region-id", "1"]


def generator():
    spec = importlib.util.spec_from_file_location("make_manifests", SAMPLES / "make_manifests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_samples_are_what_the_script_writes(tmp_path):
    for path in generator().write_all(tmp_path):
        kept = SAMPLES / path.name
        if path.suffix == ".parquet":
            pd.testing.assert_frame_equal(pd.read_parquet(path), pd.read_parquet(kept))
        else:
            assert path.read_text() == kept.read_text(), "rerun samples/make_manifests.py"


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_every_sample_manifest_validates(name):
    result = CliRunner().invoke(main, ["validate", str(SAMPLES / name), *SCOPE], env=NO_ENV)
    assert result.exit_code == 0, result.output
    assert f"manifest OK ({MANIFESTS[name]} form)" in result.output


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_every_sample_manifest_dry_runs_against_a_fresh_sandbox(sandbox, tmp_path, name):
    report = tmp_path / "report.csv"
    args = ["apply", str(SAMPLES / name), "--dry-run", "--report", str(report), "-y"]
    result = invoke(args, sandbox)
    assert result.exit_code == 0, result.stderr
    rows = read_report(report)
    manifest = pd.read_parquet(SAMPLES / name) if name.endswith(".parquet") else None
    if manifest is None and name.endswith(".csv"):
        manifest = pd.read_csv(SAMPLES / name, dtype=str)
    if manifest is None:
        manifest = pd.read_json(SAMPLES / name, lines=True, dtype={"snapshot_id": str})
    assert set(rows["snapshot_id"]) == set(manifest["snapshot_id"])  # all known, none missing
    assert set(rows["status"]) <= {"planned", "noop"} and "planned" in set(rows["status"])
    assert set(rows["ticket"].dropna()) == set(manifest["ticket"].dropna())
    assert patches(sandbox) == 0
