"""Evaluating a policy on an inventory: the manifest of changes that makes it hold.

Semantics (the order of rules in the file never matters):

- **Simultaneous passes.** Every rule is evaluated against the same state: the first pass
  against the exported (original) inventory, not rule after rule. Each action becomes
  concrete writes per (snapshot, key): ``set`` the value; ``delete`` removal; ``lower`` /
  ``upper`` the current value in that case (only where the key exists); ``rename old = new``
  removal of ``old`` and ``new`` set to the current value of ``old`` (only where ``old``
  exists). Values are read from the inventory, so the manifest holds ``set`` and
  ``delete`` rows.
- **No silent overwrite.** A rename onto a ``new`` that already holds a different value is
  refused there, unless the rule's rename says ``overwrite = true``: the manifest gets the
  ``rename`` row itself, which `apply` (and the plan) report as a ``conflict`` naming the
  snapshot, with the rule in its ``rule`` column; nothing of it is written. (When another
  rule writes one of its two keys there, that write goes ahead and the refused rename is
  only logged.)
- **Conflicts.** Two writes to one key of one snapshot must agree: different values (or a
  value and a removal) are an error naming both rules and the snapshot, even when one of them
  would change nothing (otherwise the two rules would undo each other on alternate runs). So
  ``rename a = b`` plus another rule's ``set b = x`` conflict unless ``x`` is ``a``'s value.
- **Settling.** When the writes change a snapshot so that some rule's ``where`` now selects
  it (chained rules), further passes run on the changed state until nothing changes, under
  the same conflict check. Every key of a snapshot changes at most once, so this ends, and
  the result is stable: evaluating the policy again on it gives an empty manifest (a second
  ``enforce`` sends nothing; ``enforce --check`` exits 0), but for the renames it refuses,
  which it keeps reporting.
- **Minimal.** Only writes that change something become rows: a ``set`` to the current
  value, a ``delete`` of an absent key, a ``lower`` of a lower-case value are dropped.
- **Read-only tags** cannot be written (the API keeps them): writes to a key that is
  read-only on a snapshot are skipped there (with a warning), and so is a rename onto one.
- **Copy from the volume.** ``copy`` reads the inventory's ``volume_tag:<key>`` columns
  (the volume's user tags): for each key its patterns match, a selected snapshot whose
  volume has the key gets the volume's value when it lacks the key (``overwrite = true``:
  also when its value differs). A key the volume lacks is left as it is (never deleted).
  A snapshot whose volume is gone (``volume_name`` NA) is left alone; per copy rule,
  ``attrs["rules"]`` counts them (``orphans``). Its writes are claims like any other rule's,
  so a different value from another rule is a conflict naming both.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from batchtag.inventory import VOLUME_NAME, is_volume_column
from batchtag.model import LONG_COLUMNS, VOLUME_TAG_PREFIX
from batchtag.policy._policy import (
    INVENTORY_COLUMNS,
    SCOPE_KEYS,
    TAGS_COLUMN,
    Policy,
    PolicyError,
    Rule,
    is_tag_column,
    ro_column,
    tag_column,
)

log = logging.getLogger("batchtag.policy._policy")

RULE_COLUMN = "rule"  # the passthrough column naming the rule(s) behind each change
# renames refused (`new` holds another value); ord: the rename's place in its rule
REFUSED_COLUMNS = ("row", "old", "new", "rule", "ord", "pass")
RULE_SEPARATOR = "; "
KEY_COLUMNS = INVENTORY_COLUMNS[:3]  # project_id, region_id, snapshot_id
MANIFEST_COLUMNS = (*KEY_COLUMNS, *LONG_COLUMNS, RULE_COLUMN)
# value None = remove the key; act: the action's place in its rule; pass: the pass it came in
CLAIM_COLUMNS = ("row", "key", "value", "rule", "act", "pass")
MAX_PASSES = 100  # a safety net: every key of a snapshot changes at most once
CASES = {"lower": str.lower, "upper": str.upper}


def evaluate(policy: Policy, inventory: pd.DataFrame) -> pd.DataFrame:
    """The long-form manifest that makes `inventory` satisfy every rule of `policy`.

    Parameters
    ----------
    policy : Policy
        From `batchtag.policy._policy.load_policy`.
    inventory : pandas.DataFrame
        An export: project_id, region_id, snapshot_id, the other inventory columns,
        ``tag:<key>`` per user tag and ``ro:<key>`` per read-only tag (NA = no such tag);
        with the volumes joined (needed when `Policy.needs_volume`), ``volume_name`` and
        ``volume_tag:<key>``. Rows outside the policy's [scope] are left alone.

    Returns
    -------
    pandas.DataFrame
        Columns project_id, region_id, snapshot_id, op (``set``/``delete``), key, value
        ("" for delete), rule (the rules behind the snapshot's changes, joined by "; "): one
        row per (snapshot, key) that changes, in inventory order. ``attrs["rules"]`` maps
        each rule to the snapshots it ``matched`` (its ``where`` selected them) and those
        ``noncompliant`` (it changes them); for a copy rule also the matched ones whose
        volume is gone: ``orphans``.

    Raises
    ------
    PolicyError
        Rules writing different values to one key of one snapshot, a ``where`` that fails
        on this inventory, or a policy reading volumes on an inventory without them.

    Examples
    --------
    >>> manifest = evaluate(load_policy("samples/cost-policy.toml"), batchtag.export())
    >>> batchtag.apply(manifest)  # doctest: +SKIP
    """
    evaluation = Evaluation(policy)
    manifest = evaluation.add(inventory)
    manifest.attrs["rules"] = evaluation.finish()
    return manifest


def join_manifests(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The manifest of the whole inventory from its chunks' (`Evaluation.add`): their rows
    in order, in the dtypes one evaluation gives (a chunk without rows has none to infer
    them from, so it adds nothing)."""
    kept = [p for p in parts if len(p)] or parts[:1]
    return kept[0].reset_index(drop=True) if len(kept) == 1 else pd.concat(kept, ignore_index=True)


@dataclass
class _Conflict:
    """Two writes to one slot that disagree, found in a chunk: the pass that found it, the
    first such slot's place in the claims' order (pass, rule, action, row), how many slots
    clash in that pass, and the message's parts (`Evaluation.finish` words it)."""

    passes: int
    order: tuple[int, int, int, int]
    count: int
    text: str  # the message up to the count of further conflicts


@dataclass
class _Refusal:
    """The renames one rule had refused (and kept as ``rename`` rows): how many, and the
    first one in the whole inventory's order (pass, rename, row) for the warning."""

    count: int
    order: tuple[int, int, int]
    old: str
    new: str
    ids: tuple[Any, Any, Any]


class Evaluation:
    """`evaluate` a chunk of inventory rows at a time, with the same manifest rows, counts,
    warnings and errors as one evaluation of the whole inventory.

    Each snapshot's writes depend on its own row only, so a chunk's manifest is the whole
    one's rows for those snapshots; what spans chunks is gathered here and said once by
    `finish`: the counts of ``attrs["rules"]``, the read-only and refused-rename warnings
    (counts summed, the first example in inventory order), and the first conflict (the
    first in the order one evaluation finds them, with the count of the others).

    Examples
    --------
    >>> evaluation = Evaluation(policy)  # doctest: +SKIP
    >>> parts = [evaluation.add(chunk) for chunk in chunks]  # doctest: +SKIP
    >>> rules = evaluation.finish()  # doctest: +SKIP
    """

    def __init__(self, policy: Policy):
        self.policy = policy
        count = len(policy.rules)
        self.matched = [0] * count
        self.orphans: list[int | None] = [0 if r.copy is not None else None for r in policy.rules]
        self.changed: Counter = Counter()
        self.held: Counter = Counter()
        self.read_only: dict[tuple[int, int], list] = {}  # (rule, action) -> [key, count]
        self.shadowed: Counter = Counter()  # rule -> refused renames another rule overrides
        self.refusals: dict[int, _Refusal] = {}
        self.conflict: _Conflict | None = None
        self.rows = 0  # inventory rows inside the scope, in the chunks so far
        self.written = 0  # manifest rows so far: the next chunk's first label

    def add(self, inventory: pd.DataFrame) -> pd.DataFrame:
        """The manifest rows of one chunk (labelled on from the previous chunks' rows).

        Raises
        ------
        PolicyError
            An inventory without the key columns (or the volumes a rule reads), a
            ``where`` that fails on it, rules that do not settle. A conflict is kept for
            `finish` (the chunk's rows are then left out).
        """
        policy = self.policy
        missing = [c for c in KEY_COLUMNS if c not in inventory.columns]
        if missing:
            raise PolicyError(f"the inventory has no {', '.join(missing)} column")
        _check_volumes(policy, inventory)
        original = _prepared(inventory, policy)
        base, self.rows = self.rows, self.rows + len(original)
        state = original.copy(deep=False)  # `_apply` makes new frames, never writes in place
        claims = _empty_claims()
        refused: list[pd.DataFrame] = []
        first = True
        moved: set[str] | None = None  # the columns the last pass changed; None: first pass
        for passes in range(MAX_PASSES):
            notes = self.read_only if first else None
            writes, selected, gone, refusals = _writes(policy, state, notes, moved=moved)
            writes["pass"] = passes
            refusals["pass"] = passes
            if first:
                self.matched = [a + b for a, b in zip(self.matched, selected, strict=True)]
                self.orphans = [
                    None if a is None else a + b for a, b in zip(self.orphans, gone, strict=True)
                ]
                first = False
            claims, conflict = _merge(claims, writes, policy, original, passes, base)
            if conflict is not None:
                self._conflicted(conflict)
                return _empty_manifest()
            refused.append(refusals)
            state, moved = _apply(state, writes)
            if not moved:
                manifest, changed, rows = _manifest(claims, original, policy)
                manifest = self._with_refused(manifest, rows, claims, refused, original, base)
                self.changed.update(changed.to_dict())
                manifest.index = pd.RangeIndex(self.written, self.written + len(manifest))
                self.written += len(manifest)
                return manifest
        raise PolicyError(
            f"policy {policy.source}: the rules did not settle after {MAX_PASSES} passes"
        )

    def _conflicted(self, found: _Conflict) -> None:
        """Keep the conflict one evaluation would raise: those of its first pass that has
        any, counted together, the first in claims' order named."""
        kept = self.conflict
        if kept is None or found.passes < kept.passes:
            self.conflict = found
        elif found.passes == kept.passes:
            first = found if found.order < kept.order else kept
            self.conflict = replace(first, count=kept.count + found.count)

    def _with_refused(self, manifest, rows, claims, refused, original, base) -> pd.DataFrame:
        policy = self.policy
        manifest, kept, shadowed = _with_refused(manifest, rows, claims, refused, original, policy)
        self.shadowed.update(shadowed)
        self.held.update(kept.drop_duplicates(["row", "rule"])["rule"].value_counts().to_dict())
        for rule, group in kept.groupby("rule"):
            at = group.iloc[0]
            order = (int(at["pass"]), int(at["ord"]), base + int(at["row"]))
            ids = original.iloc[int(at["row"])]
            found = _Refusal(
                len(group),
                order,
                at["old"],
                at["new"],
                (ids["project_id"], ids["region_id"], ids["snapshot_id"]),
            )
            known = self.refusals.get(int(rule))
            if known is not None:
                first = found if found.order < known.order else known
                found = replace(first, count=known.count + found.count)
            self.refusals[int(rule)] = found
        return manifest

    def finish(self) -> dict[str, dict]:
        """Say what spans the chunks (warnings, then the conflict or the per-rule counts)
        and return ``attrs["rules"]`` of the whole manifest.

        Raises
        ------
        PolicyError
            Rules writing different values to one key of one snapshot.
        """
        policy = self.policy
        for (rule, _), (key, count) in sorted(self.read_only.items()):
            log.warning(
                "%s: tag %r is read-only on %d snapshots; not written there",
                policy.rules[rule].label,
                key,
                count,
            )
        if self.conflict is not None:
            more = self.conflict.count - 1
            tail = f" (and {more} more conflicts)" if more else ""
            raise PolicyError(f"{self.conflict.text}{tail}; nothing was sent")
        for rule, count in sorted(self.shadowed.items()):
            log.warning(
                "%s: rename refused on %d snapshots whose new key holds another value, and "
                "another rule writes those keys there",
                policy.rules[rule].label,
                count,
            )
        for rule, found in sorted(self.refusals.items()):
            log.warning(
                "%s: rename %r -> %r refused on %d snapshots whose %r holds another value (e.g. "
                "%s/%s/%s); overwrite = true in the rename replaces it",
                policy.rules[rule].label,
                found.old,
                found.new,
                found.count,
                found.new,
                *found.ids,
            )
        return _stats(policy, self.matched, self.changed, self.orphans, self.held)


def _check_volumes(policy: Policy, inventory: pd.DataFrame) -> None:
    """A policy that reads the volumes needs them joined: without ``volume_name`` every
    copy would silently find nothing."""
    if VOLUME_NAME in inventory.columns:
        return
    for rule in policy.rules:
        if rule.needs_volume:
            reads = "copies from the volume" if rule.copy else "reads the volume in its where"
            raise PolicyError(
                f"policy {policy.source}: {rule.label} {reads}, but the inventory has no "
                f"{VOLUME_NAME} column: export it with the volumes joined (with_volume=True)"
            )


def _prepared(inventory: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """The inventory as rules see it: only the rows inside the policy's [scope], positional
    index, no ``tags`` dict column (``where`` uses the tag: columns), and all-NA tag columns
    as objects (a CSV reader makes them float, where ``.str`` would fail)."""
    inside = np.ones(len(inventory), dtype=bool)
    for name in SCOPE_KEYS:
        if getattr(policy, name) is not None:
            inside &= inventory[name].astype("int64").isin(getattr(policy, name)).to_numpy()
    frame = inventory if inside.all() else inventory[inside]  # (copy-on-write: no copy)
    frame = frame.drop(columns=[TAGS_COLUMN], errors="ignore").reset_index(drop=True)
    floats = [
        c
        for c in frame.columns
        if (is_tag_column(c) or is_volume_column(c)) and frame[c].dtype.kind == "f"
    ]
    if floats:  # one new frame, not one column replaced at a time
        objects = {c: pd.Series(present(frame, c), dtype=object) for c in floats}
        frame = pd.DataFrame({c: objects.get(c, frame[c]) for c in frame.columns})
    return frame


def present(frame: pd.DataFrame, column: str) -> np.ndarray:
    """The column's cells as objects, None where missing (or when there is no such column)."""
    if column not in frame.columns:
        return np.full(len(frame), None, dtype=object)
    cells = frame[column]
    values = cells.to_numpy(dtype=object, copy=True)
    values[pd.isna(cells).to_numpy()] = None
    return values


def _empty_claims() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in CLAIM_COLUMNS})


