"""Discovery and typos (issue 24, item 5): `batchtag keys` lists the tag keys with how many
snapshots have each (--values KEY: one key's values, --json); a `where`, `--columns` or
policy naming a tag no snapshot has warns with the closest keys."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa
from helpers import API_KEY, invoke
from hypothesis import given
from hypothesis import strategies as st

import batchtag
from batchtag.inventory import TAG_LIST, count_keys, count_values, missing_tags

TAG = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["env", "Env", "team", "a:b", "é"]),
        "value": st.sampled_from(["prod", "dev", "", "x y"]),
        "read_only": st.booleans(),
    }
)


@given(st.lists(st.lists(TAG, max_size=5), max_size=8), st.sampled_from(["env", "Env", "nope"]))
def test_counts_are_snapshots_having_each_key_and_value(snapshots, key):
    column = pa.array(snapshots, type=TAG_LIST)
    keys: Counter = Counter()
    values: Counter = Counter()
    for tags in snapshots:  # the oracle: a snapshot counts once per key, with its first value
        keys.update({(t["key"], t["read_only"]) for t in tags})
        first = next((t for t in tags if t["key"] == key), None)
        if first is not None:
            values[(first["value"], first["read_only"])] += 1
    assert count_keys(column) == keys
    assert count_values(column, key) == values


def truth(sandbox) -> Counter:
    out: Counter = Counter()
    for snapshot in sandbox.store.snapshots(1, 1):
        data = snapshot.to_json()
        out.update({(t["key"], bool(t["read_only"])) for t in data["tags"]})
    return out


def test_keys_lists_every_key_with_its_snapshots_most_first(sandbox):
    result = invoke(["keys"], sandbox)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["KEY", "SNAPSHOTS"]
    shown = Counter()
    for line in lines[1:-1]:
        name, count = line.rsplit(None, 1)
        read_only = name.endswith(" (read-only)")
        shown[(name.removesuffix(" (read-only)").strip(), read_only)] = int(count)
    assert shown == truth(sandbox)
    counts = [int(line.rsplit(None, 1)[1]) for line in lines[1:-1]]
    assert counts == sorted(counts, reverse=True)
    assert lines[-1] == "200 snapshots in 1 scope(s)"
    as_json = json.loads(invoke(["keys", "--json"], sandbox).stdout)
    assert {(k["key"], k["read_only"]): k["snapshots"] for k in as_json["keys"]} == truth(sandbox)
    frame = batchtag.keys(project_id=1, region_id=1, base_url=sandbox.base_url, api_key=API_KEY)
    assert list(frame.columns) == ["key", "read_only", "snapshots"]
    pairs = zip(frame["key"], frame["read_only"], strict=True)
    assert dict(zip(pairs, frame["snapshots"], strict=True)) == truth(sandbox)


def test_values_lists_one_keys_values_and_how_many_lack_it(sandbox):
    envs = Counter(s.tags["env"] for s in sandbox.store.snapshots(1, 1) if "env" in s.tags)
    result = invoke(["keys", "--values", "env", "--json"], sandbox)
    data = json.loads(result.stdout)
    assert data["key"] == "env" and {v["value"]: v["snapshots"] for v in data["values"]} == envs
    text = invoke(["keys", "--values", "env"], sandbox).stdout.splitlines()
    assert text[0].split() == ["VALUE", "SNAPSHOTS"]
    without = 200 - sum(envs.values())
    assert text[-1] == f"tag 'env': 200 snapshots in 1 scope(s), {without} without it"


def test_a_key_no_snapshot_has_warns_with_the_closest_ones(sandbox, tmp_path):
    values = invoke(["keys", "--values", "Env"], sandbox)
    assert values.exit_code == 0
    assert "no snapshot has tag 'Env'; did you mean 'env'?" in values.stderr
    where = invoke(
        ["export", "--where", "`tag:Env` == 'prod'", "-o", str(tmp_path / "e.csv")], sandbox
    )
    assert where.exit_code == 0 and "exported 0 rows" in where.stderr
    assert "no snapshot has tag 'Env'; did you mean 'env'?" in where.stderr
    columns = invoke(
        ["export", "--columns", "snapshot_id,tag:tem,ro:created", "-o", str(tmp_path / "c.csv")],
        sandbox,
    )
    assert "no snapshot has tag 'tem'; did you mean 'team'?" in columns.stderr
    assert "no snapshot has read-only tag 'created'; did you mean 'created-by'?" in columns.stderr
    fine = invoke(
        ["export", "--where", "`tag:env` == 'prod'", "-o", str(tmp_path / "f.csv")], sandbox
    )
    assert "no snapshot has" not in fine.stderr
    connection = {"base_url": sandbox.base_url, "api_key": API_KEY, "project_id": 1}
    frame = batchtag.export(where="`tag:Env`.notna()", region_id=1, **connection)
    assert frame.empty and frame.attrs["export"]["warnings"] == [
        "no snapshot has tag 'Env'; did you mean 'env'?"
    ]


def test_a_policy_naming_a_tag_no_snapshot_has_warns_unless_the_rule_removes_it(sandbox, tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text(
        "[[rule]]\nname = 'typo'\nwhere = \"`tag:Env` == 'prod'\"\nset = { tier = 'gold' }\n"
        "[[rule]]\nname = 'no tmp'\nwhere = '`tag:tmp`.notna()'\ndelete = ['tmp']\n"
    )
    result = invoke(["enforce", str(policy), "--check"], sandbox)
    assert result.exit_code == 0
    assert "rule 'typo' (line 1): no snapshot has tag 'Env'; did you mean 'env'?" in result.stderr
    assert "tmp" not in result.stderr  # what a rule removes is absent once compliant


def test_missing_tags_suggests_nothing_far_off():
    assert missing_tags(["tag:zzz", "tag:env"], ["env", "team"], []) == [
        "no snapshot has tag 'zzz'"
    ]
    assert missing_tags(["tag:TEAM", "name"], ["env", "team"], []) == [
        "no snapshot has tag 'TEAM'; did you mean 'team'?"
    ]
