"""Conflicts: two different writes to one key (or two names) of one snapshot.

A write is (group, key, what): set -> value code, delete -> -1, rename -> -1 on the old key
and -(2 + old key) on the new one; names use key -1. Only writes whose (group, key) slot
repeats are looked at closely, so the usual clean manifest costs a few arrays.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from batchtag.manifest._messages import Collector, shown
from batchtag.manifest._operations import CLEAR, NAME, RENAME, SET, Coded


def check_conflicts(ops: pd.DataFrame, coded: Coded, snapshot: pd.Series, out: Collector) -> None:
    """Add one problem per conflicting (snapshot, key), on the row of its second write."""
    if not len(ops):
        return
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


def _writes(op: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The operation of every write (all but clears, then renames again for their new key),
    and which of them are a rename's new key."""
    index = np.flatnonzero(op != CLEAR)
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
