"""`copy` rules against the sandbox: snapshots inherit their volume's tags, exactly.

The expected state is computed here from the sandbox's own answers (`sb.snapshots()`,
`sb.volumes()`), not through batchtag's export: fill (keys the snapshot lacks) and align
(`overwrite = true`), orphans (deleted volumes) untouched and counted, a second run that
sends nothing, a volume changed between runs followed, and every request accounted for:
the snapshot pages, the volume pages and one PATCH per snapshot that changes.
"""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path

import pytest
from helpers import invoke_on

import batchtag

SNAPSHOTS = 1500  # 2 list pages of snapshots, 375 volumes: 1 page
PAGE = 1000
FILL = ["cost-center", "team"]
ALIGN = ["cost-*", "team"]


@pytest.fixture
def sb():
    with batchtag.sandbox(snapshots=SNAPSHOTS, env=False) as running:
        yield running


def policy_file(tmp_path: Path, keys: list[str], overwrite: bool, extra: str = "") -> Path:
    path = tmp_path / "inherit.toml"
    table = f'{{ from = "volume", keys = {keys!r}, overwrite = {str(overwrite).lower()} }}'
    path.write_text(
        f'[[rule]]\nname = "inherit"\ncopy = {table.replace(chr(39), chr(34))}\n{extra}'
    )
    return path


def connection(sb, tmp_path: Path, name: str) -> dict:
    return {
        "base_url": sb.url,
        "api_key": sb.api_key,
        "project_id": sb.project_id,
        "region_id": sb.region_id,
        "report": str(tmp_path / name),
        "rate": 100_000,
    }


def user_tags(item: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in item["tags"] if not t["read_only"]}


def read_only_tags(item: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in item["tags"] if t["read_only"]}


def expected_state(sb, keys: list[str], overwrite: bool) -> dict[str, dict[str, str]]:
    """The reference model: every snapshot's user tags once its volume's are copied."""
    volumes = {v["id"]: user_tags(v) for v in sb.volumes()}
    out = {}
    for snap in sb.snapshots():
        tags = user_tags(snap)
        for key, value in volumes.get(snap["volume_id"], {}).items():
            wanted = any(fnmatch.fnmatchcase(key, pattern) for pattern in keys)
            if wanted and key not in read_only_tags(snap) and (overwrite or key not in tags):
                tags[key] = value
        out[snap["id"]] = tags
    return out


def state(sb) -> dict[str, dict[str, str]]:
    return {snap["id"]: user_tags(snap) for snap in sb.snapshots()}


def orphans(sb) -> set[str]:
    volumes = {v["id"] for v in sb.volumes()}
    return {s["id"] for s in sb.snapshots() if s["volume_id"] not in volumes}


def requests(sb) -> dict[str, dict[str, int]]:
    """Requests per resource and method so far."""
    return {name: dict(r["requests"]) for name, r in sb.stats()["resources"].items()}


def sent_since(before: dict, after: dict) -> dict[str, dict[str, int]]:
    out = {}
    for name, methods in after.items():
        delta = {m: n - before.get(name, {}).get(m, 0) for m, n in methods.items()}
        if any(delta.values()):
            out[name] = {m: n for m, n in delta.items() if n}
    return out


def pages(count: int) -> int:
    return max(1, math.ceil(count / PAGE))


def listing(sb) -> dict[str, dict[str, int]]:
    """What reading the scope costs: its snapshot pages and its volume pages."""
    return {
        "snapshots": {"GET": pages(SNAPSHOTS)},
        "volumes": {"GET": pages(len(sb.volumes()))},
    }


def changed(before: dict, after: dict) -> set[str]:
    return {sid for sid in after if after[sid] != before[sid]}


