"""`batchtag export` and `batchtag.export()` against the sandbox."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import fields, replace
from datetime import datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import batchtag
from batchtag.cli import main
from batchtag.commands import INVENTORY_COLUMNS, ApplyOptions, split_keys
from batchtag.errors import CALLER
from batchtag.inventory import TAG_LIST, field_type, long_frame, tag_keys, wide_table
from batchtag.sandbox import SandboxConfig, SandboxServer
from tests.helpers import API_KEY, env_for


@pytest.fixture(scope="module")
def inventory():
    """2,500 snapshots in each of two scopes (1/1 and 2/1); reset before each use."""
    with SandboxServer(SandboxConfig(snapshots=2500, project_ids=[1, 2])) as server:
        yield server


def expected(server, project_id=1, region_id=1) -> list[dict]:
    """The store's snapshots as export rows (absent tags left out)."""
    rows = []
    for snap in server.store.snapshots(project_id, region_id):
        row = {c: getattr(snap, c) for c in INVENTORY_COLUMNS if c != "snapshot_id"}
        row["snapshot_id"] = snap.id
        for key, value in snap.tags.items():
            row[("ro:" if key in snap.read_only else "tag:") + key] = value
        rows.append(present(row))
    return rows


def present(record: dict) -> dict:
    return {k: v for k, v in record.items() if v is not None and not pd.isna(v)}


def invoke(server, *args, env=None):
    runner = CliRunner()
    return runner.invoke(main, ["export", *args], env={**env_for(server), **(env or {})})


def exported(server, tmp_path, *args, name="out.parquet"):
    """The rows of a Parquet export, its instants (stored as timestamps) as the API's text."""
    out = tmp_path / name
    result = invoke(server, "-o", str(out), *args)
    assert result.exit_code == 0, result.output
    return [
        {
            k: v.isoformat(timespec="microseconds") if isinstance(v, datetime) else v
            for k, v in r.items()
        }
        for r in pq.read_table(out).to_pylist()
    ]


# ---------------------------------------------------------------- the inventory


def test_export_is_exactly_the_store(inventory, tmp_path):
    inventory.reset()
    rows = exported(inventory, tmp_path)
    assert [present(r) for r in rows] == expected(inventory)
    keys = {k for r in rows for k in r if k.startswith(("tag:", "ro:"))}
    assert list(rows[0])[: len(INVENTORY_COLUMNS)] == list(INVENTORY_COLUMNS)
    assert list(rows[0])[len(INVENTORY_COLUMNS) :] == sorted(keys, key=lambda k: (k[0] == "r", k))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_csv_and_jsonl_hold_the_same_rows(inventory, tmp_path, suffix):
    inventory.reset()
    out = tmp_path / f"out{suffix}"
    assert invoke(inventory, "-o", str(out)).exit_code == 0
    if suffix == ".csv":
        frame = pd.read_csv(out, dtype=str, keep_default_na=False)
        rows = [{k: v for k, v in r.items() if v != ""} for r in frame.to_dict("records")]
    else:
        rows = [present(json.loads(line)) for line in out.read_text().splitlines()]
    want = [{k: str(v) for k, v in r.items()} for r in expected(inventory)]
    got = [{k: str(v) for k, v in r.items()} for r in rows]
    assert got == want


def test_stdout_is_csv_and_the_summary_goes_to_stderr(make_sandbox):
    server = make_sandbox(snapshots=3)
    result = CliRunner().invoke(main, ["export"], env=env_for(server))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith('"project_id","region_id","snapshot_id"') and len(lines) == 4
    assert "exported 3 rows (3 snapshots, 1 scope(s), 1 requests) to stdout" in result.stderr


def test_scopes_file_and_repeated_options_cover_every_scope(inventory, tmp_path):
    inventory.reset()
    scopes = tmp_path / "scopes.csv"
    scopes.write_text("project_id,region_id\n2,1\n1,1\n")
    rows = exported(inventory, tmp_path, "--scopes", str(scopes))
    assert [present(r) for r in rows] == expected(inventory, 2) + expected(inventory, 1)
    both = exported(inventory, tmp_path, "--project-id", "1", "--project-id", "2", name="b.parquet")
    assert [present(r) for r in both] == expected(inventory, 1) + expected(inventory, 2)


# ---------------------------------------------------------------- selection


