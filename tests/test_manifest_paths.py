"""Small CSV manifests are planned without pandas, and the two ways of reading a manifest
cannot be told apart: the same plan, or the same problems (exit 2 messages, row, line and
column included), for any manifest."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from helpers import env_for, fetch_tags, write_long_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from manifest_helpers import SID, SID2, full_way

from batchtag.errors import BatchtagError
from batchtag.manifest import read_plan
from batchtag.model import PLAIN_TAG_TEXT, TAG_TEXT

SID3 = "aaaaaaaa-0000-4000-8000-000000000003"
IDS = [SID, SID2, SID3, SID.upper(), f" {SID2}", "not-a-uuid", ""]
OPS_CELLS = ["set", "set", "delete", "Set", " set", "clear", "rename", "name", "bogus", ""]
KEYS = ["env", "team", "cost-center", "my key", "", "a=b", "ümlaut", "k" * 256, "<delete>"]
VALUES = ["prod", "dev", "", "x y", "<delete>", " <delete>", "ü", "a=b", 'q"t', "a,b", "snap-1"]
OTHER_COLUMNS = ["ticket", "project_id", "region_id", "name", "overwrite", " snapshot_id"]
SCOPES = [{}, {"project_id": 1}, {"project_id": 1, "region_id": 2}, {"region_id": 0}]
ENVS = [{}, {"GCORE_CLOUD_PROJECT_ID": "3", "GCORE_CLOUD_REGION_ID": "4"}, {"X": "1"}]


@st.composite
def manifests(draw) -> tuple[str, dict]:
    """A CSV manifest's text (long or wide) and read_plan options: half of them drawn from
    plain cells only (most of those valid), half from every kind of cell (most invalid)."""
    plain = draw(st.booleans())
    if draw(st.booleans()):
        columns = ["snapshot_id", "op", "key", "value"]
    else:
        tag_keys = KEYS[:3] if plain else KEYS[:4] + ["<delete>"]
        keys = draw(st.lists(st.sampled_from(tag_keys), min_size=1, max_size=3, unique=plain))
        columns = ["snapshot_id", *(f"tag:{k}" for k in keys)]
    others = OTHER_COLUMNS[:1] if plain else OTHER_COLUMNS
    columns += draw(st.lists(st.sampled_from(others), max_size=2))
    ids = draw(st.permutations(IDS[:3])) if plain else IDS
    rows = []
    for n in range(draw(st.integers(1, 3) if plain else st.integers(0, 5))):
        row = []
        for column in columns:
            if column.strip() == "snapshot_id":
                row.append(ids[n] if plain else draw(st.sampled_from(ids)))
                continue
            if column == "op":
                pool = ["set", "delete"] if plain else OPS_CELLS
            elif column == "key":
                pool = KEYS[:3] if plain else KEYS
            elif column in ("project_id", "region_id"):
                pool = ["1", "2", "", "0", "x"]
            elif column == "overwrite":
                pool = ["", "true", "maybe"]
            else:
                pool = VALUES[:3] + ["<delete>", "snap-1"] if plain else VALUES
            row.append(draw(st.sampled_from(pool)))
        rows.append(",".join(row))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [",".join(columns), *rows]
    if not plain and draw(st.booleans()) and len(lines) > 1:
        lines.insert(draw(st.integers(1, len(lines))), "")  # a blank line
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    scope = SCOPES[2] if plain and draw(st.booleans()) else draw(st.sampled_from(SCOPES))
    options = dict(scope, env=draw(st.sampled_from(ENVS)))
    if draw(st.integers(0, 5)) == 0:
        options["delete_marker"] = draw(st.sampled_from(["-", " x", "", "prod"]))
    if draw(st.integers(0, 5)) == 0:
        options["form"] = draw(st.sampled_from(["long", "wide", "json"]))
    if draw(st.integers(0, 7)) == 0:
        options["empty_deletes"] = True
    return text, options


def outcome(path, options: dict) -> tuple:
    """What `read_plan` makes of a file: the plan (every entry and fact of it), or the error
    as a user sees it."""
    try:
        plan = read_plan(path, **options)
    except BatchtagError as error:
        details = [str(p) for p in getattr(error, "details", [])]
        return ("error", type(error).__name__, str(error), details)
    facts = (plan.form, plan.rows, plan.passthrough, plan.ops, plan.notes, plan.fingerprint())
    return ("plan", list(plan), *facts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests())
def test_both_ways_make_the_same_plan_or_the_same_problems(tmp_path_factory, manifest):
    text, options = manifest
    path = tmp_path_factory.mktemp("m") / "manifest.csv"
    path.write_bytes(text.encode())
    short = outcome(path, options)
    with full_way():
        full = outcome(path, options)
    assert short == full


def test_a_small_manifest_is_planned_without_pandas(tmp_path):
    path = write_long_csv(
        tmp_path / "m.csv",
        [{"snapshot_id": s, "op": "set", "key": "env", "value": "prod"} for s in (SID, SID2)],
    )
    code = (
        "import sys; from batchtag.manifest import read_plan;"
        f"plan = read_plan({str(path)!r}, project_id=1, region_id=1, env={{}});"
        "print(len(plan), plan.fingerprint() != '',"
        " sorted(m for m in ('pandas', 'pyarrow') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["2", "True", "[]"], done.stderr


# The CLI's `apply` of a small manifest, then (at exit) which heavy modules it imported.
APPLY_IN_PROCESS = """
import atexit, json, sys
heavy = ("pandas", "pyarrow", "pyarrow.compute", "tqdm", "tenacity")
atexit.register(lambda: print(json.dumps([m for m in heavy if m in sys.modules])))
from batchtag.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("mode", ["default", "--no-check-current"])
def test_a_small_apply_imports_no_pandas_pyarrow_or_tqdm(sandbox, tmp_path, mode):
    ids = sandbox.store.ids()[:3]
    path = write_long_csv(
        tmp_path / "m.csv", [{"snapshot_id": s, "op": "set", "key": "k", "value": "v"} for s in ids]
    )
    args = ["apply", str(path), "--yes", "--report", str(tmp_path / "r.csv")]
    args += [] if mode == "default" else [mode]
    done = subprocess.run(
        [sys.executable, "-c", APPLY_IN_PROCESS, *args],
        env={**env_for(sandbox), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []  # the heavy ones imported
    assert all(fetch_tags(sandbox.base_url, s)["k"] == "v" for s in ids)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(PLAIN_TAG_TEXT, fullmatch=True) | st.text(max_size=300))
def test_the_plain_tag_text_is_tag_text(text):
    # what the small-file reader takes as a tag key or value, the full checks take too
    if re.fullmatch(PLAIN_TAG_TEXT, text):
        valid = pc.match_substring_regex(pa.array([text]), f"^(?:{TAG_TEXT})$")[0].as_py()
        assert valid
