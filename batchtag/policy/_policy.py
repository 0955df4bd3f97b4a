"""Policies for `batchtag enforce`: tag rules over the inventory, read from a TOML file.

A policy is an optional ``[scope]`` and one or more ``[[rule]]`` tables::

    [scope]                                  # optional; else project_id/region_id/env
    project_id = 1
    region_id = [1, 7]                       # or all_regions = true (all_projects too)

    [[rule]]
    name = "default cost-center"
    where = "`tag:cost-center`.isna()"       # a condition over the export's columns
    set = { "cost-center" = "unassigned" }

A rule's ``where`` (default: every snapshot) picks snapshots; its actions say what they get:
``set`` (key = value), ``delete`` (keys), ``lower`` / ``upper`` (keys whose value changes
case), ``rename`` (old key = new key; onto a key that already holds a different value it is
refused, unless the table says ``overwrite = true``: ``rename = { Owner = "owner",
overwrite = true }``), ``copy`` (tags inherited from the snapshot's volume)::

    [[rule]]
    name = "cost tags follow the volume"
    copy = { from = "volume", keys = ["cost-center", "team-*"], overwrite = false }

``copy`` fills the listed keys the snapshot lacks with its volume's values (``overwrite =
true``: also replaces values that differ); a key may be an fnmatch pattern (``*``, ``?``,
``[...]``, case-sensitive) matched against the volumes' user tag keys. A policy with a
``copy`` rule, or a ``where`` naming ``volume_name`` or a ``volume_tag:<key>`` column,
needs the volumes joined to the inventory (`Policy.needs_volume`; `enforce` then lists
them).

Everything is checked here, before any request: unknown keys, an empty rule, invalid tag
text, a bad ``copy`` table (unknown ``from``, no keys, a bad pattern), a rule writing one key
twice, and every ``where`` against the grammar of `batchtag.inventory.compile_where`, then
on made-up rows with the inventory's column types (an unknown column, text compared with a
number). `batchtag.policy.evaluate` turns a policy and an inventory into a manifest.

A ``where`` is a small, safe condition language (`batchtag.inventory.compile_where`): columns, literals,
comparisons, and/or/not, arithmetic and a fixed list of methods. It never runs code, so a
policy file cannot do anything but select snapshots. It sees the export's columns, not its
``tags`` dict column; ``tag:``/``ro:`` columns no snapshot has are all-missing.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from batchtag.defaults import DISCOVERY_OPTIONS, SCOPE_OPTIONS
from batchtag.errors import UsageError
from batchtag.inventory import (
    INVENTORY_COLUMNS,
    RO_PREFIX,
    TAGS_COLUMN,
    WhereError,
    compile_where,
    empty_inventory,
    is_tag_column,
    is_volume_column,
)
from batchtag.manifest import fullmatch, tag_text_problem
from batchtag.model import TAG_PREFIX, TAG_TEXT

__all__ = [
    "Copy",
    "INVENTORY_COLUMNS",
    "RO_PREFIX",
    "TAGS_COLUMN",
    "Policy",
    "PolicyError",
    "Rule",
    "is_tag_column",
    "load_policy",
]

TOP_KEYS = ("scope", "rule")
SCOPE_KEYS = SCOPE_OPTIONS  # [scope] names project_id and region_id (ints or lists) ...
SCOPE_FLAGS = DISCOVERY_OPTIONS  # ... or all_projects / all_regions = true (listed by the API)
KEY_LISTS = ("delete", "lower", "upper")  # actions taking a list of keys
KEY_TABLES = ("set", "rename")  # actions taking a table
ACTIONS = ("set", "delete", "lower", "upper", "rename", "copy")
RULE_KEYS = ("name", "description", "where", *ACTIONS)
COPY_KEYS = ("from", "keys", "overwrite")  # a copy table's keys
COPY_SOURCES = ("volume",)  # where `copy` takes tags from
COPY_EXAMPLE = '{ from = "volume", keys = ["cost-center"] }'
WILDCARDS = "*?["  # a copy key holding one of these is an fnmatch pattern
OVERWRITE = "overwrite"  # in a rename or copy table: `overwrite = true` (a boolean)
RULE_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*rule[ \t]*\]\]", re.MULTILINE)


class PolicyError(UsageError):
    """A policy that cannot be used: bad TOML, unknown keys, a bad rule, conflicting rules.

    Nothing is sent; exit code 2 on the command line."""


@dataclass(frozen=True)
class Copy:
    """A rule's ``copy``: tags inherited from the snapshot's `source` (the volume).

    Attributes
    ----------
    source : str
        Where the values come from (``"volume"``: the inventory's ``volume_tag:`` columns).
    keys : tuple of str
        Tag keys, or fnmatch patterns (``cost-*``), matched case-sensitively.
    overwrite : bool
        False: fill only keys the snapshot lacks. True: also replace a differing value.
    """

    source: str
    keys: tuple[str, ...]
    overwrite: bool = False

    def matching(self, available: list[str]) -> list[str]:
        """The keys of `available` (the source's tag keys) this copy takes, in their order.

        Examples
        --------
        >>> Copy("volume", ("cost-*", "team")).matching(["cost-center", "env", "team"])
        ['cost-center', 'team']
        """
        return [k for k in available if any(fnmatch.fnmatchcase(k, p) for p in self.keys)]

    def covers(self, key: str) -> bool:
        """Whether this copy may write `key`."""
        return bool(self.matching([key]))


@dataclass(frozen=True)
class Rule:
    """One rule: which snapshots (`where`) and what they get (the actions)."""

    name: str
    where: str | None = None
    set: dict[str, str] = field(default_factory=dict)
    delete: tuple[str, ...] = ()
    lower: tuple[str, ...] = ()
    upper: tuple[str, ...] = ()
    rename: dict[str, str] = field(default_factory=dict)
    copy: Copy | None = None
    rename_overwrite: bool = False  # a rename may replace a different value
    line: int | None = None  # the line of its [[rule]] header, for messages

    @property
    def label(self) -> str:
        return f"rule {self.name!r}" + (f" (line {self.line})" if self.line else "")

    @property
    def needs_volume(self) -> bool:
        """Whether the rule reads the snapshot's volume: it copies from it, or its
        ``where`` names ``volume_name`` or a ``volume_tag:`` column."""
        if self.copy is not None:
            return True
        return self.where is not None and any(
            is_volume_column(c) for c in compile_where(self.where).columns
        )

    def matches(self, frame: pd.DataFrame, source: str) -> np.ndarray:
        """A boolean array: which rows of `frame` the rule's `where` selects.

        ``tag:``/``ro:`` columns named in `where` but absent from `frame` are all-NA; an NA
        result counts as not selected. Raises PolicyError naming the rule otherwise."""
        if self.where is None:
            return np.ones(len(frame), dtype=bool)
        try:
            return compile_where(self.where).evaluate(frame).to_numpy(dtype=bool)
        except WhereError as error:
            raise PolicyError(f"policy {source}: {self.label}: {error}") from None

    def check(self, source: str) -> None:
        """Check `where` before anything is read (see the module docstring)."""
        try:
            if self.where is not None:
                compile_where(self.where).dry_run(empty_inventory(with_volume=True))
        except WhereError as error:
            raise PolicyError(f"policy {source}: {self.label}: {error}") from None


@dataclass(frozen=True)
class Policy:
    """A loaded policy: its rules in file order and its optional scope."""

    rules: tuple[Rule, ...]
    project_id: tuple[int, ...] | None = None
    region_id: tuple[int, ...] | None = None
    source: str = "<policy>"
    all_projects: bool = False
    all_regions: bool = False

    @property
    def needs_volume(self) -> bool:
        """Whether any rule reads the snapshots' volumes (`Rule.needs_volume`): the
        inventory must then have them joined (``export(with_volume=True)``)."""
        return any(rule.needs_volume for rule in self.rules)


def load_policy(path: str | Path) -> Policy:
    """Read and check a TOML policy file.

    Parameters
    ----------
    path : str or Path
        The policy file.

    Returns
    -------
    Policy
        Its rules (every ``where`` already checked on an empty inventory) and scope.

    Raises
    ------
    PolicyError
        A one-line message naming the file and the line (TOML syntax) or the rule.

    Examples
    --------
    >>> policy = load_policy("samples/cost-policy.toml")
    >>> [rule.name for rule in policy.rules][:1]
    ['default cost-center']
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is not TOML
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise PolicyError(f"policy {path}: cannot read it: {reason}") from None
    return parse_policy(text, str(path))


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Check a policy given as TOML text (see `load_policy`).

    Parameters
    ----------
    text : str
        The policy, TOML.
    source : str
        What messages call it (a file name).

    Returns
    -------
    Policy
        Its rules and scope.

    Examples
    --------
    >>> parse_policy('rule = [{ name = "tmp", delete = ["tmp"] }]').rules[0].delete
    ('tmp',)
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"policy {source}: invalid TOML: {error}") from None
    _check_keys(data, TOP_KEYS, f"policy {source}", "top-level key")
    rules = data.get("rule")
    if not isinstance(rules, list) or not rules:
        raise PolicyError(f"policy {source}: no rules; add at least one [[rule]] table")
    lines = [text.count("\n", 0, m.start()) + 1 for m in RULE_HEADER.finditer(text)]
    if len(lines) != len(rules):
        lines = [None] * len(rules)  # rules written as an inline array: no header lines
    parsed = tuple(
        _rule(r, i, line, source) for i, (r, line) in enumerate(zip(rules, lines, strict=True))
    )
    _check_unique(parsed, source)
    for rule in parsed:
        rule.check(source)
    project_id, region_id, every = _scope(data.get("scope"), source)
    return Policy(parsed, project_id, region_id, source, **every)


def _check_keys(table: dict, allowed: tuple[str, ...], where: str, what: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PolicyError(f"{where}: unknown {what} {key!r}{hint}; known: {', '.join(allowed)}")


def _rule(raw: Any, index: int, line: int | None, source: str) -> Rule:
    at = f" (line {line})" if line else ""
    if not isinstance(raw, dict):
        raise PolicyError(f"policy {source}: rule {index + 1}{at} must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PolicyError(f'policy {source}: rule {index + 1}{at} needs a name = "..."')
    where = f"policy {source}: rule {name!r}{at}"
    _check_keys(raw, RULE_KEYS, where, "key")
    condition = raw.get("where")
    if condition is not None and not isinstance(condition, str):
        raise PolicyError(f'{where}: where must be a string (a condition, e.g. "size > 100")')
    overwrite = False
    if isinstance(raw.get("rename"), dict) and isinstance(raw["rename"].get(OVERWRITE), bool):
        renames = dict(raw["rename"])  # a string there renames a tag named "overwrite"
        overwrite = renames.pop(OVERWRITE)
        raw = {**raw, "rename": renames}
    actions = {a: _action(a, raw[a], where) for a in ACTIONS if a in raw}
    if not any(actions.values()):
        raise PolicyError(f"{where}: no action; give one of {', '.join(ACTIONS)}")
    _check_tag_text(actions, where)
    _check_written_once(actions, where)
    return Rule(name, condition, rename_overwrite=overwrite, line=line, **actions)


def _action(action: str, value: Any, where: str) -> Any:
    if action == "copy":
        return _copy(value, where)
    if action in KEY_TABLES:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            example = '{ "cost-center" = "unassigned" }' if action == "set" else '{ Env = "env" }'
            raise PolicyError(f"{where}: {action} must be a table of strings, e.g. {example}")
        return dict(value)
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise PolicyError(f'{where}: {action} must be a list of tag keys, e.g. ["tmp"]')
    return tuple(dict.fromkeys(value))


def _copy(value: Any, where: str) -> Copy:
    """A ``copy`` table, checked: ``from`` a known source, a non-empty list of keys or
    patterns (each pattern's ``[`` closed), ``overwrite`` a boolean."""
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: copy must be a table, e.g. copy = {COPY_EXAMPLE}")
    _check_keys(value, COPY_KEYS, f"{where}: copy", "key")
    source = value.get("from")
    if source not in COPY_SOURCES:
        got = "no from" if source is None else f"from = {source!r}"
        known = ", ".join(repr(s) for s in COPY_SOURCES)
        raise PolicyError(f"{where}: copy has {got}; copy takes tags from {known}")
    keys = value.get("keys")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise PolicyError(
            f"{where}: copy needs keys = a non-empty list of tag keys or patterns, "
            'e.g. ["cost-center", "team-*"]'
        )
    for key in keys:
        problem = _pattern_problem(key)
        if problem:
            raise PolicyError(f"{where}: copy: key pattern {key!r} {problem}")
    overwrite = value.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise PolicyError(f"{where}: copy: overwrite must be true or false")
    return Copy(source, tuple(dict.fromkeys(keys)), overwrite)


def _pattern_problem(key: str) -> str | None:
    """Why `key` is not a usable fnmatch pattern (None when it is): every ``[`` opens a
    class that a ``]`` closes (fnmatch would read an unclosed one as a plain ``[``)."""
    at = 0
    while (at := key.find("[", at)) >= 0:
        end = at + 1 + (key[at + 1 : at + 2] == "!")
        end += key[end : end + 1] == "]"  # a leading ] is part of the class
        close = key.find("]", end)
        if close < 0:
            return f"has an unclosed '[' at character {at + 1}"
        at = close + 1
    return None


def _check_tag_text(actions: dict[str, Any], where: str) -> None:
    texts: list[tuple[str, str]] = []
    for action, value in actions.items():
        if action == "copy":
            texts += [("copy: key", k) for k in value.keys]
        elif action == "set":
            texts += [("set: key", k) for k in value]
            texts += [(f"set: value of {k!r}", v) for k, v in value.items()]
        elif action == "rename":
            texts += [("rename: key", k) for k in (*value, *value.values())]
        else:
            texts += [(f"{action}: key", k) for k in value]
    ok = fullmatch(pd.Series([t for _, t in texts], dtype=object), TAG_TEXT)
    for (what, text), good in zip(texts, ok.tolist(), strict=True):
        if not good:
            raise PolicyError(f"{where}: {tag_text_problem(text, what)}")


def _check_written_once(actions: dict[str, Any], where: str) -> None:
    """Within one rule every key is written by one action (rename writes old and new; a
    copy every key its patterns match)."""
    seen: dict[str, str] = {}
    for action, value in actions.items():
        if action == "copy":
            continue
        keys = [*value, *value.values()] if action == "rename" else list(value)
        for key in keys:
            if key in seen:
                raise PolicyError(
                    f"{where}: tag {key!r} is written by both {seen[key]} and {action}"
                )
            seen[key] = action
    copy = actions.get("copy")
    for key, action in seen.items():
        if copy is not None and copy.covers(key):
            raise PolicyError(f"{where}: tag {key!r} is written by both {action} and copy")


def _check_unique(rules: tuple[Rule, ...], source: str) -> None:
    seen: dict[str, Rule] = {}
    for rule in rules:
        if rule.name in seen:
            raise PolicyError(
                f"policy {source}: two rules are named {rule.name!r} "
                f"(lines {seen[rule.name].line} and {rule.line}); names must be unique"
            )
        seen[rule.name] = rule


def _scope(raw: Any, source: str) -> tuple[Any, Any, dict[str, bool]]:
    """project_id, region_id (tuples or None) and the all_projects/all_regions flags."""
    if raw is None:
        return None, None, {}
    where = f"policy {source}: [scope]"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where} must be a table")
    _check_keys(raw, (*SCOPE_KEYS, *SCOPE_FLAGS), where, "key")
    every = {}
    for flag, name in zip(SCOPE_FLAGS, SCOPE_KEYS, strict=True):
        value = raw.get(flag, False)
        if not isinstance(value, bool):
            raise PolicyError(f"{where} {flag}: expected true or false, got {value!r}")
        if value and raw.get(name) is not None:
            raise PolicyError(f"{where}: {flag} = true lists every {name[:-3]}; drop {name}")
        every[flag] = value
    ids = tuple(_ids(raw.get(name), f"{where} {name}") for name in SCOPE_KEYS)
    return (*ids, every)  # type: ignore[return-value]


def _ids(value: Any, where: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if not values or not all(type(v) is int and v > 0 for v in values):
        raise PolicyError(f"{where}: expected a positive integer or a list of them, got {value!r}")
    return tuple(dict.fromkeys(values))


def tag_column(key: str) -> str:
    return TAG_PREFIX + key


def ro_column(key: str) -> str:
    return RO_PREFIX + key