WHERE = [
    ("`tag:env` == 'prod'", lambda r: r.get("tag:env") == "prod"),
    (
        "`tag:cost-center`.isna() and size > 100",
        lambda r: "tag:cost-center" not in r and r["size"] > 100,
    ),
    ("`ro:created-by`.notna()", lambda r: "ro:created-by" in r),
    (
        "created_at >= '2024-06-01' and created_at < '2024-07'",
        lambda r: "2024-06-01" <= r["created_at"] < "2024-07",
    ),
    ("`tag:no-such-key`.isna()", lambda r: True),
    ("`tag:no-such-key` == 'x'", lambda r: False),
]


@pytest.mark.parametrize("where, keep", WHERE, ids=[w for w, _ in WHERE])
def test_where_selects_rows(inventory, tmp_path, where, keep):
    inventory.reset()
    rows = exported(inventory, tmp_path, "--where", where)
    want = [r for r in expected(inventory) if keep(r)]
    assert [present(r) for r in rows] == want
    assert not any("no-such-key" in k for k in (rows[0] if rows else {}))


def test_columns_and_long(inventory, tmp_path):
    inventory.reset()
    rows = exported(inventory, tmp_path, "--columns", "snapshot_id,size,tag:*,tag:absent")
    assert list(rows[0]) == [
        "snapshot_id",
        "size",
        *sorted(k for k in {k for r in expected(inventory) for k in r} if k.startswith("tag:")),
        "tag:absent",
    ]
    long = exported(
        inventory, tmp_path, "--long", "--columns", "snapshot_id,tag:*,ro:*", name="l.parquet"
    )
    want = []
    for r in expected(inventory):
        tags = sorted(
            (kv for kv in r.items() if kv[0].startswith(("tag:", "ro:"))),
            key=lambda kv: (kv[0].startswith("ro:"), kv[0]),
        )
        untagged = [{"snapshot_id": r["snapshot_id"], "key": None, "value": None}]
        want += [
            {"snapshot_id": r["snapshot_id"], "key": k.split(":", 1)[1], "value": v}
            | {"read_only": k.startswith("ro:")}
            for k, v in tags
        ] or [untagged[0] | {"read_only": False}]
    assert any(r["key"] is None for r in want)  # the sandbox has untagged snapshots
    assert sorted(long, key=str) == sorted(want, key=str)
    assert [r["snapshot_id"] for r in long] == [r["snapshot_id"] for r in want]


def test_long_lists_an_untagged_snapshot_as_one_row_without_key(make_sandbox):
    server = make_sandbox(snapshots=4, api_key=API_KEY)
    snaps = server.store.snapshots()
    for at, snap in enumerate(snaps):
        snap.tags, snap.read_only = ({"env": "prod", "team": "a"}, set()) if at % 2 else ({}, set())
    result = invoke(server, "--long", "--columns", "snapshot_id,tag:*")
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(io.StringIO(result.stdout), dtype=str, keep_default_na=False)
    assert rows.values.tolist() == [
        [snaps[0].id, "", "", "false"],
        [snaps[1].id, "env", "prod", "false"],
        [snaps[1].id, "team", "a", "false"],
        [snaps[2].id, "", "", "false"],
        [snaps[3].id, "env", "prod", "false"],
        [snaps[3].id, "team", "a", "false"],
    ]
    frame = batchtag.export(
        long=True, base_url=server.base_url, api_key=API_KEY, project_id=1, region_id=1
    )
    assert frame[frame["key"].isna()]["snapshot_id"].tolist() == [snaps[0].id, snaps[2].id]
    assert frame["read_only"].dtype == bool and not frame["read_only"].any()


# ---------------------------------------------------------------- errors: exit codes, messages