def _empty_manifest() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in MANIFEST_COLUMNS})


@dataclass
class _Writes:
    rows: np.ndarray
    key: str
    values: np.ndarray  # objects; None = remove


def _actions(
    rule: Rule, frame: pd.DataFrame, rows: np.ndarray, refused: list[tuple]
) -> Iterator[_Writes]:
    """Each action of `rule` on the selected `rows`, as concrete writes; renames onto a key
    holding a different value (without `overwrite`) go to `refused` as (rows, old, new)."""
    for key, value in rule.set.items():
        yield _Writes(rows, key, np.full(len(rows), value, dtype=object))
    for key in rule.delete:
        yield _Writes(rows, key, np.full(len(rows), None, dtype=object))
    for case, keys in (("lower", rule.lower), ("upper", rule.upper)):
        for key in keys:
            current = present(frame, tag_column(key))[rows]
            has = current != None  # noqa: E711 - elementwise on an object array
            converted = np.array([CASES[case](v) for v in current[has]], dtype=object)
            yield _Writes(rows[has], key, converted)
    for old, new in rule.rename.items():
        current = present(frame, tag_column(old))[rows]
        has = (current != None) & (present(frame, ro_column(new))[rows] == None)  # noqa: E711
        if not rule.rename_overwrite:
            there = present(frame, tag_column(new))[rows]
            clash = has & (there != None) & (there != current)  # noqa: E711
            if clash.any():
                refused.append((rows[clash], old, new))
                has &= ~clash
        yield _Writes(rows[has], old, np.full(int(has.sum()), None, dtype=object))
        yield _Writes(rows[has], new, current[has])
    if rule.copy is not None:
        yield from _copies(rule, frame, rows)


