"""Policies, as properties: enforcing reaches a fixpoint; conflicts are exactly the disagreements."""

from __future__ import annotations

import fnmatch

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_frames import (
    VALUES,
    after,
    inventory,
    policy,
    rules_st,
    snapshot_st,
    tags_st,
    user_tags,
    where_st,
)

from batchtag.policy import RULE_COLUMN, PolicyError, evaluate, parse_policy

# ---------------------------------------------------------------- the property


def intent_holds(rule, before: dict, final: dict, refused: set) -> bool:
    """What `rule` asks of one snapshot it selected in the original inventory; a rename the
    policy refused there (`refused`: (old, new) pairs) leaves both keys as they were."""
    checks = [final.get(k) == v for k, v in rule.set.items()]
    checks += [k not in final for k in rule.delete]
    checks += [final.get(k) == before[k].lower() for k in rule.lower if k in before]
    checks += [final.get(k) == before[k].upper() for k in rule.upper if k in before]
    for o, n in rule.rename.items():
        if (o, n) in refused:
            checks.append(final.get(o) == before.get(o) and final.get(n) == before.get(n))
            checks.append(not rule.rename_overwrite and before.get(n) not in (None, before[o]))
        elif o in before:
            checks.append(o not in final and final.get(n) == before[o])
    return all(checks)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snaps=st.lists(snapshot_st, max_size=6), text=rules_st())
def test_enforcing_satisfies_every_rule_and_a_second_evaluation_is_empty(snaps, text):
    rules = parse_policy(text, "generated")
    frame = inventory(snaps)
    manifest = evaluate(rules, frame)
    renames = manifest[manifest["op"] == "rename"]  # refused: the new key holds another value
    writes = manifest[manifest["op"] != "rename"]
    # one row per (snapshot, key), and every row changes something
    assert not writes.duplicated(["snapshot_id", "key"]).any()
    final = after(snaps, manifest)
    for snapshot_id, before, end in zip(frame["snapshot_id"], snaps, final, strict=True):
        keys = {*before["tags"], *end["tags"]}
        changed = {k for k in keys if before["tags"].get(k) != end["tags"].get(k)}
        assert set(writes[writes["snapshot_id"] == snapshot_id]["key"]) == changed
    # the intent of every rule holds on the snapshots it selected
    for rule in rules.rules:
        for i, hit in enumerate(rule.matches(frame, "generated")):
            if hit:
                mine = renames[renames["snapshot_id"] == frame["snapshot_id"].iloc[i]]
                refused = set(zip(mine["key"], mine["value"], strict=True))
                assert intent_holds(rule, snaps[i]["tags"], final[i]["tags"], refused), (
                    rule,
                    snaps[i],
                )
    # stable: evaluating again on the result writes nothing (a second run sends nothing);
    # a rename refused then is refused again, unless its rule no longer selects the snapshot
    again = evaluate(rules, inventory(final))
    assert set(again["op"]) <= {"rename"}, again
    key = ["snapshot_id", "key", "value"]
    assert set(map(tuple, again[key].values.tolist())) <= set(
        map(tuple, renames[key].values.tolist())
    )
    assert user_tags(inventory(final)) == [s["tags"] for s in final]


@pytest.mark.parametrize("count", [3, 70])  # a bit per rule up to 62 rules, sorting beyond
def test_the_rule_column_names_every_rule_behind_a_snapshot_in_policy_order(count):
    text = "\n".join(
        f"[[rule]]\nname='r{i}'\nwhere='size > {i % 2}'\nset={{k{i}='v'}}" for i in range(count)
    )
    manifest = evaluate(policy(text), inventory([{"size": 1}, {"size": 2}]))
    names = manifest.drop_duplicates("snapshot_id")[RULE_COLUMN].tolist()
    assert names == [
        "; ".join(f"r{i}" for i in range(0, count, 2)),
        "; ".join(f"r{i}" for i in range(count)),
    ]


def test_an_inventory_read_back_from_csv_works(tmp_path):
    frame = inventory([{"tags": {"env": "PROD"}}, {}]).assign(**{"tag:tmp": None})
    frame.to_csv(tmp_path / "inv.csv", index=False)
    read = pd.read_csv(tmp_path / "inv.csv")  # tag:tmp comes back as an all-NaN float column
    rules = policy(
        "[[rule]]\nname='a'\nwhere='`tag:tmp`.str.len() > 0 or `tag:env`.notna()'\nlower=['env']"
    )
    assert evaluate(rules, read)["value"].tolist() == ["prod"]