@pytest.mark.parametrize(
    "args, message",
    [
        (["--where", "size >"], "error: --where: cannot parse `size >`"),
        (["--where", "colour == 'red'"], "error: --where: unknown column 'colour'"),
        (["--columns", "snapshot_id,colour"], "error: --columns: unknown column 'colour'"),
        (["-o", "out.xlsx"], "error: --output 'out.xlsx': unknown format '.xlsx'"),
        (["--project-id", "0"], "error: project_id: expected a positive integer, got 0"),
    ],
)
def test_bad_options_exit_2_before_any_request(inventory, args, message):
    inventory.reset()
    result = invoke(inventory, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert inventory.stats()["total_requests"] == 0
    assert CALLER.get() == "python"  # the CLI spelling does not leak into library calls


def test_no_scope_at_all_names_the_options(inventory):
    result = invoke(inventory, env={"GCORE_CLOUD_PROJECT_ID": ""})
    assert result.exit_code == 2
    assert "no scope: pass --project-id or set GCORE_CLOUD_PROJECT_ID" in result.stderr


def test_unknown_scope_exits_2_and_bad_credentials_exit_3(make_sandbox):
    server = make_sandbox(snapshots=5, api_key=API_KEY)
    missing = invoke(server, "--project-id", "9")
    assert missing.exit_code == 2
    assert "--project-id 9, --region-id 1: no such project/region" in missing.stderr
    denied = invoke(server, env={"GCORE_API_KEY": "wrong-key-$"})
    assert denied.exit_code == 3 and "credentials rejected (HTTP 401" in denied.stderr
    assert "wrong-key-$" not in denied.output + denied.stderr


def test_churn_during_an_export_warns_and_keeps_every_survivor_once(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=6000, churn_after=2, churn_create=300, churn_delete=400)
    rows = exported(server, tmp_path, "--summary-json", str(tmp_path / "s.json"))
    ids = [r["snapshot_id"] for r in rows]
    assert len(ids) == len(set(ids)) and set(server.store.ids()) <= set(ids)
    summary = json.loads((tmp_path / "s.json").read_text())
    (warning,) = summary["warnings"]
    assert "count 6000 -> 5900" in warning


TAGS = st.lists(
    st.fixed_dictionaries(
        {
            "key": st.sampled_from(["env", "team", "a:b", "é"]),
            "value": st.one_of(st.none(), st.text(max_size=3)),
        },
        optional={"read_only": st.one_of(st.booleans(), st.none())},
    ),
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.one_of(TAGS, st.none()), max_size=8), at=st.integers(0, 3))
def test_the_pivot_puts_each_rows_tags_in_their_columns(rows, at):
    """Every tag:/ro: cell is the row's own tag (the last of repeated keys), else null."""
    columns = {c: pa.nulls(len(rows), field_type(c)) for c in INVENTORY_COLUMNS}
    batch = pa.record_batch(columns | {"tags": pa.array(rows, TAG_LIST)})
    batch = batch.slice(min(at, len(rows)))  # a batch need not start at offset 0
    tags = batch.column("tags").to_pylist()
    found = {(t["key"], bool(t.get("read_only"))) for row in tags for t in row or []}
    assert tag_keys(batch) == found
    user, ro = split_keys(found | {("absent", False)})
    wide = wide_table(batch, user, ro)
    for row, cells in enumerate(wide.to_pylist()):
        own = {}
        for tag in tags[row] or []:
            name = ("ro:" if tag.get("read_only") else "tag:") + tag["key"]
            own[name] = tag["value"]
        assert {k: v for k, v in cells.items() if k.startswith(("tag:", "ro:"))} == {
            name: own.get(name) for name in [f"tag:{k}" for k in user] + [f"ro:{k}" for k in ro]
        }


def test_snapshots_whose_ids_differ_only_in_case_are_two_rows(make_sandbox, tmp_path):
    """Ids that are not UUIDs are compared exactly: they used to merge into one row (and
    the listing looked inconsistent)."""
    server = make_sandbox(snapshots=3)
    scope = server.store.scopes[(1, 1)]
    for sid, team in (("snap-a", "lower"), ("snap-A", "upper")):
        scope.add(replace(scope.snapshot(0), id=sid, tags={"team": team}, read_only=set()))
    rows = exported(server, tmp_path, "--columns", "snapshot_id,tag:team")
    assert [(r["snapshot_id"], r["tag:team"]) for r in rows][-2:] == [
        ("snap-a", "lower"),
        ("snap-A", "upper"),
    ]
    assert len(rows) == 5 and server.stats()["endpoints"] == {"list": 1}


