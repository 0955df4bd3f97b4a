"""`export --with volume` / `batchtag.export(with_volume=True)` against the sandbox: each
snapshot gets its own volume's name and user tags (NA when the volume is gone), in every
output format, under --where, --columns and --long, over several scopes, for one list
pass of volumes per scope beside the snapshot pages."""

from __future__ import annotations

import math

import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers import invoke_on

import batchtag
from batchtag.errors import UsageError

SNAPSHOTS = 1200  # per scope: 2 snapshot pages, 300 volumes (1 page)
SCOPES = [(1, 1), (2, 1)]


@pytest.fixture(scope="module")
def sb():
    """Two scopes; only read, never changed."""
    with batchtag.sandbox(snapshots=SNAPSHOTS, project_ids=[1, 2], env=False) as running:
        yield running


def connection(sb, **options) -> dict:
    return {"base_url": sb.url, "api_key": sb.api_key, "project_id": 1, "region_id": 1, **options}


def user_tags(item: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in item["tags"] if not t["read_only"]}


def expected_join(sb, project_id: int = 1, region_id: int = 1) -> dict[str, dict]:
    """Per snapshot id: its volume's name and user tags from the scope's own volume list
    (None when the volume is gone), computed from the sandbox's answers."""
    volumes = {v["id"]: v for v in sb.volumes(project_id, region_id)}
    out = {}
    for snap in sb.snapshots(project_id, region_id):
        volume = volumes.get(snap["volume_id"])
        out[snap["id"]] = (
            None
            if volume is None
            else {
                "name": volume["name"],
                **{f"volume_tag:{k}": v for k, v in user_tags(volume).items()},
            }
        )
    return out


def joined(frame: pd.DataFrame) -> dict[str, dict | None]:
    """Per snapshot id of an export: what it holds of the volume (None: all NA)."""
    columns = [c for c in frame.columns if c.startswith("volume_tag:")]
    out = {}
    for row in frame.to_dict("records"):
        if pd.isna(row["volume_name"]):
            assert all(pd.isna(row[c]) for c in columns), row
            out[row["snapshot_id"]] = None
        else:
            tags = {c: row[c] for c in columns if not pd.isna(row[c])}
            out[row["snapshot_id"]] = {"name": row["volume_name"], **tags}
    return out


def counted(sb, before: dict) -> dict[str, int]:
    """GETs per resource since `before` (a stats snapshot)."""
    now = sb.stats()["resources"]
    return {
        name: now[name]["requests"].get("GET", 0)
        - before.get(name, {}).get("requests", {}).get("GET", 0)
        for name in now
        if now[name]["requests"].get("GET", 0)
        != before.get(name, {}).get("requests", {}).get("GET", 0)
    }


def test_each_snapshot_gets_its_own_scopes_volume_in_one_listing_per_scope(sb):
    before = sb.stats()["resources"]
    frame = batchtag.export(**connection(sb, project_id=[1, 2]), with_volume=True)
    volumes = {scope: len(sb.volumes(*scope)) for scope in SCOPES}
    pages = len(SCOPES) * math.ceil(SNAPSHOTS / 1000)
    volume_pages = sum(math.ceil(n / 1000) for n in volumes.values())
    assert counted(sb, before) == {"snapshots": pages, "volumes": volume_pages}
    info = frame.attrs["export"]
    assert info["requests"] == pages + volume_pages and info["volume_requests"] == volume_pages
    assert info["volumes"] == sum(volumes.values())
    for project_id, region_id in SCOPES:
        part = frame[frame["project_id"] == project_id]
        got, want = joined(part), expected_join(sb, project_id, region_id)
        assert got == want
        assert 0 < sum(v is None for v in got.values()) < len(got) / 10  # a few orphans
    # the volume columns come after the snapshot's own, keys in order
    columns = list(frame.columns)
    first = columns.index("volume_name")
    assert all(not c.startswith(("tag:", "ro:")) for c in columns[first:])
    keys = [c for c in columns if c.startswith("volume_tag:")]
    assert keys == sorted(keys) and columns[first + 1 : first + 1 + len(keys)] == keys


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_cli_writes_the_volume_columns_in_every_format(sb, tmp_path, suffix):
    out = tmp_path / f"inventory{suffix}"
    result = invoke_on(sb, ["export", "--with", "volume", "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "volumes, 1 scope(s)" in result.stderr
    if suffix == ".csv":
        frame = pd.read_csv(out, dtype=str, keep_default_na=False).replace("", None)
    elif suffix == ".parquet":
        frame = pq.read_table(out).to_pandas()
    else:
        frame = pd.read_json(out, lines=True, dtype=False)
    assert joined(frame) == expected_join(sb)


def test_where_and_columns_read_the_volume_columns(sb):
    want = expected_join(sb)
    data = {sid for sid, v in want.items() if v and v.get("volume_tag:team") == "data"}
    frame = batchtag.export(
        **connection(sb),
        with_volume=True,
        where="`volume_tag:team` == 'data'",
        columns="snapshot_id,volume_*",
    )
    assert set(frame["snapshot_id"]) == data
    shown = [c for c in frame.columns if c != "tags"]
    assert shown[:3] == ["snapshot_id", "volume_id", "volume_name"]  # volume_* matches both
    assert all(c.startswith("volume_tag:") for c in shown[3:]) and len(shown) > 3
    gone = batchtag.export(**connection(sb), with_volume=True, where="volume_name.isna()")
    assert set(gone["snapshot_id"]) == {sid for sid, v in want.items() if v is None}


def test_long_keeps_the_volume_columns_on_each_tag_row(sb):
    frame = batchtag.export(
        **connection(sb), with_volume=True, long=True, columns="snapshot_id,volume_name,tag:*"
    )
    assert list(frame.columns) == ["snapshot_id", "volume_name", "key", "value", "read_only"]
    want = expected_join(sb)
    names = frame.drop_duplicates("snapshot_id").set_index("snapshot_id")["volume_name"]
    for sid, name in names.items():
        assert (None if pd.isna(name) else name) == (want[sid] or {}).get("name")


def test_without_the_volumes_nothing_is_listed_and_volume_columns_are_refused(sb):
    before = sb.stats()["resources"]
    frame = batchtag.export(**connection(sb))
    assert "volume_name" not in frame.columns and "volumes" not in counted(sb, before)
    assert "volumes" not in frame.attrs["export"]
    for option in (
        {"where": "`volume_tag:team` == 'data'"},
        {"columns": "snapshot_id,volume_name"},
    ):
        with pytest.raises(UsageError, match="add with_volume=True to join the volumes"):
            batchtag.export(**connection(sb), **option)
    before = sb.stats()["total_requests"]
    result = invoke_on(sb, ["export", "--where", "volume_name.isna()"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: --where: 'volume_name' is a column of the snapshot's volume: "
        "add --with volume to join the volumes"
    )
    typo = invoke_on(sb, ["export", "--with", "volumes"])
    assert typo.exit_code == 2 and "'volumes' is not 'volume'" in typo.output
    assert sb.stats()["total_requests"] == before