def _copies(rule: Rule, frame: pd.DataFrame, rows: np.ndarray) -> Iterator[_Writes]:
    """A copy's writes: per key it matches among the volumes' tag keys, the volume's value
    where the snapshot lacks the key (or, with overwrite, differs). Only selected rows whose
    volume exists and has the key."""
    copy = rule.copy
    assert copy is not None
    found = present(frame, VOLUME_NAME)[rows] != None  # noqa: E711
    prefix = VOLUME_TAG_PREFIX
    available = [c[len(prefix) :] for c in frame.columns if c.startswith(prefix)]
    for key in copy.matching(available):
        source = present(frame, VOLUME_TAG_PREFIX + key)[rows]
        take = found & (source != None)  # noqa: E711
        if not copy.overwrite:
            take &= present(frame, tag_column(key))[rows] == None  # noqa: E711
        yield _Writes(rows[take], key, source[take])


def _orphans(rule: Rule, frame: pd.DataFrame, rows: np.ndarray) -> int | None:
    """How many of a copy rule's selected rows have no volume (None for other rules)."""
    if rule.copy is None:
        return None
    return int((present(frame, VOLUME_NAME)[rows] == None).sum())  # noqa: E711


def _writes(
    policy: Policy,
    frame: pd.DataFrame,
    read_only_notes: dict[tuple[int, int], list] | None,
    moved: set[str] | None = None,
) -> tuple[pd.DataFrame, list[int], list[int | None], pd.DataFrame]:
    """Every rule's writes on `frame` (a claims frame), how many rows each selected,
    per copy rule how many of those have no volume, and the renames refused
    (`REFUSED_COLUMNS`: the new key holds another value). Writes skipped on read-only tags
    are counted in `read_only_notes` (per (rule, action): [key, snapshots]) when given.

    With `moved` (the columns the previous pass changed), a rule reading none of them is
    left out: its writes are those of the previous pass, already claimed and applied (and
    the counts are only those of the first pass, which has no `moved`)."""
    parts: list[tuple[np.ndarray, str, np.ndarray, int, int]] = []
    selected, orphans = [], []
    refusals: list[pd.DataFrame] = []
    for index, rule in enumerate(policy.rules):
        if moved is not None and rule.copy is None and moved.isdisjoint(_reads(rule)):
            continue  # (a copy rule reads every tag its patterns match: never left out)
        rows = np.flatnonzero(rule.matches(_named_columns(frame, rule), policy.source))
        selected.append(len(rows))
        orphans.append(_orphans(rule, frame, rows))
        refused: list[tuple] = []
        for act, w in enumerate(_actions(rule, frame, rows, refused)):
            read_only = present(frame, ro_column(w.key))[w.rows] != None  # noqa: E711
            if read_only.any():
                if read_only_notes is not None:
                    read_only_notes.setdefault((index, act), [w.key, 0])[1] += int(read_only.sum())
                w = _Writes(w.rows[~read_only], w.key, w.values[~read_only])
            parts.append((w.rows, w.key, w.values, index, act))
        for order, (at, old, new) in enumerate(refused):
            refusals.append(
                pd.DataFrame(
                    {"row": at.astype(np.int64), "old": old, "new": new, "rule": index}
                ).assign(ord=order)
            )
    refusals_frame = (
        pd.concat(refusals, ignore_index=True)
        if refusals
        else pd.DataFrame({c: pd.Series([], dtype=object) for c in REFUSED_COLUMNS})
    )
    if not parts:
        return _empty_claims(), selected, orphans, refusals_frame
    keys = np.concatenate([np.full(len(p[0]), p[1], dtype=object) for p in parts])
    frame_parts = {  # object columns: pandas would otherwise turn None into NaN
        "row": np.concatenate([p[0] for p in parts]).astype(np.int64),
        "key": pd.Series(keys, dtype=object),
        "value": pd.Series(np.concatenate([p[2] for p in parts]), dtype=object),
        "rule": np.concatenate([np.full(len(p[0]), p[3], dtype=np.int64) for p in parts]),
        "act": np.concatenate([np.full(len(p[0]), p[4], dtype=np.int64) for p in parts]),
    }
    return pd.DataFrame(frame_parts), selected, orphans, refusals_frame