def test_a_listing_that_never_settles_exits_1_and_keeps_what_was_seen(make_sandbox, tmp_path):
    """Someone deletes and creates snapshots all through the read: after its re-reads the
    listing is still inconsistent. The file holds every snapshot seen, the last line says
    about how many may be missing, the exit code is 1 (0 would let a scheduler trust it)."""
    server = make_sandbox(
        snapshots=6000, churn_after=2, churn_every=2, churn_create=50, churn_delete=100
    )
    out, summary = tmp_path / "inventory.parquet", tmp_path / "summary.json"
    result = invoke(server, "-o", str(out), "--summary-json", str(summary))
    assert result.exit_code == 1, result.output
    saved = json.loads(summary.read_text())
    assert saved["exit_code"] == 1 and saved["missing"] > 0
    ids = pq.read_table(out).column("snapshot_id").to_pylist()
    assert len(ids) == len(set(ids)) == saved["snapshots"]
    assert result.stderr.splitlines()[-1] == (
        f"error: the listing kept changing while it was re-read: {out} holds the {len(ids)}"
        f" snapshots seen, ~{saved['missing']} may be missing; export again when the scope"
        " is quieter"
    )
    assert "read in 3 passes" in saved["warnings"][0]
    frame = batchtag.export(base_url=server.base_url, api_key=API_KEY, project_id=1, region_id=1)
    assert frame.attrs["export"]["missing"] > 0  # Python: the frame, and the estimate


CELLS = st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "é"])), min_size=6, max_size=6)