@settings(max_examples=60, deadline=None)
@given(
    snaps=st.lists(snapshot_st, min_size=1, max_size=6),
    wheres=st.tuples(where_st(), where_st()),
    values=st.tuples(st.sampled_from([*VALUES, None]), st.sampled_from([*VALUES, None])),
)
def test_two_rules_on_one_key_conflict_exactly_when_they_disagree_on_a_snapshot(
    snaps, wheres, values
):
    """Reference model: a conflict iff some snapshot is selected by both rules and they
    write different things (a value, or None = delete) to the key, changing it or not."""
    rules = []
    for n, (where, value) in enumerate(zip(wheres, values, strict=True)):
        action = "delete = ['a']" if value is None else f"set = {{ a = '{value}' }}"
        rules.append(
            f"[[rule]]\nname = 'r{n}'\n" + (f'where = "{where}"\n' if where else "") + action
        )
    loaded = parse_policy("\n".join(rules), "generated")
    if any(fights(loaded, snap) for snap in snaps):
        with pytest.raises(PolicyError, match="rules '(r0' and 'r1|r1' and 'r0)' write differ"):
            evaluate(loaded, inventory(snaps))
    else:
        manifest = evaluate(loaded, inventory(snaps))
        assert evaluate(loaded, inventory(after(snaps, manifest))).empty


def fights(loaded, snap: dict) -> bool:
    """Reference model, one snapshot at a time: the rules selecting it claim key 'a' (a
    value, or None = delete); claims apply and rules look again until nothing changes.
    Two different claims are a conflict, whether or not they change anything."""
    snap = {**snap, "tags": dict(snap["tags"])}
    claims: set = set()
    while True:
        frame = inventory([snap])
        for rule in loaded.rules:
            if rule.matches(frame, "reference")[0]:
                claims.add(rule.set.get("a"))  # None for the delete rule
        if len(claims) > 1:
            return True
        wanted = next(iter(claims), snap["tags"].get("a"))
        if snap["tags"].get("a") == wanted:
            return False
        snap["tags"].pop("a", None) if wanted is None else snap["tags"].update(a=wanted)


# ---------------------------------------------------------------- copy from the volume

PATTERNS = ["a", "b", "c", "[ab]", "*", "?", "[!a]", "d*"]
volume_snapshot_st = st.fixed_dictionaries(
    {"tags": tags_st, "size": st.sampled_from([1, 10, 100])},
    optional={"volume": st.fixed_dictionaries({"tags": tags_st})},  # absent: the volume is gone
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    snaps=st.lists(volume_snapshot_st, max_size=6),
    patterns=st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=3, unique=True),
    overwrite=st.booleans(),
    where=where_st(),
)
def test_copy_inherits_exactly_what_it_should_and_a_second_evaluation_is_empty(
    snaps, patterns, overwrite, where
):
    """Reference model, per snapshot the rule selects whose volume exists: each volume key a
    pattern matches (fnmatch, case-sensitive) ends equal to the volume's value when the
    snapshot lacked it, or always with overwrite; every other tag, every snapshot not
    selected and every orphan stays as it was."""
    text = f"[[rule]]\nname = 'inherit'\ncopy = {{ from = 'volume', keys = {patterns!r}, "
    text += f"overwrite = {str(overwrite).lower()} }}\n" + (f'where = "{where}"\n' if where else "")
    rules = parse_policy(text, "generated")
    frame = inventory(snaps, with_volume=True)
    manifest = evaluate(rules, frame)
    final = after(snaps, manifest)
    selected = rules.rules[0].matches(frame, "generated")
    for snap, end, hit in zip(snaps, final, selected, strict=True):
        expected = dict(snap["tags"])
        if hit and "volume" in snap:
            for key, value in snap["volume"]["tags"].items():
                if any(fnmatch.fnmatchcase(key, p) for p in patterns):
                    if overwrite or key not in expected:
                        expected[key] = value
        assert end["tags"] == expected, (snap, patterns, overwrite)
    stats = manifest.attrs["rules"]["inherit"]
    assert stats["orphans"] == sum(
        1 for s, h in zip(snaps, selected, strict=True) if h and "volume" not in s
    )
    assert stats["noncompliant"] == manifest["snapshot_id"].nunique()
    again = evaluate(rules, inventory(final, with_volume=True))
    assert again.empty, again