# A name `where` may use: `backticked` or a bare identifier (a word inside a string counts
# too: taking a column too many is harmless).
WHERE_NAME = re.compile(r"`([^`]+)`|([^\W\d]\w*)")


def _where_names(rule: Rule) -> dict[str, None]:
    """Every name the rule's `where` spells, in order."""
    return dict.fromkeys(a or b for a, b in WHERE_NAME.findall(rule.where or ""))


def _named_columns(frame: pd.DataFrame, rule: Rule) -> pd.DataFrame:
    """The columns of `frame` the rule's `where` names: an expression evaluated on the whole
    frame costs every column (pandas resolves each name), a rule at a time, for every rule."""
    if rule.where is None:
        return frame
    names = [n for n in _where_names(rule) if n in frame.columns]
    return pd.DataFrame({n: frame[n] for n in names}, index=frame.index, copy=False)


def _reads(rule: Rule) -> set[str]:
    """The columns the rule's writes depend on: what its `where` names, the tags whose
    value `lower`, `upper` and `rename` carry over, and a rename's new key (whether it is
    refused there) (ro: columns never change)."""
    carried = [*rule.lower, *rule.upper, *rule.rename, *rule.rename.values()]
    return {*_where_names(rule), *(tag_column(k) for k in carried)}


def _merge(
    claims: pd.DataFrame,
    writes: pd.DataFrame,
    policy: Policy,
    original: pd.DataFrame,
    passes: int,
    base: int,
) -> tuple[pd.DataFrame, _Conflict | None]:
    """Add `writes` to the claims; two different writes to one slot are a conflict
    (`base`: the chunk's first row in the whole inventory, for the conflicts' order)."""
    if not len(writes):  # (nothing new: an empty frame's object columns would spoil "row")
        return claims, None
    merged = pd.concat([claims, writes], ignore_index=True) if len(claims) else writes
    merged = merged.drop_duplicates(["row", "key", "value", "rule"], ignore_index=True)
    repeated = merged[merged.duplicated(["row", "key"], keep=False)]
    if len(repeated):
        kinds = repeated.groupby(["row", "key"], sort=False)["value"].nunique(dropna=False)
        clashes = kinds[kinds > 1]
        if len(clashes):
            return merged, _conflict(repeated, clashes, policy, original, passes, base)
    return merged, None


