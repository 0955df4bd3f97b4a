"""Policies: loading and its errors, evaluation semantics, and the fixpoint property."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchtag.manifest import read_plan
from batchtag.policy import PolicyError, load_policy, parse_policy
from batchtag.policy_eval import MANIFEST_COLUMNS, RULE_COLUMN, evaluate

SAMPLE = Path(__file__).parent.parent / "samples" / "cost-policy.toml"


BASE = ["project_id", "region_id", "snapshot_id", "name", "status", "size"]


def inventory(snapshots: list[dict]) -> pd.DataFrame:
    """An export-shaped frame: each snapshot is {"tags": {...}, "ro": {...}, "size": n}."""
    rows = []
    for i, snap in enumerate(snapshots):
        row = {
            "project_id": 1,
            "region_id": 1,
            "snapshot_id": f"aaaaaaaa-0000-4000-8000-{i:012d}",
            "name": f"snap-{i}",
            "status": "available",
            "size": snap.get("size", 10),
        }
        row.update({f"tag:{k}": v for k, v in snap.get("tags", {}).items()})
        row.update({f"ro:{k}": v for k, v in snap.get("ro", {}).items()})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys(BASE + [c for r in rows for c in r])))
    frame = frame.astype({"project_id": "int64", "region_id": "int64", "size": "int64"})
    tag_columns = [c for c in frame.columns if c.startswith(("tag:", "ro:"))]
    frame[tag_columns] = frame[tag_columns].astype(object).where(frame[tag_columns].notna(), None)
    return frame


def user_tags(frame: pd.DataFrame) -> list[dict[str, str]]:
    columns = [c for c in frame.columns if c.startswith("tag:")]
    return [
        {c[4:]: v for c, v in zip(columns, values, strict=True) if isinstance(v, str)}
        for values in frame[columns].itertuples(index=False)
    ]


def after(snapshots: list[dict], manifest: pd.DataFrame) -> list[dict]:
    """The reference model of applying a long set/delete manifest to the snapshots."""
    out = [{**s, "tags": dict(s.get("tags", {}))} for s in snapshots]
    index = {f"aaaaaaaa-0000-4000-8000-{i:012d}": i for i in range(len(out))}
    for row in manifest.itertuples(index=False):
        tags = out[index[row.snapshot_id]]["tags"]
        if row.op == "set":
            tags[row.key] = row.value
        else:
            assert row.op == "delete" and row.key in tags
            del tags[row.key]
    return out


def policy(text: str):
    return parse_policy(text, "p.toml")


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


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("size >", "rule 'a' (line 1): where: SyntaxError"),
        ("sise > 100", "name 'sise' is not defined"),
        ("`tag:env`", "where must be a condition"),
        ("size + 1", "where must be a condition"),
        ("`tag:env`.no_such_method()", "rule 'a' (line 1): where: AttributeError"),
    ],
)
def test_a_bad_where_is_refused_at_load_naming_the_rule(where, expected):
    with pytest.raises(PolicyError) as caught:
        policy(f'[[rule]]\nname = "a"\nwhere = "{where}"\nlower = ["env"]\n')
    assert expected in str(caught.value)


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
    assert manifest.attrs["rules"]["default cost-center"] == {"selected": 1, "changed": 1}
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


# ---------------------------------------------------------------- the property

KEYS = ["a", "b", "c", "d", "e"]
VALUES = ["x", "X", "y", "Yy"]
tags_st = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=4)
snapshot_st = st.fixed_dictionaries(
    {"tags": tags_st, "size": st.sampled_from([1, 10, 100])},
    optional={"ro": st.fixed_dictionaries({"ro": st.sampled_from(VALUES)})},
)


@st.composite
def where_st(draw) -> str | None:
    key, value = draw(st.sampled_from(KEYS)), draw(st.sampled_from(VALUES))
    return draw(
        st.sampled_from(
            [
                None,
                f"`tag:{key}`.isna()",
                f"`tag:{key}`.notna()",
                f"`tag:{key}` == '{value}'",
                f"`tag:{key}`.notna() and `tag:{key}` != `tag:{key}`.str.lower()",
                "size > 5",
                "`ro:ro`.notna()",
            ]
        )
    )


@st.composite
def rules_st(draw) -> str:
    """Rules whose written keys are disjoint (no two actions write one key), so they cannot
    conflict; their `where`s read any key, so they chain."""
    pool = list(draw(st.permutations(KEYS)))
    text = []
    for n in range(draw(st.integers(1, 3))):
        lines = [f"[[rule]]\nname = 'r{n}'"]
        where = draw(where_st())
        if where:
            lines.append(f'where = "{where}"')
        for action in draw(
            st.lists(
                st.sampled_from(["set", "delete", "lower", "upper", "rename"]),
                min_size=1,
                max_size=2,
                unique=True,
            )
        ):
            need = 2 if action == "rename" else 1
            if len(pool) < need:
                break
            keys = [pool.pop() for _ in range(need)]
            if action == "set":
                lines.append(f"set = {{ {keys[0]} = '{draw(st.sampled_from(VALUES))}' }}")
            elif action == "rename":
                lines.append(f"rename = {{ {keys[0]} = '{keys[1]}' }}")
            else:
                lines.append(f"{action} = ['{keys[0]}']")
        if len(lines) > 1 + bool(where):
            text.append("\n".join(lines))
    return "\n".join(text) or "[[rule]]\nname='r'\nset={a='x'}"


def intent_holds(rule, before: dict, final: dict) -> bool:
    """What `rule` asks of one snapshot it selected in the original inventory."""
    checks = [final.get(k) == v for k, v in rule.set.items()]
    checks += [k not in final for k in rule.delete]
    checks += [final.get(k) == before[k].lower() for k in rule.lower if k in before]
    checks += [final.get(k) == before[k].upper() for k in rule.upper if k in before]
    checks += [
        o not in final and final.get(n) == before[o] for o, n in rule.rename.items() if o in before
    ]
    return all(checks)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snaps=st.lists(snapshot_st, max_size=6), text=rules_st())
def test_enforcing_satisfies_every_rule_and_a_second_evaluation_is_empty(snaps, text):
    rules = parse_policy(text, "generated")
    frame = inventory(snaps)
    manifest = evaluate(rules, frame)
    # one row per (snapshot, key), and every row changes something
    assert not manifest.duplicated(["snapshot_id", "key"]).any()
    final = after(snaps, manifest)
    for snapshot_id, before, end in zip(frame["snapshot_id"], snaps, final, strict=True):
        keys = {*before["tags"], *end["tags"]}
        changed = {k for k in keys if before["tags"].get(k) != end["tags"].get(k)}
        assert set(manifest[manifest["snapshot_id"] == snapshot_id]["key"]) == changed
    # the intent of every rule holds on the snapshots it selected
    for rule in rules.rules:
        for i, hit in enumerate(rule.matches(frame, "generated")):
            if hit:
                assert intent_holds(rule, snaps[i]["tags"], final[i]["tags"]), (rule, snaps[i])
    # stable: evaluating again on the result changes nothing (a second run sends nothing)
    again = evaluate(rules, inventory(final))
    assert again.empty, again
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


@settings(max_examples=100, deadline=None)
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


def test_rows_outside_the_policy_scope_are_left_alone():
    frame = inventory([{}, {}, {}])
    frame["region_id"] = [1, 7, 9]
    rules = policy("[scope]\nregion_id = [1, 7]\n[[rule]]\nname='a'\nset={cc='x'}")
    assert evaluate(rules, frame)["region_id"].tolist() == [1, 7]


def test_a_where_that_reorders_or_cuts_rows_still_selects_by_row():
    frame = inventory([{"size": 100}, {"size": 1}, {"size": 50}])
    sorted_ = policy("[[rule]]\nname='a'\nwhere='size.sort_values() > 10'\nset={big='yes'}")
    assert evaluate(sorted_, frame)["snapshot_id"].str[-1].tolist() == ["0", "2"]
    cut = policy("[[rule]]\nname='a'\nwhere='size.head(1) > 10'\nset={big='yes'}")
    assert evaluate(cut, frame)["snapshot_id"].str[-1].tolist() == ["0"]
