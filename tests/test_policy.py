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
    snaps = [
        {"tags": {"cost-center": "cc-1", "env": "prod"}},  # compliant
        {"tags": {"env": "PROD"}},  # no cost-center, env upper
        {"tags": {"cost-center": "cc-1", "tmp": "x", "Owner": "bob"}},
        {"tags": {"cost-center": "cc-2", "env": "test", "retention": "30d"}},  # compliant
        {"tags": {"cost-center": "cc-2", "env": "test"}, "ro": {"created-by": "gcore"}},
    ]
    manifest = evaluate(load_policy(SAMPLE), inventory(snaps))
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    got = [(r.snapshot_id[-1], r.op, r.key, r.value, r.rule) for r in manifest.itertuples()]
    assert got == [
        ("1", "set", "cost-center", "unassigned", "default cost-center; env in lower case"),
        ("1", "set", "env", "prod", "default cost-center; env in lower case"),
        ("2", "delete", "Owner", "", "no tmp tags; owner, not Owner"),
        ("2", "set", "owner", "bob", "no tmp tags; owner, not Owner"),
        ("2", "delete", "tmp", "", "no tmp tags; owner, not Owner"),
        ("4", "set", "retention", "7d", "test snapshots are short-lived"),
    ]
    assert manifest.attrs["rules"]["default cost-center"] == {
        "selected": 1,
        "changed": 1,
        "refused": 0,
    }
    plan = read_plan(manifest)  # a valid manifest: the rule column passes through
    assert plan.passthrough == [RULE_COLUMN] and len(plan) == 3


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