def _conflict(
    repeated: pd.DataFrame,
    clashes: pd.Series,
    policy: Policy,
    original: pd.DataFrame,
    passes: int,
    base: int,
) -> _Conflict:
    row, key = clashes.index[0]
    slot = repeated[(repeated["row"] == row) & (repeated["key"] == key)]
    first = slot.iloc[0]
    other = slot[slot["value"].map(lambda v: v != first["value"])].iloc[0]
    a, b = policy.rules[int(first["rule"])], policy.rules[int(other["rule"])]
    ids = original.iloc[int(row)]
    names = f"rules {a.name!r} and {b.name!r}" if a is not b else f"rule {a.name!r}"
    text = (
        f"policy {policy.source}: {names} write different values to tag {key!r} of snapshot "
        f"{ids['snapshot_id']} (project {ids['project_id']}, region {ids['region_id']}): "
        f"{_shown(first['value'])} vs {_shown(other['value'])}"
    )
    order = (int(first["pass"]), int(first["rule"]), int(first["act"]), base + int(row))
    return _Conflict(passes, order, len(clashes), text)


def _shown(value: str | None) -> str:
    return "removes it" if value is None else f"sets {value!r}"


def _apply(state: pd.DataFrame, writes: pd.DataFrame) -> tuple[pd.DataFrame, set[str]]:
    """`state` with `writes` in its tag: columns, and the columns where a cell changed.

    The changed columns replace or join the frame in one step: inserting them one by one
    costs a copy of the frame's blocks each (and pandas warns about fragmentation)."""
    changed: dict[str, pd.Series] = {}
    for key, group in writes.groupby("key", sort=False):
        column = tag_column(str(key))
        values = present(state, column)
        rows = group["row"].to_numpy()
        new = group["value"].to_numpy(dtype=object)
        differs = values[rows] != new
        if differs.any():
            values[rows[differs]] = new[differs]
            changed[column] = pd.Series(values, index=state.index, dtype=object)
    if not changed:
        return state, set()
    moved = set(changed)
    kept = {c: changed.pop(c, state[c]) for c in state.columns}
    return pd.DataFrame({**kept, **changed}, index=state.index), moved