def test_fill_reaches_the_exact_expected_state_with_only_pages_and_changes(sb, tmp_path):
    before = state(sb)
    read_only_before = {s["id"]: read_only_tags(s) for s in sb.snapshots()}
    expected = expected_state(sb, FILL, overwrite=False)
    to_change = changed(before, expected)
    gone = orphans(sb)
    assert to_change and gone and not to_change & gone  # the seed has both kinds
    start = requests(sb)
    path = policy_file(tmp_path, FILL, overwrite=False)
    report = batchtag.enforce(path, **connection(sb, tmp_path, "fill.csv"))
    assert state(sb) == expected  # every snapshot, every user tag
    assert {s["id"]: read_only_tags(s) for s in sb.snapshots()} == read_only_before
    assert set(report["snapshot_id"]) == to_change and set(report["status"]) == {"ok"}
    rules = report.attrs["manifest"].attrs["rules"]["inherit"]
    assert rules == {"matched": SNAPSHOTS, "noncompliant": len(to_change), "orphans": len(gone)}
    wanted = listing(sb)
    wanted["snapshots"]["PATCH"] = len(to_change)
    assert sent_since(start, requests(sb)) == wanted  # nothing read twice, nothing else sent


def test_align_then_a_second_run_sends_only_pages_then_a_volume_change_is_followed(sb, tmp_path):
    path = policy_file(tmp_path, ALIGN, overwrite=True)
    before = state(sb)
    expected = expected_state(sb, ALIGN, overwrite=True)
    # align rewrites values that differ, which fill leaves alone
    fill = expected_state(sb, ALIGN, overwrite=False)
    assert changed(before, expected) > changed(before, fill)
    batchtag.enforce(path, **connection(sb, tmp_path, "1.csv"))
    assert state(sb) == expected
    # a second run: the pages, no PATCH, an empty report
    start = requests(sb)
    again = batchtag.enforce(path, **connection(sb, tmp_path, "2.csv"))
    assert again.empty and sent_since(start, requests(sb)) == listing(sb)
    # someone retags a volume: its snapshots follow, the others are not touched
    gone = orphans(sb)
    counts: dict[str, int] = {}
    for snap in sb.snapshots():
        counts[snap["volume_id"]] = counts.get(snap["volume_id"], 0) + 1
    volume = max(
        (v for v in sb.volumes() if "team" in user_tags(v)), key=lambda v: counts.get(v["id"], 0)
    )
    sb.set_volume_tags(volume["id"], {"cost-center": "cc-moved", "team": None})
    followers = {s["id"] for s in sb.snapshots() if s["volume_id"] == volume["id"]}
    assert len(followers) > 1 and not followers & gone
    before = state(sb)
    start = requests(sb)
    third = batchtag.enforce(path, **connection(sb, tmp_path, "3.csv"))
    after = state(sb)
    assert changed(before, after) == followers == set(third["snapshot_id"])
    for sid in followers:  # the new value; team, which the volume lost, is kept
        assert after[sid] == {**before[sid], "cost-center": "cc-moved"}
        assert after[sid]["team"] == user_tags(volume)["team"]
    wanted = listing(sb)
    wanted["snapshots"]["PATCH"] = len(followers)
    assert sent_since(start, requests(sb)) == wanted


def test_the_undo_file_of_a_copy_run_puts_every_snapshot_back(sb, tmp_path):
    """The before-state enforce records comes from its own export (nothing read again)."""
    before = state(sb)
    path = policy_file(tmp_path, ALIGN, overwrite=True)
    undo = tmp_path / "undo.jsonl"
    batchtag.enforce(path, **connection(sb, tmp_path, "run.csv"), undo_file=str(undo))
    assert state(sb) != before
    back = batchtag.apply(str(undo), **connection(sb, tmp_path, "back.csv"))
    assert set(back["status"]) == {"ok"} and state(sb) == before


def test_fill_follows_a_key_a_volume_gains_between_runs(sb, tmp_path):
    path = policy_file(tmp_path, ["ticket"], overwrite=False)
    start = requests(sb)
    assert batchtag.enforce(path, **connection(sb, tmp_path, "1.csv")).empty  # no volume has it
    assert sent_since(start, requests(sb)) == listing(sb)
    used = {s["volume_id"] for s in sb.snapshots()}
    volume = next(v for v in sb.volumes() if v["id"] in used)
    sb.set_volume_tags(volume["id"], {"ticket": "OPS-7"})
    followers = {s["id"] for s in sb.snapshots() if s["volume_id"] == volume["id"]}
    before = state(sb)
    report = batchtag.enforce(path, **connection(sb, tmp_path, "2.csv"))
    assert set(report["snapshot_id"]) == followers
    after = state(sb)
    assert changed(before, after) == followers
    assert all(after[sid] == {**before[sid], "ticket": "OPS-7"} for sid in followers)


