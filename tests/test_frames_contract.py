"""One dtype contract for every frame batchtag returns and every file it writes, and a reader
per file kind that gives back exactly the frame that was written."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import API_KEY, invoke, live_examples, scope_of
from hypothesis import given
from hypothesis import strategies as st

import batchtag
from batchtag.tabular import TIME_DTYPE, str_dtype

FORMATS = [".csv", ".parquet", ".jsonl"]
TEXT = str_dtype()


@pytest.fixture(scope="module")
def server():
    from batchtag.sandbox import SandboxConfig, SandboxServer

    config = SandboxConfig(snapshots=60, seed=11, lock_rate=0.1, api_key=API_KEY)
    with SandboxServer(config) as running:
        yield running


def manifest(ids) -> pd.DataFrame:
    """A long manifest that sets, deletes and renames, with a passthrough column."""
    return pd.DataFrame(
        {
            "snapshot_id": [*ids, ids[0]],
            "op": ["set"] * len(ids) + ["delete"],
            "key": ["cost-center"] * len(ids) + ["env"],
            "value": ['cc,"42"'] * len(ids) + [None],  # CSV-hostile text
            "ticket": "FIN-7",
        }
    )


def assert_contract(frame: pd.DataFrame) -> None:
    """ids and texts in the string dtype, scope ids and counts Int64, instants UTC."""
    for column in ("snapshot_id", "volume_id", "task_id", "request_id", "status", "key"):
        if column in frame.columns:
            assert frame[column].dtype == TEXT, column
    for column in ("project_id", "region_id", "size", "attempts", "http_status"):
        if column in frame.columns:
            assert str(frame[column].dtype) == "Int64", column
    for column in ("created_at", "updated_at", "started_at", "finished_at"):
        if column in frame.columns:
            assert str(frame[column].dtype) == TIME_DTYPE, column
    for column in ("tags", "tags_before", "tags_after"):
        if column in frame.columns:
            assert all(isinstance(v, dict) or v is None for v in frame[column]), column


@pytest.mark.parametrize("suffix", FORMATS)
def test_export_reads_back_as_it_was_returned(server, tmp_path, suffix):
    path = tmp_path / f"inventory{suffix}"
    frame = batchtag.export(output=str(path), progress=False, **scope_of(server))
    assert_contract(frame)
    assert frame["tag:cost-center"].dtype == TEXT and "tags" in frame.columns
    pd.testing.assert_frame_equal(batchtag.read_inventory(path), frame)


def test_exports_store_typed_parquet_and_the_command_line_file_reads_as_the_frame(server, tmp_path):
    path = tmp_path / "cli.parquet"
    assert invoke(["export", "-o", str(path)], server).exit_code == 0
    schema = pq.read_schema(path)
    assert schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("size").type == pa.int64()
    frame = batchtag.export(progress=False, **scope_of(server))
    pd.testing.assert_frame_equal(batchtag.read_inventory(path), frame)


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_long_or_narrow_export_reads_back_too(server, tmp_path, suffix):
    long = batchtag.export(long=True, output=str(tmp_path / f"l{suffix}"), **scope_of(server))
    assert long["read_only"].dtype == bool and "tags" not in long.columns
    pd.testing.assert_frame_equal(batchtag.read_inventory(tmp_path / f"l{suffix}"), long)
    few = batchtag.export(
        columns="snapshot_id,created_at,tag:*", output=str(tmp_path / f"c{suffix}"),
        **scope_of(server),
    )  # fmt: skip
    assert "tags" not in few.columns and str(few["created_at"].dtype) == TIME_DTYPE
    pd.testing.assert_frame_equal(batchtag.read_inventory(tmp_path / f"c{suffix}"), few)


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_plan_reads_back_as_it_was_returned(server, tmp_path, suffix):
    ids = server.store.ids()[:6]
    path = tmp_path / f"plan{suffix}"
    diff = batchtag.plan(manifest(ids), output=str(path), progress=False, **scope_of(server))
    assert_contract(diff)
    assert diff["old"].dtype == TEXT and isinstance(diff["rows"].iloc[0], list)
    pd.testing.assert_frame_equal(batchtag.read_changes(path), diff)


def test_undo_files_read_back_as_the_undo_frame(server, tmp_path):
    server.reset()
    ids = server.store.ids()[6:12]
    report, undo_file = tmp_path / "run1.csv", tmp_path / "run1.undo.jsonl"
    applied = batchtag.apply(
        manifest(ids), report=str(report), undo_file=str(undo_file), progress=False,
        **scope_of(server),
    )  # fmt: skip
    assert_contract(applied)
    path = tmp_path / "back.jsonl"
    inverse = batchtag.undo(
        str(report), output=str(path), base_url=server.base_url, api_key=API_KEY
    )
    assert_contract(inverse)
    assert str(inverse.attrs["skipped"]["project_id"].dtype) == "Int64"
    pd.testing.assert_frame_equal(batchtag.read_changes(path), inverse)
    written = batchtag.read_changes(undo_file)  # in the order the run finished them
    order = written["snapshot_id"].argsort()
    pd.testing.assert_frame_equal(
        written.iloc[order].reset_index(drop=True),
        inverse.iloc[inverse["snapshot_id"].argsort()].reset_index(drop=True),
    )


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_report_reads_back_as_apply_returned_it(server, tmp_path, suffix):
    server.reset()
    path = tmp_path / f"run{suffix}"
    report = batchtag.apply(
        manifest(server.store.ids()[12:18]), report=str(path), check_current=True,
        progress=False, **scope_of(server),
    )  # fmt: skip
    assert_contract(report)
    pd.testing.assert_frame_equal(batchtag.read_report(path), report)


def test_the_sandboxs_frame_is_the_export(server):
    from batchtag.sandbox.context import snapshots_frame

    server.reset()
    frame = batchtag.export(progress=False, **scope_of(server))
    pd.testing.assert_frame_equal(snapshots_frame(server.store.snapshots()), frame)


def test_sb_frame_over_several_scopes_is_their_export():
    with batchtag.sandbox(snapshots=15, project_ids=[1, 2], region_ids=[3, 4], env=False) as sb:
        frame = batchtag.export(
            project_id=sb.project_ids, region_id=sb.region_ids, base_url=sb.url,
            api_key=sb.api_key, progress=False,
        )  # fmt: skip
        pd.testing.assert_frame_equal(sb.frame(), frame)
        assert len(sb.frame(project_id=2, region_id=[3])) == 15


def test_enforce_check_frames_keep_the_contract(server, tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text(
        '[[rule]]\nname = "cc"\nwhere = "`tag:cost-center`.isna()"\n'
        'set = { "cost-center" = "unassigned" }\n'
    )
    drift = batchtag.enforce(str(policy), check=True, progress=False, **scope_of(server))
    assert_contract(drift)
    assert_contract(drift.attrs["diff"])
    assert drift["rule"].dtype == TEXT


TAG_TEXT = st.text(
    st.characters(
        codec="utf-8", exclude_categories=["Cc", "Cs", "Zs", "Zl", "Zp"], exclude_characters="="
    ),
    min_size=1,
    max_size=12,
)


@live_examples(12, timeout=300)
@given(
    edits=st.dictionaries(st.sampled_from(["env", "team", "a,b", 'q"uote']), TAG_TEXT, max_size=3),
    suffix=st.sampled_from(FORMATS),
)
def test_any_tag_text_survives_every_format(make_sandbox, tmp_path_factory, edits, suffix):
    """Tag values with commas, quotes, non-ASCII and lookalike numbers or dates come back
    from the file exactly as the frame held them, in every format."""
    server = make_sandbox(snapshots=3, api_key=API_KEY)
    ids = server.store.ids()
    rows = [{"snapshot_id": ids[0], "op": "set", "key": k, "value": v} for k, v in edits.items()]
    folder = tmp_path_factory.mktemp("any")
    if rows:
        report = str(folder / "run.csv")
        batchtag.apply(pd.DataFrame(rows), report=report, progress=False, **scope_of(server))
    path = folder / f"inventory{suffix}"
    frame = batchtag.export(output=str(path), progress=False, **scope_of(server))
    assert {k: frame.loc[0, "tags"].get(k) for k in edits} == edits
    pd.testing.assert_frame_equal(batchtag.read_inventory(path), frame)


def test_readers_refuse_what_is_not_there(tmp_path):
    with pytest.raises(batchtag.UsageError, match="no such file"):
        batchtag.read_inventory(tmp_path / "nope.parquet")
    (tmp_path / "plan.txt").write_text("snapshot_id\n")
    with pytest.raises(batchtag.UsageError, match="unknown format"):
        batchtag.read_changes(tmp_path / "plan.txt")


def test_key_counts_keep_the_contract(server):
    client = batchtag.Client(server.base_url, API_KEY, 1, 1, progress=False)
    keys = client.keys()
    assert keys["key"].dtype == TEXT and keys["read_only"].dtype == bool
    assert str(keys["snapshots"].dtype) == "Int64" and keys["snapshots"].sum() > 0
    values = client.keys(values="env")
    assert values["value"].dtype == TEXT and str(values["snapshots"].dtype) == "Int64"