def _manifest(
    claims: pd.DataFrame, original: pd.DataFrame, policy: Policy
) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """The manifest rows (slots whose value differs from the original), per rule index how
    many snapshots it changes, and each manifest row's inventory row."""
    slots = claims.drop_duplicates(["row", "key"])
    keep = np.zeros(len(slots), dtype=bool)
    for key, index in slots.groupby("key", sort=False).indices.items():
        before = present(original, tag_column(str(key)))[slots["row"].to_numpy()[index]]
        keep[index] = before != slots["value"].to_numpy(dtype=object)[index]
    changes = slots[keep].sort_values(["row", "key"], kind="stable")
    rows = changes["row"].to_numpy(dtype=np.int64)
    value = changes["value"].to_numpy(dtype=object)
    manifest = original.iloc[rows][list(KEY_COLUMNS)].reset_index(drop=True)
    removes = pd.isna(value)
    manifest["op"] = np.where(removes, "delete", "set")
    manifest["key"] = changes["key"].to_numpy(dtype=object)
    manifest["value"] = np.where(removes, "", value)
    behind = claims.merge(changes[["row", "key"]], on=["row", "key"])
    behind = behind.drop_duplicates(["row", "rule"])
    joined = _rule_names(behind, [r.name for r in policy.rules])
    manifest[RULE_COLUMN] = joined.reindex(rows).to_numpy(dtype=object)
    return manifest[list(MANIFEST_COLUMNS)], behind["rule"].value_counts(), rows


