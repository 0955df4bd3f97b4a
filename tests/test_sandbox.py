"""The sandbox: Gcore API semantics, error shapes, pagination, fault knobs, stats."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchtag.sandbox import SandboxConfig, SandboxServer, SnapshotStore
from batchtag.sandbox.cli import sandbox_command
from batchtag.sandbox.store import tags_of

AUTH = {"Authorization": "APIKey test$token"}
BASE = "/cloud/v1/snapshots"
SAMPLE = Path(__file__).parent.parent / "samples" / "snapshots-long.csv"
STATUSES = {
    "available",
    "backing-up",
    "creating",
    "deleted",
    "deleting",
    "error",
    "error_deleting",
    "restoring",
    "unmanaging",
}


class Reply:
    def __init__(self, status: int, headers, body):
        self.status = status
        self.headers = headers
        self.body = body


async def send(session: aiohttp.ClientSession, method: str, path: str, **kwargs) -> Reply:
    async with session.request(method, path, **kwargs) as resp:
        text = await resp.text()
        body = json.loads(text) if text else None
        return Reply(resp.status, resp.headers, body)


def call(server: SandboxServer, method: str, path: str, headers=AUTH, **kwargs) -> Reply:
    async def go() -> Reply:
        async with aiohttp.ClientSession(server.base_url, headers=headers) as session:
            return await send(session, method, path, **kwargs)

    return asyncio.run(go())


def call_many(server: SandboxServer, requests: list[tuple[str, str]], headers=AUTH) -> list[Reply]:
    """Send (method, path) requests concurrently."""

    async def go() -> list[Reply]:
        async with aiohttp.ClientSession(server.base_url, headers=headers) as session:
            return await asyncio.gather(*(send(session, m, p) for m, p in requests))

    return asyncio.run(go())


def one(sid: str, project_id: int = 1, region_id: int = 1) -> str:
    return f"{BASE}/{project_id}/{region_id}/{sid}"


def snapshot_with(server: SandboxServer, read_only: bool, user_tags: bool = True):
    for snap in server.store.snapshots():
        has_user = bool(set(snap.tags) - snap.read_only)
        if bool(snap.read_only) == read_only and has_user == user_tags:
            return snap
    raise AssertionError("the seeded store should hold such a snapshot")


def assert_gcore_error(reply: Reply, status: int, exception_class: str) -> None:
    assert reply.status == status
    assert reply.body["exception_class"] == exception_class
    assert isinstance(reply.body["message"], str) and reply.body["message"]
    assert uuid.UUID(reply.body["request_id"]).version == 4


@pytest.fixture(scope="module")
def shared_sandbox():
    """One sandbox for the property test (hypothesis dislikes function-scoped fixtures)."""
    with SandboxServer(SandboxConfig(snapshots=30)) as server:
        yield server


# ---------------------------------------------------------------- response shape and data


def assert_snapshot_shape(snap: dict) -> None:
    assert set(snap) == {
        "id",
        "name",
        "description",
        "status",
        "size",
        "volume_id",
        "project_id",
        "region",
        "region_id",
        "created_at",
        "updated_at",
        "creator_task_id",
        "task_id",
        "tags",
    }
    for key in ("id", "volume_id", "creator_task_id"):
        assert uuid.UUID(snap[key]).version == 4
        assert str(uuid.UUID(snap[key])) == snap[key]
    assert isinstance(snap["name"], str) and 3 <= len(snap["name"]) <= 63
    assert snap["description"] is None or isinstance(snap["description"], str)
    assert snap["status"] in STATUSES
    assert isinstance(snap["size"], int) and snap["size"] > 0
    assert isinstance(snap["project_id"], int) and isinstance(snap["region_id"], int)
    assert isinstance(snap["region"], str) and snap["region"]
    created = datetime.fromisoformat(snap["created_at"])
    updated = datetime.fromisoformat(snap["updated_at"])
    assert created.utcoffset() is not None and updated >= created
    assert snap["task_id"] is None or uuid.UUID(snap["task_id"]).version == 4
    for tag in snap["tags"]:
        assert set(tag) == {"key", "value", "read_only"}
        assert isinstance(tag["key"], str) and isinstance(tag["value"], str)
        assert isinstance(tag["read_only"], bool)


def test_every_endpoint_answers_in_the_reference_shape(sandbox):
    listed = call(sandbox, "GET", f"{BASE}/1/1")
    assert listed.status == 200
    assert set(listed.body) == {"count", "results"}
    assert listed.body["count"] == 200 and len(listed.body["results"]) == 200
    for snap in listed.body["results"]:
        assert_snapshot_shape(snap)
        assert (snap["project_id"], snap["region_id"], snap["region"]) == (1, 1, "Luxembourg-2")

    first = listed.body["results"][0]
    got = call(sandbox, "GET", one(first["id"]))
    assert got.status == 200 and got.body == first

    patched = call(sandbox, "PATCH", one(first["id"]), json={"name": "renamed"})
    assert patched.status == 200
    assert_snapshot_shape(patched.body)
    assert patched.body["name"] == "renamed"


def test_seeded_data_is_realistic(sandbox):
    snaps = call(sandbox, "GET", f"{BASE}/1/1").body["results"]
    with_user = [s for s in snaps if any(not t["read_only"] for t in s["tags"])]
    with_read_only = [s for s in snaps if any(t["read_only"] for t in s["tags"])]
    available = [s for s in snaps if s["status"] == "available"]
    assert 0.25 < len(with_user) / len(snaps) < 0.6
    assert 0.03 < len(with_read_only) / len(snaps) < 0.2
    assert len(available) > len(snaps) * 0.75
    assert any(s["description"] is None for s in snaps)
    assert any(s["description"] for s in snaps)
    assert all(s["task_id"] is None for s in snaps)  # no locks unless asked for
    assert len({s["id"] for s in snaps}) == len(snaps)


def test_same_seed_gives_the_same_data_and_another_seed_does_not():
    def dump(store: SnapshotStore, project_id=1, region_id=1):
        return [s.to_json() for s in store.snapshots(project_id, region_id)]

    assert dump(SnapshotStore(seed=0)) == dump(SnapshotStore(seed=0))
    assert dump(SnapshotStore(seed=0)) != dump(SnapshotStore(seed=1))
    # more scopes, or locks, do not reshuffle the default scope's ids, names and tags
    wide = SnapshotStore(seed=0, project_ids=[1, 2], region_ids=[1, 3], lock_rate=0.5)
    assert [s.id for s in wide.snapshots(1, 1)] == SnapshotStore(seed=0).ids()
    assert {s.id for s in wide.snapshots(2, 3)}.isdisjoint(wide.ids(1, 1))


def test_same_seed_serves_the_same_data_over_http(make_sandbox):
    first, second = make_sandbox(seed=7, snapshots=20), make_sandbox(seed=7, snapshots=20)
    assert call(first, "GET", f"{BASE}/1/1").body == call(second, "GET", f"{BASE}/1/1").body


def test_sample_manifest_matches_the_default_seed():
    store = SnapshotStore()
    with open(SAMPLE, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"snapshot_id", "op", "key", "value"} <= set(rows[0])
    assert 10 <= len({r["snapshot_id"] for r in rows}) <= 15
    assert {r["op"] for r in rows} == {"set", "delete", "clear", "name", "rename"}
    for row in rows:
        snap = store.find(1, 1, row["snapshot_id"])
        assert row["key"] not in snap.read_only
        if row["op"] in ("delete", "rename"):
            assert row["key"] in snap.tags


# ---------------------------------------------------------------- pagination


def test_pages_cover_every_snapshot_once_and_count_is_the_total(sandbox):
    seen = []
    for offset in range(0, 200, 64):
        page = call(sandbox, "GET", f"{BASE}/1/1", params={"limit": 64, "offset": offset})
        assert page.status == 200 and page.body["count"] == 200
        seen += [s["id"] for s in page.body["results"]]
    assert seen == sandbox.store.ids()
    past_the_end = call(sandbox, "GET", f"{BASE}/1/1", params={"offset": 500})
    assert past_the_end.body == {"count": 200, "results": []}


def test_default_and_maximum_limit_is_1000(make_sandbox):
    server = make_sandbox(snapshots=1200)
    default = call(server, "GET", f"{BASE}/1/1")
    assert default.body["count"] == 1200 and len(default.body["results"]) == 1000
    full = call(server, "GET", f"{BASE}/1/1", params={"limit": 1000, "offset": 1000})
    assert len(full.body["results"]) == 200


@pytest.mark.parametrize(
    "params, field",
    [
        ({"limit": 1001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "x"}, "offset"),
    ],
)
def test_bad_limit_or_offset_is_a_validation_error(sandbox, params, field):
    reply = call(sandbox, "GET", f"{BASE}/1/1", params=params)
    assert_gcore_error(reply, 400, "ValidationError")
    assert field in reply.body["invalid_fields"]


# ---------------------------------------------------------------- merge patch semantics


def rfc7386(target, patch):
    """RFC 7386 section 2, verbatim: the reference the sandbox is checked against."""
    if isinstance(patch, dict):
        if not isinstance(target, dict):
            target = {}
        result = dict(target)
        for name, value in patch.items():
            if value is None:
                result.pop(name, None)
            else:
                result[name] = rfc7386(result.get(name), value)
        return result
    return patch


KEYS = st.sampled_from(["env", "team", "owner", "a", "b", "é-ü", "x/y:z"]) | st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.:/@$日本", min_size=1, max_size=12
)
VALUES = st.text(alphabet="abcXYZ0189-_.:/+@$é日", min_size=1, max_size=20)
TAG_PATCHES = st.none() | st.dictionaries(KEYS, st.none() | VALUES, max_size=6)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    index=st.integers(0, 29),
    current=st.dictionaries(KEYS, VALUES, max_size=5),
    tags_patch=TAG_PATCHES,
    name=st.none() | st.text(alphabet="abc-_0123", min_size=3, max_size=63),
)
def test_tag_patch_matches_rfc_7386(shared_sandbox, index, current, tags_patch, name):
    server = shared_sandbox
    snap = server.store.snapshots()[index]
    read_only = {k: v for k, v in snap.tags.items() if k in snap.read_only}
    current = {k: v for k, v in current.items() if k not in read_only}
    if tags_patch is not None:
        tags_patch = {k: v for k, v in tags_patch.items() if k not in read_only}
    path = one(snap.id)
    setup = call(server, "PATCH", path, json={"tags": None})
    setup = call(server, "PATCH", path, json={"tags": current})
    assert setup.status == 200 and tags_of(setup.body) == {**read_only, **current}

    body = {"tags": tags_patch}
    if name is not None:
        body["name"] = name
    document = {"name": setup.body["name"], "tags": current}
    expected = rfc7386(document, body)

    reply = call(server, "PATCH", path, json=body)
    assert reply.status == 200
    assert reply.body["name"] == expected["name"]
    assert tags_of(reply.body) == {**read_only, **expected.get("tags", {})}
    assert call(server, "GET", path).body == reply.body


def test_write_to_a_read_only_tag_changes_nothing(sandbox):
    snap = snapshot_with(sandbox, read_only=True)
    path = one(snap.id)
    before = call(sandbox, "GET", path).body
    read_only_key = next(iter(snap.read_only))
    for tags in ({read_only_key: "mine-now"}, {read_only_key: None}):
        reply = call(sandbox, "PATCH", path, json={"tags": tags})
        assert reply.status == 200 and reply.body == before

    cleared = call(sandbox, "PATCH", path, json={"tags": None})
    assert cleared.status == 200
    assert cleared.body["tags"] == [t for t in before["tags"] if t["read_only"]]
    assert all(t["read_only"] for t in cleared.body["tags"])
    assert cleared.body["updated_at"] > before["updated_at"]


def test_writes_bump_updated_at_and_no_op_writes_do_not(sandbox):
    snap = snapshot_with(sandbox, read_only=False)
    path = one(snap.id)
    before = call(sandbox, "GET", path).body
    first = call(sandbox, "PATCH", path, json={"tags": {"new-key": "v1"}})
    second = call(sandbox, "PATCH", path, json={"tags": {"new-key": "v2"}})
    assert before["updated_at"] < first.body["updated_at"] < second.body["updated_at"]
    assert first.body["created_at"] == before["created_at"]
    same = call(sandbox, "PATCH", path, json={"tags": {"new-key": "v2"}})
    assert same.body == second.body
    empty = call(sandbox, "PATCH", path, json={})
    assert empty.status == 200 and empty.body == second.body


def test_id_lookup_ignores_case(sandbox):
    sid = sandbox.store.ids()[0]
    assert call(sandbox, "GET", one(sid.upper())).body["id"] == sid


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "ab"}, "name"),
        ({"name": "n" * 64}, "name"),
        ({"name": 42}, "name"),
        ({"name": None}, "name"),
        ({"tags": {"has space": "v"}}, "tags"),
        ({"tags": {"has\ttab": "v"}}, "tags"),
        ({"tags": {"new\nline": "v"}}, "tags"),
        ({"tags": {"a=b": "v"}}, "tags"),
        ({"tags": {"": "v"}}, "tags"),
        ({"tags": {"k" * 256: "v"}}, "tags"),
        ({"tags": {"k": "has space"}}, "tags"),
        ({"tags": {"k": "a=b"}}, "tags"),
        ({"tags": {"k": ""}}, "tags"),
        ({"tags": {"k": "v" * 256}}, "tags"),
        ({"tags": {"k": 5}}, "tags"),
        ({"tags": {"k": {"nested": "v"}}}, "tags"),
        ({"tags": ["k", "v"]}, "tags"),
        ({"tags": "k=v"}, "tags"),
        ({"description": "not writable"}, "description"),
        ([{"name": "abc"}], "_schema"),
        ("just a string", "_schema"),
        (None, "_schema"),
    ],
)
def test_invalid_patch_is_a_400_naming_the_field_and_changes_nothing(sandbox, body, field):
    sid = sandbox.store.ids()[0]
    before = call(sandbox, "GET", one(sid)).body
    reply = call(sandbox, "PATCH", one(sid), json=body)
    assert_gcore_error(reply, 400, "ValidationError")
    assert field in reply.body["invalid_fields"]
    assert call(sandbox, "GET", one(sid)).body == before


def test_every_problem_of_a_patch_is_reported_at_once(sandbox):
    body = {"name": "x", "tags": {"bad key": "v", "ok": "bad value"}, "extra": 1}
    reply = call(sandbox, "PATCH", one(sandbox.store.ids()[0]), json=body)
    assert_gcore_error(reply, 400, "ValidationError")
    fields = reply.body["invalid_fields"]
    assert set(fields) == {"name", "tags", "extra"}
    assert set(fields["tags"]) == {"bad key", "ok"}


def test_invalid_json_is_a_400(sandbox):
    reply = call(sandbox, "PATCH", one(sandbox.store.ids()[0]), data=b"{not json")
    assert_gcore_error(reply, 400, "ValidationError")


def test_limits_themselves_are_accepted(sandbox):
    sid = sandbox.store.ids()[0]
    for body in (
        {"name": "abc"},
        {"name": "n" * 63},
        {"tags": {"k" * 255: "v" * 255, "x": "日本-$"}},
    ):
        assert call(sandbox, "PATCH", one(sid), json=body).status == 200


# ---------------------------------------------------------------- auth


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "APIKey"},
        {"Authorization": "APIKey   "},
        {"Authorization": "Bearer token"},
        {"Authorization": "token"},
    ],
)
def test_missing_or_malformed_credentials_are_401(sandbox, headers):
    for method, path in (("GET", f"{BASE}/1/1"), ("PATCH", one(sandbox.store.ids()[0]))):
        reply = call(sandbox, method, path, headers=headers, json={"name": "abc"})
        assert_gcore_error(reply, 401, "AuthenticationError")
    assert sandbox.stats()["writes"] == 0


@pytest.mark.parametrize("scheme", ["APIKey", "apikey", "APIKEY", "ApiKey"])
def test_scheme_is_case_insensitive(sandbox, scheme):
    reply = call(sandbox, "GET", f"{BASE}/1/1", headers={"Authorization": f"{scheme} t"})
    assert reply.status == 200


def test_api_key_option_accepts_only_that_token(make_sandbox):
    server = make_sandbox(api_key="s3cr$t-$HOME")
    good = call(server, "GET", f"{BASE}/1/1", headers={"Authorization": "apikey s3cr$t-$HOME"})
    assert good.status == 200
    for token in ("other", "s3cr$t", "s3cr$t-$HOMEx"):
        reply = call(server, "GET", f"{BASE}/1/1", headers={"Authorization": f"APIKey {token}"})
        assert_gcore_error(reply, 401, "AuthenticationError")


# ---------------------------------------------------------------- not found


def test_unknown_other_scope_and_malformed_ids_are_404(make_sandbox):
    server = make_sandbox(snapshots=5, project_ids=[1, 2], region_ids=[1, 2])
    sid = server.store.ids(1, 1)[0]
    assert call(server, "GET", one(sid, 1, 1)).status == 200
    paths = [
        one(str(uuid.uuid4())),
        one(sid, 1, 2),
        one(sid, 2, 1),
        one(sid, 9, 9),
        one("not-a-uuid"),
        one("%00%ff"),
        one("x" * 2000),
        one(sid + "0"),
    ]
    for path in paths:
        for method in ("GET", "PATCH"):
            reply = call(server, method, path, json={"name": "abc"})
            assert_gcore_error(reply, 404, "NotFoundError")
    assert server.stats()["writes"] == 0


def test_non_integer_scope_or_unknown_route_never_500(sandbox):
    sid = sandbox.store.ids()[0]
    for path in (f"{BASE}/one/1", f"{BASE}/1/1.5/{sid}", f"{BASE}/-/x/{sid}", "/cloud/v2/x"):
        reply = call(sandbox, "GET", path)
        assert reply.status in (400, 404)
        assert reply.body["exception_class"] in ("ValidationError", "NotFoundError")
    list_other_scope = call(sandbox, "GET", f"{BASE}/7/1")
    assert_gcore_error(list_other_scope, 404, "NotFoundError")


def test_every_error_has_a_fresh_request_id(sandbox):
    replies = [call(sandbox, "GET", one("nope")) for _ in range(3)]
    ids = {r.body["request_id"] for r in replies}
    assert len(ids) == 3


# ---------------------------------------------------------------- fault knobs


def test_latency_delays_every_answer(make_sandbox):
    server = make_sandbox(latency_ms=300)
    waits = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    server.state.sleep = record
    for _ in range(5):
        assert call(server, "GET", one(server.store.ids()[0])).status == 200
    assert len(waits) == 5
    assert all(0.15 <= w <= 0.45 for w in waits)  # jitter stays within 50%..150%
    assert len(set(waits)) > 1


def test_rate_limit_answers_429_with_retry_after(make_sandbox):
    server = make_sandbox(rate_limit=2)
    replies = call_many(server, [("GET", f"{BASE}/1/1?limit=1")] * 20)
    statuses = [r.status for r in replies]
    assert 200 in statuses and 429 in statuses
    limited = [r for r in replies if r.status == 429]
    for reply in limited:
        assert_gcore_error(reply, 429, "TooManyRequests")
        assert int(reply.headers["Retry-After"]) >= 1
        assert int(reply.headers["retry-after-ms"]) >= 1
    assert server.stats()["responses"]["429"] == len(limited)


def test_rate_limit_without_retry_after(make_sandbox):
    server = make_sandbox(rate_limit=1, retry_after=False)
    replies = call_many(server, [("GET", f"{BASE}/1/1?limit=1")] * 10)
    limited = [r for r in replies if r.status == 429]
    assert limited
    for reply in limited:
        assert "Retry-After" not in reply.headers and "retry-after-ms" not in reply.headers


def test_locked_snapshot_answers_409_until_the_lock_clears(make_sandbox):
    server = make_sandbox(snapshots=10, lock_rate=1.0, lock_ms=100)
    now = [1000.0]
    server.state.clock = lambda: now[0]
    sid = server.store.ids()[0]
    shown = call(server, "GET", one(sid)).body
    assert uuid.UUID(shown["task_id"]).version == 4
    conflict = call(server, "PATCH", one(sid), json={"tags": {"k": "v"}})
    assert_gcore_error(conflict, 409, "ConflictError")
    assert call(server, "GET", one(sid)).body["tags"] == shown["tags"]
    now[0] += 0.099
    assert call(server, "PATCH", one(sid), json={"tags": {"k": "v"}}).status == 409
    now[0] += 0.001
    done = call(server, "PATCH", one(sid), json={"tags": {"k": "v"}})
    assert done.status == 200 and done.body["task_id"] is None
    assert tags_of(done.body)["k"] == "v"


def test_first_write_to_a_locked_snapshot_always_conflicts(make_sandbox):
    server = make_sandbox(snapshots=10, lock_rate=1.0, lock_ms=0)
    sid = server.store.ids()[0]
    assert call(server, "PATCH", one(sid), json={"name": "abc"}).status == 409
    assert call(server, "PATCH", one(sid), json={"name": "abc"}).status == 200


def test_lock_rate_locks_about_that_share(make_sandbox):
    server = make_sandbox(lock_rate=0.3, lock_ms=60_000)
    snaps = call(server, "GET", f"{BASE}/1/1").body["results"]
    locked = [s for s in snaps if s["task_id"]]
    assert 0.15 < len(locked) / len(snaps) < 0.45
    free = next(s for s in snaps if not s["task_id"])
    assert call(server, "PATCH", one(free["id"]), json={"name": "abc"}).status == 200
    for _ in range(3):  # a long lock keeps answering 409
        assert call(server, "PATCH", one(locked[0]["id"]), json={"name": "abc"}).status == 409


def test_error_rate_one_fails_everything_in_gcore_shape(make_sandbox):
    server = make_sandbox(error_rate=1.0)
    sid = server.store.ids()[0]
    before = server.store.find(1, 1, sid).to_json()
    statuses = set()
    for _ in range(15):
        reply = call(server, "PATCH", one(sid), json={"name": "changed"})
        assert reply.status in (500, 502, 503)
        assert_gcore_error(reply, reply.status, reply.body["exception_class"])
        assert "x-should-retry" not in reply.headers
        statuses.add(reply.status)
    assert len(statuses) >= 2
    assert server.store.find(1, 1, sid).to_json() == before


@pytest.mark.parametrize("should_retry, header", [(True, "true"), (False, "false")])
def test_error_should_retry_header(make_sandbox, should_retry, header):
    server = make_sandbox(error_rate=1.0, error_should_retry=should_retry)
    reply = call(server, "GET", f"{BASE}/1/1")
    assert reply.status >= 500 and reply.headers["x-should-retry"] == header


def test_error_rate_is_a_share_and_repeats_with_the_seed(make_sandbox):
    def statuses(server):
        return [call(server, "GET", f"{BASE}/1/1?limit=1").status for _ in range(30)]

    first = statuses(make_sandbox(error_rate=0.4, seed=3))
    assert first == statuses(make_sandbox(error_rate=0.4, seed=3))
    assert 200 in first and any(s >= 500 for s in first)


def test_dropped_connection_gets_no_response_and_changes_nothing(make_sandbox):
    server = make_sandbox(drop_rate=1.0)
    sid = server.store.ids()[0]
    before = server.store.find(1, 1, sid).to_json()
    with pytest.raises(aiohttp.ClientConnectionError):
        call(server, "PATCH", one(sid), json={"name": "changed"})
    assert server.store.find(1, 1, sid).to_json() == before
    assert server.stats()["responses"] == {"dropped": 1}


def test_drop_rate_is_a_share(make_sandbox):
    server = make_sandbox(drop_rate=0.5)
    outcomes = []
    for _ in range(20):
        try:
            outcomes.append(call(server, "PATCH", one(server.store.ids()[0]), json={}).status)
        except aiohttp.ClientConnectionError:
            outcomes.append("dropped")
    assert 200 in outcomes and "dropped" in outcomes


# ---------------------------------------------------------------- stats and reset


def test_stats_count_requests_and_responses(sandbox):
    sid = sandbox.store.ids()[0]
    call(sandbox, "GET", f"{BASE}/1/1")
    call(sandbox, "GET", one(sid))
    call(sandbox, "PATCH", one(sid), json={"name": "abc"})
    call(sandbox, "PATCH", one(sid), json={"name": "a"})
    call(sandbox, "GET", one("missing"), headers={})
    call(sandbox, "GET", "/_sandbox/stats")  # not counted
    stats = sandbox.stats()
    assert stats["requests"] == {"GET": 3, "PATCH": 2}
    assert stats["responses"] == {"200": 3, "400": 1, "401": 1}
    assert stats["total_requests"] == 5
    assert stats["writes"] == 1
    assert stats["max_inflight_per_snapshot"] == 1
    timeline_total = {}
    for second in stats["timeline"]:
        for status, count in second["responses"].items():
            timeline_total[status] = timeline_total.get(status, 0) + count
    assert timeline_total == stats["responses"]
    assert call(sandbox, "GET", "/_sandbox/stats").body == sandbox.stats()


def test_max_inflight_per_snapshot_sees_concurrent_requests(make_sandbox):
    server = make_sandbox(latency_ms=300)
    sid, other = server.store.ids()[:2]
    replies = call_many(server, [("GET", one(sid))] * 3 + [("GET", one(other))])
    assert all(r.status == 200 for r in replies)
    stats = server.stats()
    assert stats["max_inflight_per_snapshot"] == 3
    assert stats["max_inflight"] == 4


def test_reset_restores_the_seeded_state_and_zeroes_stats(sandbox):
    seeded = call(sandbox, "GET", f"{BASE}/1/1").body
    sid = seeded["results"][0]["id"]
    call(sandbox, "PATCH", one(sid), json={"name": "changed", "tags": None})
    assert call(sandbox, "GET", f"{BASE}/1/1").body != seeded

    assert call(sandbox, "POST", "/_sandbox/reset").status == 200
    assert sandbox.stats()["total_requests"] == 0
    assert call(sandbox, "GET", f"{BASE}/1/1").body == seeded
    sandbox.reset()
    assert sandbox.stats() == {
        "requests": {},
        "responses": {},
        "total_requests": 0,
        "endpoints": {},
        "max_inflight": 0,
        "max_inflight_per_snapshot": 0,
        "writes": 0,
        "timeline": [],
    }


def test_reset_brings_locks_back(make_sandbox):
    server = make_sandbox(snapshots=3, lock_rate=1.0, lock_ms=0)
    sid = server.store.ids()[0]
    assert call(server, "PATCH", one(sid), json={}).status == 409
    assert call(server, "PATCH", one(sid), json={}).status == 200
    server.reset()
    assert call(server, "PATCH", one(sid), json={}).status == 409


# ---------------------------------------------------------------- command line


def test_cli_refuses_a_non_loopback_host():
    result = CliRunner().invoke(sandbox_command, ["--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2
    assert "loopback" in result.output


def test_cli_serves_on_a_free_port_and_stops_on_sigterm():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "batchtag.sandbox", "--port", "0", "--snapshots", "5"]
    command += ["--api-key", "k$1", "--project-id", "3", "--region-id", "4"]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        line = proc.stdout.readline().strip()
        prefix = "batchtag sandbox listening on http://127.0.0.1:"
        assert line.startswith(prefix), line
        port = int(line.removeprefix(prefix))
        server = type("Remote", (), {"base_url": f"http://127.0.0.1:{port}"})()
        reply = call(server, "GET", f"{BASE}/3/4", headers={"Authorization": "APIKey k$1"})
        assert reply.status == 200 and reply.body["count"] == 5
        assert call(server, "GET", f"{BASE}/3/4").status == 401
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


# ---------------------------------------------------------------- large stores and churn


def test_a_million_snapshots_seed_lazily_and_page_like_any_store():
    store = SnapshotStore(snapshots=1_000_000)
    count, page = store.list(1, 1, limit=1000, offset=999_500)
    assert count == 1_000_000 and len(page) == 500
    assert store.find(1, 1, page[0]["id"]).to_json() == page[0]
    assert len(store.scopes[(1, 1)].live) == 1  # only the snapshot looked up was built
    assert store.list(1, 1, offset=1_000_000) == (1_000_000, [])


def test_mutate_deletes_and_creates_and_the_listing_follows(sandbox):
    before = sandbox.store.ids()
    changed = sandbox.mutate(create=7, delete=5)
    assert changed["count"] == 202 and len(changed["created"]) == 7
    assert set(changed["deleted"]) <= set(before) and len(set(changed["deleted"])) == 5
    after = [s["id"] for s in call(sandbox, "GET", f"{BASE}/1/1").body["results"]]
    expected = [sid for sid in before if sid not in changed["deleted"]] + changed["created"]
    assert after == expected
    for sid in changed["deleted"]:
        assert_gcore_error(call(sandbox, "GET", one(sid)), 404, "NotFoundError")
    created = call(sandbox, "GET", one(changed["created"][0]))
    assert created.status == 200
    assert_snapshot_shape(created.body)
    over_http = call(sandbox, "POST", "/_sandbox/mutate", json={"delete": 2})
    assert over_http.status == 200 and over_http.body["count"] == 200
    sandbox.reset()
    assert sandbox.store.ids() == before


def test_churn_knob_changes_the_scope_once_after_that_many_lists(make_sandbox):
    server = make_sandbox(snapshots=50, churn_after=2, churn_create=3, churn_delete=4)
    counts = [call(server, "GET", f"{BASE}/1/1?limit=1").body["count"] for _ in range(4)]
    assert counts == [50, 50, 49, 49]
    assert server.stats()["endpoints"] == {"list": 4}


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(0, 60),
    changes=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=4),
    limit=st.integers(1, 25),
)
def test_pages_follow_any_sequence_of_creates_and_deletes(size, changes, limit):
    store = SnapshotStore(snapshots=size)
    alive = store.ids()
    for create, delete in changes:
        done = store.mutate(1, 1, create=create, delete=delete)
        alive = [sid for sid in alive if sid not in done["deleted"]] + done["created"]
        assert done["count"] == len(alive)
    listed = []
    for offset in range(0, len(alive) + limit, limit):
        count, page = store.list(1, 1, limit=limit, offset=offset)
        assert count == len(alive)
        listed += [s["id"] for s in page]
    assert listed == alive == store.ids()
    for sid in alive:
        assert store.find(1, 1, sid).id == sid