def test_cli_check_counts_the_orphans_per_copy_rule_and_sends_nothing(sb, tmp_path):
    path = policy_file(tmp_path, FILL, overwrite=False)
    to_change = changed(state(sb), expected_state(sb, FILL, overwrite=False))
    start = requests(sb)
    check = invoke_on(sb, ["enforce", str(path), "--check"])
    assert check.exit_code == 2, check.output
    line = (
        f"  inherit: {SNAPSHOTS} matched, {len(to_change)} noncompliant, "
        f"{len(orphans(sb))} whose volume is gone (left alone)"
    )
    assert line in check.output.splitlines()
    assert sent_since(start, requests(sb)) == listing(sb)
    args = ["--report", str(tmp_path / "r.csv"), "--rate", "100000", "--yes"]
    run = invoke_on(sb, ["enforce", str(path), *args])
    assert run.exit_code == 0, run.output
    clean = invoke_on(sb, ["enforce", str(path), "--check"])
    assert clean.exit_code == 0 and "clean: 0 tag changes on 0 snapshots" in clean.output


def test_the_volumes_are_read_only_when_a_rule_needs_them(sb, tmp_path):
    plain = tmp_path / "plain.toml"
    plain.write_text("[[rule]]\nname = 'env'\nwhere = '`tag:env`.isna()'\nset = { env = 'x' }\n")
    start = requests(sb)
    batchtag.enforce(plain, check=True, **connection(sb, tmp_path, "p.csv"))
    assert sent_since(start, requests(sb)) == {"snapshots": {"GET": pages(SNAPSHOTS)}}
    by_where = tmp_path / "where.toml"
    by_where.write_text(
        "[[rule]]\nname = 'data'\nwhere = \"`volume_tag:team` == 'data'\"\nset = { data = 'y' }\n"
    )
    start = requests(sb)
    drift = batchtag.enforce(by_where, check=True, **connection(sb, tmp_path, "w.csv"))
    assert sent_since(start, requests(sb)) == listing(sb)
    volumes = {v["id"] for v in sb.volumes() if user_tags(v).get("team") == "data"}
    data = {s["id"] for s in sb.snapshots() if s["volume_id"] in volumes}
    now = state(sb)
    assert set(drift["snapshot_id"]) == {s for s in data if "data" not in now[s]}


def test_a_copy_clashing_with_another_rule_is_exit_2_naming_both_and_nothing_is_sent(sb, tmp_path):
    path = policy_file(
        tmp_path,
        ["cost-center"],
        overwrite=False,
        extra="[[rule]]\nname = 'default'\nwhere = '`tag:cost-center`.isna()'\n"
        "set = { cost-center = 'unassigned' }\n",
    )
    result = invoke_on(sb, ["enforce", str(path), "--yes", "--report", str(tmp_path / "r.csv")])
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert "\n" not in message and "rules 'inherit' and 'default' write different values" in message
    assert "PATCH" not in requests(sb)["snapshots"] and not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('{ from = "instance", keys = ["team"] }', "copy has from = 'instance'"),
        ('{ from = "volume", keys = [] }', "copy needs keys = a non-empty list"),
        ('{ from = "volume", keys = ["cost-[x"] }', "has an unclosed '['"),
    ],
)
def test_cli_a_bad_copy_table_is_one_line_exit_2_and_no_request(sb, tmp_path, table, expected):
    path = tmp_path / "bad.toml"
    path.write_text(f"[[rule]]\nname = 'inherit'\ncopy = {table}\n")
    result = invoke_on(sb, ["enforce", str(path), "--yes"])
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert "\n" not in message and expected in message
    assert message.startswith(f"error: policy {path}: rule 'inherit' (line 1): ")
    assert sb.stats()["total_requests"] == 0