def _rule_names(behind: pd.DataFrame, names: list[str]) -> pd.Series:
    """Per row: the names of its rules in policy order, joined; one join per combination."""
    codes, rows = pd.factorize(behind["row"])
    rules = behind["rule"].to_numpy(dtype=np.int64)
    if len(names) < 63:  # a bit per rule: factorize ints instead of sorting rows
        matrix = np.zeros((len(rows), len(names)), dtype=bool)
        matrix[codes, rules] = True
        weights = np.left_shift(1, np.arange(len(names), dtype=np.int64))
        inverse, masks = pd.factorize(matrix @ weights)
        combos = (np.asarray(masks)[:, None] & weights) != 0
        labels = [
            RULE_SEPARATOR.join(n for n, on in zip(names, c, strict=True) if on) for c in combos
        ]
        return pd.Series(np.array(labels, dtype=object)[inverse.ravel()], index=rows)
    # more rules: each row's rule indexes, sorted, as a tuple (no rows x rules matrix)
    order = np.lexsort((rules, codes))
    starts = np.flatnonzero(np.diff(codes[order], prepend=-1))  # every code has a pair
    per_row = np.split(rules[order], starts[1:]) if len(order) else []
    found: dict[tuple[int, ...], int] = {}
    inverse = np.array(
        [found.setdefault(tuple(r.tolist()), len(found)) for r in per_row], dtype=np.int64
    )
    labels = [RULE_SEPARATOR.join(names[i] for i in combo) for combo in found]
    return pd.Series(np.array(labels, dtype=object)[inverse], index=rows)


