"""Conflicts: two different writes to one key (or two names) of one snapshot.

A write is (group, key, what): set -> value code, delete -> -1, rename -> -1 on the old key
and -(2 + old key) on the new one; names use key -1. Only writes whose (group, key) slot
repeats are looked at closely, so the usual clean manifest costs a few arrays.

A change file's checks (expect, expect_name) are no writes; two rows that expect different
values of one key of one snapshot are a conflict of their own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from batchtag.manifest._messages import Collector, shown
from batchtag.manifest._operations import (
    CHECKS,
    CLEAR,
    EXPECT,
    EXPECT_NAME,
    NAME,
    RENAME,
    SET,
    Coded,
)


def check_conflicts(ops: pd.DataFrame, coded: Coded, snapshot: pd.Series, out: Collector) -> None:
    """Add one problem per conflicting (snapshot, key), on the row of its second write."""
    if not len(ops):
        return
    _check_expectations(ops, coded, snapshot, out)
    index, new = _writes(coded.op)
    repeated = pd.Series(_slots(coded, index, new)).duplicated(keep=False).to_numpy()
    if not repeated.any():
        return
    index, new = index[repeated], new[repeated]
    writes = pd.DataFrame(
        {
            "g": coded.group[index],
            "k": _written_keys(coded, index, new),
            "w": _written_values(coded, index, new),
            "i": index,
            "new": new,
        }
    )
    distinct = writes.sort_values("i", kind="stable").drop_duplicates(["g", "k", "w"])
    clash = distinct[distinct.duplicated(["g", "k"], keep=False)]
    pos = ops["pos"].to_numpy()
    for (_, k), rows in clash.groupby(["g", "k"], sort=False):
        _report(ops, coded, snapshot, out, pos, k, rows)


def _report(ops, coded, snapshot, out, pos, key, rows) -> None:
    first_pos = int(pos[rows["i"].iloc[0]])
    sid = snapshot.iloc[first_pos]
    subject = "names" if key == -1 else f"writes to tag {shown(coded.keys[key])}"
    listed = ", ".join(
        f"{out.where(int(pos[i]))} {_describe(w, coded)}"
        for i, w in zip(rows["i"].tolist(), rows["w"].tolist(), strict=True)
    )
    second, is_new = int(rows["i"].iloc[1]), bool(rows["new"].iloc[1])
    named = "value_col" if is_new or key == -1 else "key_col"
    column = ops[named].iloc[second]
    out.add(f"conflicting {subject} for snapshot {sid}: {listed}", column, int(pos[second]))


def _check_expectations(ops: pd.DataFrame, coded: Coded, snapshot: pd.Series, out) -> None:
    """Two rows of a change file checking one key (or the name) of one snapshot against
    different values: a problem on the second."""
    index = np.flatnonzero((coded.op == EXPECT) | (coded.op == EXPECT_NAME))
    if not len(index):
        return
    keys = coded.key[index].astype(np.int64)
    keys[coded.op[index] == EXPECT_NAME] = -1
    slots = pd.DataFrame({"g": coded.group[index], "k": keys, "v": coded.value[index]})
    distinct = slots.drop_duplicates()
    clash = distinct[distinct.duplicated(["g", "k"], keep="first")]
    pos = ops["pos"].to_numpy()
    for at in clash.index.tolist():
        i = int(index[at])
        key = int(keys[at])
        subject = "the name" if key == -1 else f"tag {shown(coded.keys[key])}"
        sid = snapshot.iloc[int(pos[i])]
        out.add(
            f"a second row for {subject} of snapshot {sid} with another old value "
            f"({shown(coded.values[int(coded.value[i])])})",
            "old",
            int(pos[i]),
        )


def _writes(op: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The operation of every write (all but clears and checks, then renames again for their
    new key), and which of them are a rename's new key."""
    index = np.flatnonzero((op != CLEAR) & ~np.isin(op, list(CHECKS)))
    renames = np.flatnonzero(op == RENAME)
    new = np.zeros(len(index) + len(renames), dtype=bool)
    if len(renames):
        index = np.concatenate([index, renames])
        new[-len(renames) :] = True
    return index, new


def _slots(coded: Coded, index: np.ndarray, new: np.ndarray) -> np.ndarray:
    """One int per (snapshot, key) written; built in place to keep temporaries few."""
    slot = coded.group[index].astype(np.int64)  # int64: groups times keys may pass 2**31
    slot *= len(coded.keys) + 1
    slot += _written_keys(coded, index, new)
    slot += 1
    return slot


def _written_keys(coded: Coded, index: np.ndarray, new: np.ndarray) -> np.ndarray:
    keys = coded.key[index].astype(np.int64)
    keys[coded.op[index] == NAME] = -1
    keys[new] = coded.target[index[new]]
    return keys


def _written_values(coded: Coded, index: np.ndarray, new: np.ndarray) -> np.ndarray:
    op = coded.op[index]
    sets = (op == SET) | (op == NAME)
    what = np.where(sets, coded.value[index].astype(np.int64), -1)
    what[new] = -(2 + coded.key[index[new]])
    return what


def _describe(write: int, coded: Coded) -> str:
    if write == -1:
        return "removes it"
    if write <= -2:
        return f"renames {shown(coded.keys[-2 - write])} to it"
    return f"sets {shown(coded.values[write])}"