@settings(max_examples=200, deadline=None)
@given(
    columns=st.dictionaries(st.sampled_from(["tag:x", "tag:y", "ro:x", "ro:z"]), CELLS),
    kept=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_long_rows_are_each_snapshots_tags_in_row_then_column_order(columns, kept):
    """`--long` rows: per snapshot (in the frame's order, after a --where cut), its tags in
    column order, or one row without key when it has none; only the kept columns, key,
    value and read_only."""
    wide = pd.DataFrame({"snapshot_id": [f"s{i}" for i in range(6)], "size": range(6), **columns})
    wide = wide[kept]  # what a --where leaves: a cut index
    got = [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in long_frame(wide, ["snapshot_id"]).to_dict("records")
    ]
    want = []
    for row in wide.to_dict("records"):
        tags = [c for c in columns if pd.notna(row[c])]
        want += [
            {"snapshot_id": row["snapshot_id"], "key": c.split(":")[1], "value": row[c]}
            | {"read_only": c.startswith("ro:")}
            for c in tags
        ] or [{"snapshot_id": row["snapshot_id"], "key": None, "value": None, "read_only": False}]
    assert got == want


def test_a_snapshot_with_many_tags_and_many_keys_export_every_cell(make_sandbox, tmp_path):
    """One snapshot with 600 tags, 300 others with a key of their own: every cell, wide
    and long, is the store's."""
    server = make_sandbox(snapshots=301)
    snaps = server.store.snapshots()
    snaps[0].tags = {f"k{i:03d}": f"v{i}" for i in range(600)}
    for i, snap in enumerate(snaps[1:]):
        snap.tags = {f"own-{i:03d}": "x"}
    rows = exported(server, tmp_path)
    assert [present(r) for r in rows] == expected(server)
    long = exported(server, tmp_path, "--long", "--columns", "snapshot_id,tag:*", name="l.parquet")
    assert [(r["snapshot_id"], r["key"], r["value"]) for r in long] == [
        (s.id, k, v) for s in snaps for k, v in sorted(s.tags.items())
    ]


def spoil_second_page(monkeypatch, server, size):
    """The sandbox's second list page with one snapshot's size replaced by `size`."""
    listed = server.store.list

    def spoiled(*args, **kwargs):
        count, results = listed(*args, **kwargs)
        if len(args) > 3 and args[3] == 1000:
            results[3] = {**results[3], "size": size}
        return count, results

    monkeypatch.setattr(server.store, "list", spoiled)


def test_a_float_size_is_read_as_the_json_reader_reads_it(make_sandbox, monkeypatch, tmp_path):
    server = make_sandbox(snapshots=1500)
    spoil_second_page(monkeypatch, server, 250.0)
    rows = exported(server, tmp_path)
    assert len(rows) == 1500 and rows[1003]["size"] == 250


def test_a_page_that_fits_no_reader_is_one_line_and_no_file(make_sandbox, monkeypatch, tmp_path):
    server = make_sandbox(snapshots=1500)
    spoil_second_page(monkeypatch, server, "huge")
    result = invoke(server, "-o", str(tmp_path / "out.parquet"))
    assert result.exit_code == 1 and not (tmp_path / "out.parquet").exists()
    (line,) = result.stderr.strip().splitlines()
    assert "HTTP 200 response unusable: a snapshot does not fit the API's fields" in line
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- Python


def test_python_frame_has_tag_columns_and_a_tags_dict(inventory):
    inventory.reset()
    frame = batchtag.export(
        project_id=1, region_id=1, base_url=inventory.base_url, api_key=API_KEY, where="size >= 500"
    )
    want = [r for r in expected(inventory) if r["size"] >= 500]
    assert frame["snapshot_id"].tolist() == [r["snapshot_id"] for r in want]
    user = [{k[4:]: v for k, v in r.items() if k.startswith("tag:")} for r in want]
    assert frame["tags"].tolist() == user
    assert frame.attrs["export"]["requests"] == 3


def test_python_export_inside_a_running_loop(inventory):
    inventory.reset()

    async def notebook_cell():
        sync = batchtag.export(
            project_id=1, region_id=1, base_url=inventory.base_url, api_key=API_KEY
        )
        awaited = await batchtag.export_async(
            project_id=[1], region_id=[1], base_url=inventory.base_url, api_key=API_KEY
        )
        return sync, awaited

    sync, awaited = asyncio.run(notebook_cell())
    assert len(sync) == 2500 and sync.drop(columns="tags").equals(awaited.drop(columns="tags"))


# ---------------------------------------------------------------- round trip


@pytest.mark.skipif(
    "empty_deletes" not in {f.name for f in fields(ApplyOptions)},
    reason="needs --empty-deletes (apply option from the manifest/cli helpers)",
)
def test_export_edit_apply_changes_exactly_the_edited_cells(make_sandbox, tmp_path):
    server = make_sandbox(snapshots=300)
    out = tmp_path / "inventory.csv"
    assert invoke(server, "-o", str(out)).exit_code == 0
    before = {s.id: (s.name, dict(s.tags)) for s in server.store.snapshots()}
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    has_env = frame.index[frame["tag:env"] != ""]
    no_env = frame.index[frame["tag:env"] == ""]
    changed, emptied, added = has_env[0], has_env[1], no_env[0]
    frame.loc[changed, "tag:env"] = "edited"
    frame.loc[emptied, "tag:env"] = ""
    frame.loc[added, "tag:env"] = "added"
    edited = tmp_path / "edited.csv"
    frame.to_csv(edited, index=False)
    result = CliRunner().invoke(
        main,
        ["apply", str(edited), "--empty-deletes", "--report", str(tmp_path / "r.csv"), "--yes"],
        env=env_for(server),
    )
    assert result.exit_code == 0, result.output
    want = {sid: tags for sid, (_, tags) in before.items()}
    want[frame.loc[changed, "snapshot_id"]]["env"] = "edited"
    del want[frame.loc[emptied, "snapshot_id"]]["env"]
    want[frame.loc[added, "snapshot_id"]]["env"] = "added"
    assert {s.id: s.tags for s in server.store.snapshots()} == want
    assert {s.id: s.name for s in server.store.snapshots()} == {k: v[0] for k, v in before.items()}
    report = pd.read_csv(tmp_path / "r.csv", dtype=str, keep_default_na=False)
    assert set(report["status"]) <= {"ok", "noop"}


def test_an_existing_output_is_refused_unless_overwrite(make_sandbox, tmp_path):
    """Like a report: -o never replaces a file silently (exit 2, one line, no request)."""
    server = make_sandbox(snapshots=5)
    out = tmp_path / "inventory.csv"
    out.write_text("last week's inventory\n")
    result = invoke(server, "-o", str(out))
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"error: --output {out} already exists: choose another --output, or pass --overwrite"
        " to replace it"
    ]
    assert server.stats()["total_requests"] == 0
    assert out.read_text() == "last week's inventory\n"
    python = {"base_url": server.base_url, "api_key": API_KEY, "project_id": 1, "region_id": 1}
    with pytest.raises(batchtag.UsageError, match=r"already exists: .* overwrite=True"):
        batchtag.export(output=out, **python)
    assert server.stats()["total_requests"] == 0
    assert invoke(server, "-o", str(out), "--overwrite").exit_code == 0
    assert len(pd.read_csv(out)) == 5
    assert len(batchtag.export(output=out, overwrite=True, **python)) == 5


def test_an_output_that_cannot_be_written_is_one_line_exit_2_before_any_request(
    make_sandbox, tmp_path
):
    server = make_sandbox(snapshots=5)
    (tmp_path / "m.csv").write_text("a file, not a folder\n")
    for target in ("/proc/e.csv", str(tmp_path / "m.csv" / "x.parquet")):
        result = invoke(server, "-o", target)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: cannot write --output {target}: ")
    assert server.stats()["total_requests"] == 0
    assert (tmp_path / "m.csv").read_text() == "a file, not a folder\n"