def _with_refused(
    manifest: pd.DataFrame,
    manifest_rows: np.ndarray,
    claims: pd.DataFrame,
    refused: list[pd.DataFrame],
    original: pd.DataFrame,
    policy: Policy,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, int]]:
    """The manifest with a `rename` row for each refused rename (so `apply` reports the
    snapshot a conflict), those refusals (`REFUSED_COLUMNS`), and per rule index how many
    refusals another rule's writes override (only logged: that write goes ahead)."""
    found = pd.concat(refused, ignore_index=True).drop_duplicates(["row", "old", "new"])
    if not len(found):
        return manifest, found, {}
    written = set(zip(claims["row"].tolist(), claims["key"].tolist(), strict=True))
    free = np.array(
        [
            (r, o) not in written and (r, n) not in written
            for r, o, n in zip(found["row"], found["old"], found["new"], strict=True)
        ],
        dtype=bool,
    )
    shadowed = {int(r): len(g) for r, g in found[~free].groupby("rule")}
    kept = found[free]
    rows = kept["row"].to_numpy(dtype=np.int64)
    renames = original.iloc[rows][list(KEY_COLUMNS)].reset_index(drop=True)
    renames["op"] = "rename"
    renames["key"] = kept["old"].to_numpy(dtype=object)
    renames["value"] = kept["new"].to_numpy(dtype=object)
    renames[RULE_COLUMN] = [policy.rules[int(i)].name for i in kept["rule"]]
    order = np.concatenate([manifest_rows, rows])
    parts = [m for m in (manifest, renames[list(MANIFEST_COLUMNS)]) if len(m)] or [manifest]
    both = pd.concat(parts, ignore_index=True)  # (an empty part's dtypes would spoil theirs)
    both = both.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)
    return both, kept, shadowed


def _stats(
    policy: Policy,
    selected: list[int],
    changed: Mapping[int, int],
    orphans: list[int | None],
    refused: Mapping[int, int],
) -> dict[str, dict]:
    stats = {}
    for index, (rule, count) in enumerate(zip(policy.rules, selected, strict=True)):
        stats[rule.name] = {"matched": count, "noncompliant": int(changed.get(index, 0))}
        if rule.rename:  # renames onto another value it was refused (on this many snapshots)
            stats[rule.name]["refused"] = int(refused.get(index, 0))
        gone = ""
        if orphans[index] is not None:
            stats[rule.name]["orphans"] = orphans[index]
            gone = f", {orphans[index]} whose volume is gone (left alone)"
        log.info(
            "%s: matches %d snapshots, %d noncompliant%s",
            rule.label,
            count,
            stats[rule.name]["noncompliant"],
            gone,
        )
    return stats
