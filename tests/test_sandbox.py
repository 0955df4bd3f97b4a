"""The sandbox: Gcore API semantics, error shapes, pagination, auth (knobs: test_sandbox_knobs)."""

from __future__ import annotations

import csv
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sandbox_calls import (
    BASE,
    SAMPLE,
    assert_gcore_error,
    assert_snapshot_shape,
    call,
    one,
    snapshot_with,
)

from batchtag.sandbox import SandboxConfig, SandboxServer, SnapshotStore
from batchtag.sandbox.store import tags_of


@pytest.fixture(scope="module")
def shared_sandbox():
    """One sandbox for the property test (hypothesis dislikes function-scoped fixtures)."""
    with SandboxServer(SandboxConfig(snapshots=30)) as server:
        yield server


# ---------------------------------------------------------------- response shape and data


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
