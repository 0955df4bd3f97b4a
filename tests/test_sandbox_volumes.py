"""The sandbox's volumes: seeded beside the snapshots, listed, filtered by tag, patched."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import aiohttp
import pytest
from sandbox_calls import (
    BASE,
    VOLUMES,
    assert_gcore_error,
    call,
    list_all,
    one,
    tag_map,
    volume,
)

import batchtag
from batchtag.sandbox import SandboxConfig, SandboxServer

VOLUME_FIELDS = {
    "id",
    "name",
    "size",
    "status",
    "volume_type",
    "bootable",
    "is_root_volume",
    "attachments",
    "limiter_stats",
    "creator_task_id",
    "task_id",
    "project_id",
    "region",
    "region_id",
    "created_at",
    "updated_at",
    "tags",
}


@pytest.fixture(scope="module")
def wide():
    """2,000 snapshots (500 volumes) in each of two scopes; only read, never changed."""
    config = SandboxConfig(snapshots=2000, project_ids=[1, 2], region_ids=[1])
    with SandboxServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def listed(wide):
    """Every volume and snapshot of scope 1/1, as the list endpoints answer."""
    return list_all(wide, f"{VOLUMES}/1/1")[1], list_all(wide, f"{BASE}/1/1")[1]


# ---------------------------------------------------------------- shape and seeded data


def test_volumes_have_the_reference_fields_and_realistic_tags(listed):
    volumes, _ = listed
    assert len(volumes) == 500  # a quarter of the snapshots by default
    assert len({v["id"] for v in volumes}) == 500
    for vol in volumes:
        assert set(vol) == VOLUME_FIELDS
        assert str(uuid.UUID(vol["id"])) == vol["id"] and uuid.UUID(vol["id"]).version == 4
        assert (vol["project_id"], vol["region_id"], vol["region"]) == (1, 1, "Luxembourg-2")
        assert isinstance(vol["size"], int) and vol["size"] > 0
        assert datetime.fromisoformat(vol["updated_at"]) >= datetime.fromisoformat(
            vol["created_at"]
        )
        for tag in vol["tags"]:
            assert set(tag) == {"key", "value", "read_only"}
        for attachment in vol["attachments"]:
            assert attachment["volume_id"] == vol["id"]
        assert (vol["status"] == "in-use") <= bool(vol["attachments"])
    with_user = [v for v in volumes if any(not t["read_only"] for t in v["tags"])]
    with_read_only = [v for v in volumes if any(t["read_only"] for t in v["tags"])]
    assert 0.6 < len(with_user) / 500 < 0.95
    assert 0.15 < len(with_read_only) / 500 < 0.45
    user_keys = {t["key"] for v in volumes for t in v["tags"] if not t["read_only"]}
    assert {"cost-center", "team", "env"} <= user_keys
    assert any(v["attachments"] for v in volumes) and any(not v["attachments"] for v in volumes)


def test_every_snapshot_points_at_a_volume_or_a_deleted_one(wide, listed):
    volumes, snapshots = listed
    ids = {v["id"] for v in volumes}
    gone = {s["volume_id"] for s in snapshots} - ids
    orphans = [s for s in snapshots if s["volume_id"] in gone]
    assert 0.01 < len(orphans) / len(snapshots) < 0.06  # a few percent
    assert len({s["volume_id"] for s in snapshots} & ids) > 400  # most volumes have snapshots
    for vid in sorted(gone)[:10]:
        assert_gcore_error(call(wide, "GET", volume(vid)), 404, "NotFoundError")
    other_scope = {v["id"] for v in list_all(wide, f"{VOLUMES}/2/1")[1]}
    assert not gone & other_scope and not ids & other_scope


def test_volumes_are_seeded_from_the_seed_and_the_count_is_a_knob(make_sandbox):
    first, again = make_sandbox(seed=5, snapshots=40), make_sandbox(seed=5, snapshots=40)
    other = make_sandbox(seed=6, snapshots=40)
    assert call(first, "GET", f"{VOLUMES}/1/1").body == call(again, "GET", f"{VOLUMES}/1/1").body
    assert call(first, "GET", f"{BASE}/1/1").body == call(again, "GET", f"{BASE}/1/1").body
    assert call(first, "GET", f"{VOLUMES}/1/1").body != call(other, "GET", f"{VOLUMES}/1/1").body
    assert call(first, "GET", f"{VOLUMES}/1/1").body["count"] == 10

    seven = make_sandbox(seed=5, snapshots=40, volumes=7)
    assert call(seven, "GET", f"{VOLUMES}/1/1").body["count"] == 7
    for snap_then, snap_now in zip(
        call(first, "GET", f"{BASE}/1/1").body["results"],
        call(seven, "GET", f"{BASE}/1/1").body["results"],
        strict=True,
    ):  # the number of volumes changes the snapshots' volume_id, nothing else
        assert {**snap_then, "volume_id": ""} == {**snap_now, "volume_id": ""}
    assert call(make_sandbox(snapshots=2), "GET", f"{VOLUMES}/1/1").body["count"] == 1
    no_volumes = make_sandbox(snapshots=5, volumes=0)
    assert call(no_volumes, "GET", f"{VOLUMES}/1/1").body == {"count": 0, "results": []}
    for snap in call(no_volumes, "GET", f"{BASE}/1/1").body["results"]:
        assert call(no_volumes, "GET", volume(snap["volume_id"])).status == 404


# ---------------------------------------------------------------- the official SDK parses them


def test_the_sdk_volume_model_parses_every_answer(wide, listed, make_sandbox):
    types = pytest.importorskip("gcore.types.cloud")
    volumes, _ = listed
    for vol in volumes:
        parsed = types.Volume.model_validate(vol)
        assert parsed.id == vol["id"] and len(parsed.tags) == len(vol["tags"])
    for vol in volumes[:50]:
        types.Volume.model_validate(call(wide, "GET", volume(vol["id"])).body)
    server = make_sandbox(snapshots=8)
    vid = call(server, "GET", f"{VOLUMES}/1/1").body["results"][0]["id"]
    patched = call(server, "PATCH", volume(vid), json={"name": "renamed", "tags": {"k": "v"}})
    assert types.Volume.model_validate(patched.body).name == "renamed"


def test_the_sdk_snapshot_model_parses_every_answer(wide, listed, make_sandbox):
    types = pytest.importorskip("gcore.types.cloud")
    _, snapshots = listed
    for snap in snapshots:
        assert types.Snapshot.model_validate(snap).volume_id == snap["volume_id"]
    types.Snapshot.model_validate(call(wide, "GET", one(snapshots[0]["id"])).body)
    server = make_sandbox(snapshots=3, lock_rate=1.0)
    types.Snapshot.model_validate(call(server, "GET", f"{BASE}/1/1").body["results"][0])


def test_the_sdk_client_lists_filters_gets_and_updates_volumes(wide, listed):
    gcore = pytest.importorskip("gcore")
    volumes, _ = listed
    client = gcore.Gcore(api_key="k", base_url=wide.base_url, max_retries=0)
    every = list(client.cloud.volumes.list(project_id=1, region_id=1, limit=150))
    assert [v.id for v in every] == [v["id"] for v in volumes]  # pages by offset and count
    wanted = {"team": "data"}
    found = client.cloud.volumes.list(
        project_id=1,
        region_id=1,
        tag_key=["cost-center", "env"],
        tag_key_value=json.dumps(wanted),
    )
    expected = [
        v["id"]
        for v in volumes
        if {"cost-center", "env"} <= set(tag_map(v)) and tag_map(v).get("team") == "data"
    ]
    assert expected and found.count == len(expected)
    assert [v.id for v in found.results] == expected
    got = client.cloud.volumes.get(volume_id=volumes[0]["id"], project_id=1, region_id=1)
    assert got.model_dump(mode="json", exclude_none=True) == gcore.types.cloud.Volume(
        **volumes[0]
    ).model_dump(mode="json", exclude_none=True)


# ---------------------------------------------------------------- list: pages and filters


def test_pages_cover_every_volume_once_and_count_is_the_total(wide, listed):
    volumes, _ = listed
    count, paged = list_all(wide, f"{VOLUMES}/1/1", limit=64)
    assert count == 500 and paged == volumes
    assert call(wide, "GET", f"{VOLUMES}/1/1", params={"offset": 600}).body == {
        "count": 500,
        "results": [],
    }


def test_default_and_maximum_limit_is_1000(make_sandbox):
    server = make_sandbox(snapshots=10, volumes=1200)
    assert len(call(server, "GET", f"{VOLUMES}/1/1").body["results"]) == 1000
    for params, field in (({"limit": 1001}, "limit"), ({"offset": -1}, "offset")):
        reply = call(server, "GET", f"{VOLUMES}/1/1", params=params)
        assert_gcore_error(reply, 400, "ValidationError")
        assert field in reply.body["invalid_fields"]


@pytest.mark.parametrize(
    "keys, pairs",
    [
        (["team"], {}),
        (["team", "cost-center"], {}),
        (["created-by"], {}),  # read-only tags count too
        ([], {"env": "prod"}),
        ([], {"env": "prod", "cost-center": "cc-1001"}),
        (["owner"], {"team": "data"}),
        (["no-such-key"], {}),
        ([], {"team": "no-such-value"}),
    ],
)
def test_tag_filters_keep_volumes_having_every_key_and_pair(wide, listed, keys, pairs):
    volumes, _ = listed
    query = [("tag_key", k) for k in keys]
    if pairs:
        query.append(("tag_key_value", json.dumps(pairs)))
    count, found = list_all(wide, f"{VOLUMES}/1/1", limit=40, query=query)
    expected = [
        v for v in volumes if set(keys) <= set(tag_map(v)) and pairs.items() <= tag_map(v).items()
    ]
    assert count == len(expected) and found == expected


@pytest.mark.parametrize("text", ["team=data", "[1]", '{"team": 1}', '"data"', "{"])
def test_a_malformed_tag_key_value_is_a_400(wide, text):
    reply = call(wide, "GET", f"{VOLUMES}/1/1", params={"tag_key_value": text})
    assert_gcore_error(reply, 400, "ValidationError")
    assert "tag_key_value" in reply.body["invalid_fields"]


# ---------------------------------------------------------------- get, patch, helper


def test_get_answers_the_listed_object_and_404_elsewhere(wide, listed):
    volumes, snapshots = listed
    first = volumes[0]
    assert call(wide, "GET", volume(first["id"])).body == first
    assert call(wide, "GET", volume(first["id"].upper())).body == first
    for path in (
        volume(first["id"], 2, 1),  # another project's
        volume(first["id"], 9, 9),
        volume(str(uuid.uuid4())),
        volume(snapshots[0]["id"]),  # a snapshot is no volume
        volume("not-a-uuid"),
    ):
        for method in ("GET", "PATCH"):
            reply = call(wide, method, path, json={"name": "abc"})
            assert_gcore_error(reply, 404, "NotFoundError")
    assert_gcore_error(call(wide, "GET", f"{VOLUMES}/9/9"), 404, "NotFoundError")


def test_patch_is_a_merge_patch_that_keeps_read_only_tags(make_sandbox):
    server = make_sandbox(snapshots=200)
    vol = next(
        v for v in list_all(server, f"{VOLUMES}/1/1")[1] if any(t["read_only"] for t in v["tags"])
    )
    path = volume(vol["id"])
    read_only = {t["key"]: t["value"] for t in vol["tags"] if t["read_only"]}
    user = {t["key"]: t["value"] for t in vol["tags"] if not t["read_only"]}
    ro_key = next(iter(read_only))

    body = {"tags": {"cost-center": "cc-9", ro_key: "mine", **dict.fromkeys(user, None)}}
    changed = call(server, "PATCH", path, json=body)
    assert changed.status == 200
    assert tag_map(changed.body) == {**read_only, "cost-center": "cc-9"}
    assert changed.body["updated_at"] > vol["updated_at"]
    assert call(server, "GET", path).body == changed.body
    assert call(server, "PATCH", path, json={"tags": {"cost-center": "cc-9"}}).body == changed.body

    cleared = call(server, "PATCH", path, json={"tags": None})
    assert tag_map(cleared.body) == read_only
    assert all(t["read_only"] for t in cleared.body["tags"])
    bad = call(server, "PATCH", path, json={"tags": {"has space": "v"}, "size": 5})
    assert_gcore_error(bad, 400, "ValidationError")
    assert set(bad.body["invalid_fields"]) == {"tags", "size"}
    assert call(server, "GET", path).body == cleared.body
    stats = server.stats()
    assert stats["volume_writes"] == 2 and stats["writes"] == 0


def test_a_volume_tag_changed_between_runs_shows_in_lists_and_filters():
    with batchtag.sandbox(snapshots=40, project_ids=[1, 2]) as sb:
        vol = sb.volumes(2, 1)[3]
        before = sb.stats()
        after = sb.set_volume_tags(vol["id"], {"team": "moved-here", "env": None})
        assert tag_map(after)["team"] == "moved-here" and "env" not in tag_map(after)
        assert sb.volumes(2, 1)[3] == after
        assert sb.stats() == before  # the helper is no request
        url = f"{sb.url}{VOLUMES}/2/1?tag_key_value=" + json.dumps({"team": "moved-here"})
        found = fetch(url, sb.api_key)
        assert found == {"count": 1, "results": [after]}
        with pytest.raises(KeyError):
            sb.set_volume_tags(str(uuid.uuid4()), {"team": "x"})
        with pytest.raises(ValueError, match="has space"):
            sb.set_volume_tags(vol["id"], {"has space": "x"})
        sb.reset()
        assert sb.volumes(2, 1)[3] == vol


def fetch(url: str, api_key: str) -> dict:
    import asyncio

    async def go() -> dict:
        async with aiohttp.ClientSession(headers={"Authorization": f"APIKey {api_key}"}) as s:
            async with s.get(url) as response:
                assert response.status == 200
                return await response.json()

    return asyncio.run(go())


# ---------------------------------------------------------------- knobs and stats


def test_auth_faults_and_stats_cover_volume_requests(make_sandbox):
    server = make_sandbox(snapshots=8)
    vid = call(server, "GET", f"{VOLUMES}/1/1").body["results"][0]["id"]
    assert_gcore_error(
        call(server, "GET", f"{VOLUMES}/1/1", headers={}), 401, "AuthenticationError"
    )
    call(server, "GET", volume(vid))
    call(server, "GET", volume(str(uuid.uuid4())))
    call(server, "PATCH", volume(vid), json={"name": "abc"})
    call(server, "GET", f"{BASE}/1/1")
    stats = server.stats()
    assert stats["resources"]["volumes"] == {
        "requests": {"GET": 4, "PATCH": 1},
        "responses": {"200": 3, "401": 1, "404": 1},
    }
    assert stats["resources"]["snapshots"] == {"requests": {"GET": 1}, "responses": {"200": 1}}
    assert stats["requests"] == {"GET": 5, "PATCH": 1}
    assert stats["endpoints"] == {"volume_list": 1, "volume_get": 2, "volume_patch": 1, "list": 1}

    failing = make_sandbox(snapshots=8, error_rate=1.0)
    assert call(failing, "GET", f"{VOLUMES}/1/1").status in (500, 502, 503)
    limited = make_sandbox(snapshots=8, rate_limit=1, retry_after=True)
    statuses = [call(limited, "GET", f"{VOLUMES}/1/1").status for _ in range(3)]
    assert 429 in statuses


def test_created_snapshots_point_at_the_scopes_volumes(sandbox):
    ids = {v["id"] for v in call(sandbox, "GET", f"{VOLUMES}/1/1").body["results"]}
    created = sandbox.mutate(create=60)["created"]
    volumes_of_new = {call(sandbox, "GET", one(sid)).body["volume_id"] for sid in created}
    assert len(volumes_of_new & ids) > len(volumes_of_new) * 0.8
