"""Policies: loading and its errors, evaluation semantics (properties: test_policy_properties)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from policy_frames import after, inventory, policy

from batchtag.manifest import read_plan
from batchtag.policy import MANIFEST_COLUMNS, RULE_COLUMN, PolicyError, evaluate, load_policy

SAMPLE = Path(__file__).parent.parent / "samples" / "cost-policy.toml"


# ---------------------------------------------------------------- loading


def test_the_sample_policy_loads_with_its_scope_and_rule_lines():
    loaded = load_policy(SAMPLE)
    assert loaded.project_id == (1,) and loaded.region_id == (1,)
    assert [r.name for r in loaded.rules][:3] == [
        "default cost-center",
        "no tmp tags",
        "env in lower case",
    ]
    text = SAMPLE.read_text().splitlines()
    for rule in loaded.rules:
        assert text[rule.line - 1].strip() == "[[rule]]"


WHERE = '[[rule]]\nname = "a"\nwhere = "{}"\nlower = ["env"]\n'  # a bad where is refused at load


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[rule]]\nname = "a"\nset = { x = "1" \n', "policy p.toml: invalid TOML: "),
        ("[[rule]]\nname = 'a'\nset = {x='1'}\n[scopes]\n", "unknown top-level key 'scopes'"),
        ("[[rule]]\nname = 'a'\nsett = {x='1'}\n", "rule 'a' (line 1): unknown key 'sett'"),
        ("[[rule]]\nname = 'a'\nsett = {x='1'}\n", "(did you mean 'set'?)"),
        ("[[rule]]\nname = 'a'\nwhere = 'size > 1'\n", "rule 'a' (line 1): no action"),
        ("[[rule]]\nname = 'a'\ndelete = []\n", "rule 'a' (line 1): no action"),
        ("[[rule]]\nset = {x='1'}\n", "rule 1 (line 1) needs a name"),
        ("[scope]\nproject_id = 1\n", "no rules"),
        ("[[rule]]\nname = 'a'\ndelete = 'tmp'\n", "delete must be a list of tag keys"),
        ("[[rule]]\nname = 'a'\nset = {x=1}\n", "set must be a table of strings"),
        ("[[rule]]\nname = 'a'\nset = {'a b'='1'}\n", "set: key 'a b' contains whitespace"),
        ("[[rule]]\nname = 'a'\nset = {x='1=2'}\n", "set: value of 'x' '1=2' contains '='"),
        ("[[rule]]\nname = 'a'\nset = {x='1'}\ndelete = ['x']\n", "'x' is written by both"),
        ("[[rule]]\nname = 'a'\nrename = {a='b', b='c'}\n", "'b' is written by both"),
        ("[[rule]]\nname='a'\nlower=['x']\n[[rule]]\nname='a'\nlower=['y']\n", "lines 1 and 4"),
        ("[scope]\nproject_id = '1'\n[[rule]]\nname='a'\nlower=['x']\n", "[scope] project_id"),
        ("[scope]\nregion_id = [1, 0]\n[[rule]]\nname='a'\nlower=['x']\n", "[scope] region_id"),
        ("[scope]\nregion = 1\n[[rule]]\nname='a'\nlower=['x']\n", "did you mean 'region_id'"),
        (WHERE.format("size >"), "rule 'a' (line 1): where: cannot parse `size >`"),
        (WHERE.format("sise > 100"), "unknown column 'sise' (did you mean 'size'?)"),
        (WHERE.format("`tag:env`"), "where must be a condition"),
        (WHERE.format("size + 1"), "where must be a condition"),
        (WHERE.format("`tag:env`.no_such_method()"), "where: method 'no_such_method' is not"),
        (WHERE.format("  "), "rule 'a' (line 1): where is empty"),
    ],
)
def test_a_bad_policy_is_one_line_naming_the_file_and_the_line_or_rule(text, expected):
    with pytest.raises(PolicyError) as caught:
        policy(text)
    message = str(caught.value)
    assert expected in message and message.startswith("policy p.toml")
    assert "\n" not in message and caught.value.exit_code == 2


def test_toml_syntax_errors_carry_the_line():
    with pytest.raises(PolicyError, match=r"at line 3, column"):
        policy('[[rule]]\nname = "a"\nset = { x = }\n')


def test_a_missing_file_names_it(tmp_path):
    with pytest.raises(PolicyError, match=r"policy .*nope.toml: cannot read it"):
        load_policy(tmp_path / "nope.toml")


# ---------------------------------------------------------------- evaluation


def test_the_sample_policy_changes_exactly_the_offending_snapshots():
    cc9 = {"tags": {"cost-center": "cc-9"}}
    snaps = [
        {"tags": {"cost-center": "cc-1", "env": "prod", "team": "web"}, "volume": cc9},  # ok
        {"tags": {"env": "PROD"}, "volume": {"tags": {}}},  # no cost-center anywhere, env upper
        {"tags": {"cost-center": "cc-1", "tmp": "x", "Owner": "bob"}, "volume": {"tags": {}}},
        {"tags": {"cost-center": "cc-2", "env": "test", "retention": "30d"}, "volume": cc9},  # ok
        {"tags": {"cost-center": "cc-2", "env": "test"}, "ro": {"created-by": "gcore"}},  # orphan
        {"tags": {}, "volume": {"tags": {"cost-center": "cc-7", "team": "ml"}}},  # inherits
    ]
    snaps[2]["volume"]["tags"]["team"] = "data"
    manifest = evaluate(load_policy(SAMPLE), inventory(snaps))
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    got = [(r.snapshot_id[-1], r.op, r.key, r.value, r.rule) for r in manifest.itertuples()]
    both = "default cost-center; env in lower case"
    three = "no tmp tags; owner, not Owner; cost tags follow the volume"
    assert got == [
        ("1", "set", "cost-center", "unassigned", both),
        ("1", "set", "env", "prod", both),
        ("2", "delete", "Owner", "", three),
        ("2", "set", "owner", "bob", three),
        ("2", "set", "team", "data", three),
        ("2", "delete", "tmp", "", three),
        ("4", "set", "retention", "7d", "test snapshots are short-lived"),
        ("5", "set", "cost-center", "cc-7", "cost tags follow the volume"),
        ("5", "set", "team", "ml", "cost tags follow the volume"),
    ]
    rules = manifest.attrs["rules"]
    assert rules["default cost-center"] == {"matched": 1, "noncompliant": 1}
    assert rules["cost tags follow the volume"] == {"matched": 6, "noncompliant": 2, "orphans": 1}
    plan = read_plan(manifest)  # a valid manifest: the rule column passes through
    assert plan.passthrough == [RULE_COLUMN] and len(plan) == 4


def test_a_where_naming_a_tag_no_snapshot_has_sees_it_as_missing():
    rules = policy("[[rule]]\nname='cc'\nwhere='`tag:cost-center`.isna()'\nset={cost-center='u'}")
    manifest = evaluate(rules, inventory([{"tags": {"a": "1"}}, {}]))
    assert manifest["key"].tolist() == ["cost-center", "cost-center"]


def test_writes_that_change_nothing_are_dropped():
    rules = policy(
        "[[rule]]\nname='all'\nset={env='prod'}\ndelete=['tmp']\nlower=['team']\nupper=['app']\n"
        "rename={old='new'}\n"
    )
    clean = {"env": "prod", "team": "data", "app": "WEB", "new": "x"}
    assert evaluate(rules, inventory([{"tags": clean}])).empty
    dirty = evaluate(rules, inventory([{"tags": {"team": "Data", "app": "web", "old": "1"}}]))
    assert sorted(zip(dirty.op, dirty.key, dirty.value, strict=True)) == [
        ("delete", "old", ""),
        ("set", "app", "WEB"),
        ("set", "env", "prod"),
        ("set", "new", "1"),
        ("set", "team", "data"),
    ]


def test_two_rules_writing_different_values_name_both_rules_and_the_snapshot():
    rules = policy(
        "[[rule]]\nname='one'\nwhere='size > 5'\nset={cc='a'}\n"
        "[[rule]]\nname='two'\nwhere='size > 50'\nset={cc='b'}\n"
    )
    evaluate(rules, inventory([{"size": 10}]))  # only 'one' selects it: fine
    with pytest.raises(PolicyError) as caught:
        evaluate(rules, inventory([{"size": 10}, {"size": 100}, {"size": 200}]))
    message = str(caught.value)
    assert "rules 'one' and 'two' write different values to tag 'cc'" in message
    assert "aaaaaaaa-0000-4000-8000-000000000001 (project 1, region 1)" in message
    assert "sets 'a' vs sets 'b' (and 1 more conflicts); nothing was sent" in message


def test_a_conflict_counts_even_when_one_write_would_change_nothing():
    rules = policy("[[rule]]\nname='keep'\nset={env='prod'}\n[[rule]]\nname='drop'\ndelete=['env']")
    with pytest.raises(PolicyError, match="sets 'prod' vs removes it"):
        evaluate(rules, inventory([{"tags": {"env": "prod"}}]))


def test_two_rules_writing_the_same_value_are_fine_and_both_named():
    rules = policy("[[rule]]\nname='a'\nset={x='1'}\n[[rule]]\nname='b'\nset={x='1', y='2'}")
    manifest = evaluate(rules, inventory([{}]))
    assert manifest[RULE_COLUMN].tolist() == ["a; b", "a; b"]


def test_rename_onto_a_key_another_rule_sets_conflicts_unless_the_values_agree():
    rules = policy(
        "[[rule]]\nname='mv'\nrename={Env='env'}\n[[rule]]\nname='fix'\nset={env='prod'}"
    )
    agree = evaluate(rules, inventory([{"tags": {"Env": "prod"}}]))
    assert sorted(zip(agree.op, agree.key, strict=True)) == [("delete", "Env"), ("set", "env")]
    with pytest.raises(PolicyError, match="rules 'mv' and 'fix' .* tag 'env'"):
        evaluate(rules, inventory([{"tags": {"Env": "dev"}}]))


def test_chained_rules_settle_in_one_evaluation():
    rules = policy(
        "[[rule]]\nname='second'\nwhere='`tag:stage` == \"1\"'\nset={done='yes'}\n"
        "[[rule]]\nname='first'\nwhere='`tag:stage`.isna()'\nset={stage='1'}\n"
    )
    snaps = [{}]
    manifest = evaluate(rules, inventory(snaps))
    assert sorted(manifest["key"]) == ["done", "stage"]
    assert manifest[RULE_COLUMN].iloc[0] == "second; first"
    assert evaluate(rules, inventory(after(snaps, manifest))).empty


def test_many_rules_and_a_chain_give_each_snapshot_what_its_rules_ask():
    """150 rules each adding a tag column (beyond the 62 rules a bit mask per rule holds),
    then a chain two passes long: every snapshot gets the keys of the rules that select
    it, the rule column names them in policy order, and a second evaluation is empty."""
    text = "\n".join(
        f"[[rule]]\nname='r{i}'\nwhere='size >= {i % 7}'\nset={{k{i}='v{i}'}}" for i in range(150)
    )
    text += "\n[[rule]]\nname='then'\nwhere='`tag:k149` == \"v149\"'\nset={done='yes'}"
    text += "\n[[rule]]\nname='last'\nwhere='`tag:done` == \"yes\"'\ndelete=['tmp']"
    rules = policy(text)
    snaps = [{"size": size, "tags": {"tmp": "x"}} for size in (1, 3, 6)]
    manifest = evaluate(rules, inventory(snaps))
    for at, snap in enumerate(snaps):
        mine = manifest[manifest["snapshot_id"].str.endswith(f"{at:012d}")]
        chosen = [i for i in range(150) if snap["size"] >= i % 7]
        chained = snap["size"] >= 149 % 7
        want = {("set", f"k{i}", f"v{i}") for i in chosen}
        want |= {("set", "done", "yes"), ("delete", "tmp", "")} if chained else set()
        assert set(zip(mine["op"], mine["key"], mine["value"], strict=True)) == want
        names = [f"r{i}" for i in chosen] + (["then", "last"] if chained else [])
        assert set(mine[RULE_COLUMN]) == {"; ".join(names)}
    assert evaluate(rules, inventory(after(snaps, manifest))).empty


def test_chained_rules_that_fight_are_a_conflict():
    rules = policy(
        "[[rule]]\nname='add'\nwhere='`tag:x`.isna()'\nset={y='1'}\n"
        "[[rule]]\nname='remove'\nwhere='`tag:y` == \"1\"'\nset={x='1'}\ndelete=['y']\n"
    )
    with pytest.raises(PolicyError, match="'add' and 'remove' .* tag 'y'"):
        evaluate(rules, inventory([{}]))


def test_read_only_keys_are_never_written(caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("batchtag"), "propagate", True)  # a CLI test may stop it
    snaps = [{"ro": {"lifecycle": "daily"}, "tags": {"o": "1"}}, {"tags": {"o": "2"}}]
    for text in ("set={lifecycle='x'}", "rename={o='lifecycle'}"):
        manifest = evaluate(policy(f"[[rule]]\nname='a'\n{text}"), inventory(snaps))
        assert manifest["snapshot_id"].str.endswith("1").all()  # the second snapshot only
        assert len(manifest) == (2 if "rename" in text else 1)  # o stays where it cannot move
    assert "tag 'lifecycle' is read-only on 1 snapshots; not written there" in caplog.text


def test_string_dtype_inventories_and_na_results_work():
    frame = inventory([{"tags": {"env": "PROD"}}, {}]).astype({"tag:env": "string"})
    rules = policy("[[rule]]\nname='a'\nwhere='`tag:env` != `tag:env`.str.lower()'\nlower=['env']")
    assert evaluate(rules, frame)["value"].tolist() == ["prod"]


def test_rows_outside_the_policy_scope_are_left_alone():
    frame = inventory([{}, {}, {}])
    frame["region_id"] = [1, 7, 9]
    rules = policy("[scope]\nregion_id = [1, 7]\n[[rule]]\nname='a'\nset={cc='x'}")
    assert evaluate(rules, frame)["region_id"].tolist() == [1, 7]


def test_a_where_cannot_reorder_or_cut_rows():
    for method in ("sort_values", "head"):
        with pytest.raises(PolicyError, match=f"where: method '{method}' is not allowed"):
            policy(f"[[rule]]\nname='a'\nwhere='size.{method}() > 10'\nset={{big='yes'}}")


# ---------------------------------------------------------------- copy from the volume

COPY = "[[rule]]\nname = 'inherit'\ncopy = {}\n"


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("'volume'", "copy must be a table, e.g. copy = {"),
        ("{ keys = ['a'] }", "copy has no from; copy takes tags from 'volume'"),
        ("{ from = 'instance', keys = ['a'] }", "copy has from = 'instance'; copy takes tags"),
        ("{ from = 'volume' }", "copy needs keys = a non-empty list of tag keys or patterns"),
        ("{ from = 'volume', keys = [] }", "copy needs keys = a non-empty list"),
        ("{ from = 'volume', keys = 'cost-center' }", "copy needs keys = a non-empty list"),
        ("{ from = 'volume', keys = [1] }", "copy needs keys = a non-empty list"),
        ("{ from = 'volume', keys = ['cost-[ab'] }", "key pattern 'cost-[ab' has an unclosed '['"),
        ("{ from = 'volume', keys = ['[!]'] }", "key pattern '[!]' has an unclosed '['"),
        ("{ from = 'volume', keys = ['a b'] }", "copy: key 'a b' contains whitespace"),
        ("{ from = 'volume', keys = ['a=b'] }", "copy: key 'a=b' contains '='"),
        ("{ from = 'volume', keys = ['a'], overwrite = 'yes' }", "overwrite must be true or false"),
        ("{ from = 'volume', key = ['a'] }", "copy: unknown key 'key' (did you mean 'keys'?)"),
    ],
)
def test_a_bad_copy_table_is_refused_at_load_naming_the_rule(table, expected):
    with pytest.raises(PolicyError) as caught:
        policy(COPY.format(table))
    message = str(caught.value)
    assert message.startswith("policy p.toml: rule 'inherit' (line 1): ")
    assert expected in message and "\n" not in message and caught.value.exit_code == 2


def test_a_rule_that_sets_a_key_its_copy_pattern_covers_is_refused():
    with pytest.raises(PolicyError, match="'cost-center' is written by both set and copy"):
        policy(COPY.format("{from='volume', keys=['cost-*']}") + "set = {cost-center='x'}")


def test_copy_patterns_are_fnmatch_and_case_sensitive():
    loaded = policy(COPY.format("{from='volume', keys=['cost-*', 'te?m', '[Oo]wner', 'App']}"))
    keys = ["cost-center", "cost-", "costcenter", "team", "teams", "Owner", "owner", "app"]
    assert loaded.rules[0].copy.matching(keys) == ["cost-center", "cost-", "team", "Owner", "owner"]
    assert loaded.needs_volume


VOLUME_SNAPS = [
    {"tags": {}, "volume": {"tags": {"cost-center": "cc-1", "team": "data", "env": "prod"}}},
    {"tags": {"cost-center": "mine"}, "volume": {"tags": {"cost-center": "cc-2"}}},
    {"tags": {"cost-center": "cc-3"}, "volume": {"tags": {"cost-center": "cc-3"}}},
    {"tags": {"team": "web"}, "volume": {"tags": {}}},  # the volume has none: nothing to copy
    {"tags": {"team": "ops"}},  # its volume is gone
]


def copied(table: str, snaps=VOLUME_SNAPS, extra: str = "") -> tuple[list[tuple], dict]:
    manifest = evaluate(policy(COPY.format(table) + extra), inventory(snaps))
    rows = [(r.snapshot_id[-1], r.op, r.key, r.value) for r in manifest.itertuples()]
    return rows, manifest.attrs["rules"]["inherit"]


def test_copy_fills_only_the_keys_a_snapshot_lacks():
    rows, stats = copied("{from='volume', keys=['cost-center', 'team']}")
    assert rows == [("0", "set", "cost-center", "cc-1"), ("0", "set", "team", "data")]
    assert stats == {"matched": 5, "noncompliant": 1, "orphans": 1}


def test_copy_with_overwrite_also_aligns_differing_values_and_never_deletes():
    rows, stats = copied("{from='volume', keys=['cost-*', 'team'], overwrite=true}")
    assert rows == [
        ("0", "set", "cost-center", "cc-1"),
        ("0", "set", "team", "data"),
        ("1", "set", "cost-center", "cc-2"),  # snapshot 3's team stays: its volume has none
    ]
    assert stats == {"matched": 5, "noncompliant": 2, "orphans": 1}


def test_a_copy_rule_where_selects_and_orphans_count_only_the_selected():
    rows, _ = copied("{from='volume', keys=['*']}", extra="where = 'size > 5'\n")
    assert rows == [
        ("0", "set", "cost-center", "cc-1"),
        ("0", "set", "env", "prod"),
        ("0", "set", "team", "data"),
    ]
    snaps = [{**s, "size": 1} if i == 4 else s for i, s in enumerate(VOLUME_SNAPS)]
    _, stats = copied("{from='volume', keys=['*']}", snaps, "where = 'size > 5'\n")
    assert stats == {"matched": 4, "noncompliant": 1, "orphans": 0}


def test_a_where_can_read_the_volume_columns():
    rows, _ = copied(
        "{from='volume', keys=['team']}",
        extra="where = \"`volume_tag:env` == 'prod' and volume_name.notna()\"\n",
    )
    assert rows == [("0", "set", "team", "data")]


def test_copy_clashing_with_another_rule_names_both_rules():
    other = "[[rule]]\nname='default'\nwhere='`tag:cost-center`.isna()'\nset={cost-center='u'}\n"
    text = COPY.format("{from='volume', keys=['cost-center']}") + other
    with pytest.raises(PolicyError) as caught:
        evaluate(policy(text), inventory(VOLUME_SNAPS))
    assert "rules 'inherit' and 'default' write different values to tag 'cost-center'" in str(
        caught.value
    ) and "sets 'cc-1' vs sets 'u'" in str(caught.value)
    # agreeing values are fine: the default only where the volume has no cost-center either
    fixed = other.replace("isna()'", "isna() and `volume_tag:cost-center`.isna()'")
    manifest = evaluate(
        policy(COPY.format("{from='volume', keys=['cost-center']}") + fixed),
        inventory(VOLUME_SNAPS),
    )
    assert manifest.set_index("snapshot_id")["value"].to_dict() == {
        "aaaaaaaa-0000-4000-8000-000000000000": "cc-1",
        "aaaaaaaa-0000-4000-8000-000000000003": "u",
        "aaaaaaaa-0000-4000-8000-000000000004": "u",
    }


def test_copy_skips_keys_read_only_on_the_snapshot():
    snaps = [{"ro": {"team": "sys"}, "volume": {"tags": {"team": "data"}}}]
    assert copied("{from='volume', keys=['team'], overwrite=true}", snaps)[0] == []


def test_a_policy_reading_volumes_refuses_an_inventory_without_them():
    for rule in (
        COPY.format("{from='volume', keys=['team']}"),
        "[[rule]]\nname = 'inherit'\nwhere = '`volume_tag:team`.isna()'\nset = {x='1'}\n",
    ):
        with pytest.raises(PolicyError, match="rule 'inherit' .* no volume_name column"):
            evaluate(policy(rule), inventory([{"tags": {}}], with_volume=False))
    plain = policy("[[rule]]\nname='a'\nset={x='1'}")
    assert not plain.needs_volume
    assert len(evaluate(plain, inventory([{}], with_volume=False))) == 1
