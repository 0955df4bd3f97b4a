"""The per-operation rules, as a table: which ops a rule covers, which cell it reads, which
column a problem names, when it fails and how the failure is worded.

Each rule is one vectorised test over the whole operations table; Python only looks at the
failing rows, to word their problems.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from batchtag.manifest._columnar import fullmatch, lengths, same_text
from batchtag.manifest._messages import Collector, name_problem, shown, tag_text_problem
from batchtag.model import NAME_MAX, NAME_MIN, NAME_TEXT, OPS, TAG_TEXT


class Cells:
    """Whole-table facts the rules test, each computed once and only if a rule asks."""

    def __init__(self, ops: pd.DataFrame):
        self.ops = ops
        self.key, self.value = ops["key"], ops["value"]

    @cached_property
    def key_valid(self) -> np.ndarray:
        return fullmatch(self.key, TAG_TEXT)

    @cached_property
    def value_valid(self) -> np.ndarray:
        return fullmatch(self.value, TAG_TEXT)

    @cached_property
    def has_key(self) -> np.ndarray:
        return (self.key != "").to_numpy()

    @cached_property
    def has_value(self) -> np.ndarray:
        return (self.value != "").to_numpy()

    @cached_property
    def same(self) -> np.ndarray:
        return self.value_valid & same_text(self.key, self.value)

    @cached_property
    def bad_name(self) -> np.ndarray:
        size = lengths(self.value)
        bad = (size < NAME_MIN) | (size > NAME_MAX)
        names = np.flatnonzero((self.ops["op"] == "name").to_numpy() & ~bad)
        bad[names] = ~fullmatch(self.value.iloc[names], NAME_TEXT)
        return bad


@dataclass(frozen=True)
class Rule:
    ops: tuple[str, ...]  # the operations it applies to
    fails: Callable[[Cells], np.ndarray]
    word: Callable[[str, str], str]  # (cell text, op) -> the problem
    reads: str = "value"  # the cell shown in the message: "key" or "value"
    names: str = "value"  # the column the problem names: the key's or the value's


def _needs(what: str, empty: str) -> Callable[[str, str], str]:
    return lambda text, op: empty.format(op=op) if text == "" else tag_text_problem(text, what)


RULES = (
    Rule(
        ("set", "delete", "rename"),
        lambda c: ~c.key_valid,
        _needs("key", "{op} needs a key"),
        reads="key",
        names="key",
    ),
    Rule(("set",), lambda c: ~c.value_valid, _needs("value", "set needs a value")),
    Rule(
        ("rename",),
        lambda c: ~c.value_valid,
        _needs("new key", "rename needs the new key as its value"),
    ),
    Rule(("rename",), lambda c: c.same, lambda t, op: f"renames {shown(t)} to itself", reads="key"),
    # a stray value is an error rather than ignored: "delete env prod" reads like a
    # conditional delete, which batchtag cannot do
    Rule(
        ("delete",),
        lambda c: c.has_value,
        lambda t, op: f"delete takes no value (got {shown(t)}); leave value empty",
    ),
    Rule(
        ("clear", "name"),
        lambda c: c.has_key,
        lambda t, op: f"{op} takes no key (got {shown(t)})",
        reads="key",
        names="key",
    ),
    Rule(("clear",), lambda c: c.has_value, lambda t, op: f"clear takes no value (got {shown(t)})"),
    Rule(("name",), lambda c: c.bad_name, lambda t, op: name_problem(t)),
)


def apply_rules(ops: pd.DataFrame, out: Collector) -> pd.DataFrame:
    """Check every operation against RULES; sets the `ok` column (False where one failed).

    Every rule sees every operation that was well-formed before the rules ran, so one row
    can get several problems (a bad key and a bad value)."""
    valid = ops["ok"].to_numpy(dtype=bool)
    ok = valid.copy()
    cells = Cells(ops)
    kinds = {name: (ops["op"] == name).to_numpy() & valid for name in OPS}
    pos = ops["pos"].to_numpy()
    for rule in RULES:
        for op in rule.ops:
            if not kinds[op].any():
                continue
            mask = kinds[op] & rule.fails(cells)
            if mask.any():
                ok &= ~mask
                word = rule.word
                out.cells(
                    mask,
                    ops[rule.reads],
                    lambda t, op=op, w=word: w(t, op),
                    ops[f"{rule.names}_col"],
                    pos,
                )
    ops["ok"] = ok
    return ops
