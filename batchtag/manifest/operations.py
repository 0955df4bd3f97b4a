"""The table of operations every form is turned into, and its integer-coded version.

An operation row is (pos, op, key, value, key_col, value_col): the frame position it came
from, what it does, and the columns to name in a problem about its key or its value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from batchtag.manifest.columnar import factorize
from batchtag.manifest.schema import OPS

SET, DELETE, CLEAR, RENAME, NAME = (OPS.index(op) for op in OPS)


def ops_frame(pos, op, key, value, key_col, value_col) -> pd.DataFrame:
    """An operations table; `op`, `key`, `value` are a column each or one string for all."""
    n = len(pos)
    op, key, value = ([x] * n if isinstance(x, str) else x for x in (op, key, value))
    frame = pd.DataFrame(
        {
            "pos": np.asarray(pos, dtype=np.int64),
            "op": pd.Series(op, dtype=str),
            "key": pd.Series(key, dtype=str),
            "value": pd.Series(value, dtype=str),
        }
    )
    frame["key_col"] = _labels(key_col, n)
    frame["value_col"] = _labels(value_col, n)
    return frame


def no_ops() -> pd.DataFrame:
    """An empty operations table."""
    return ops_frame([], [], [], [], "", "")


def _labels(names: str | Sequence[str], n: int) -> pd.Categorical:
    """The column every operation came from; categorical, so one byte a row."""
    if isinstance(names, str):
        return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), [names])
    return pd.Categorical(names)


def concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Operation tables of several columns as one, in frame order (stable within a row)."""
    parts = [p for p in parts if len(p)] or parts[:1] or [no_ops()]
    ops = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if len(parts) > 1:
        ops = ops.sort_values("pos", kind="stable", ignore_index=True)
    return ops


@dataclass
class Coded:
    """Operations as integer codes into shared string lists (cheap to compare and to plan)."""

    op: np.ndarray  # index into OPS
    group: np.ndarray
    key: np.ndarray  # index into `keys`
    value: np.ndarray  # index into `values`
    target: np.ndarray  # rename: the new key as an index into `keys`; else -1
    keys: list[str]
    values: list[str]


def encode(ops: pd.DataFrame, group: np.ndarray) -> Coded:
    """Code valid operations; `group` is the snapshot group of every frame position."""
    codes, names = factorize(ops["op"])
    op = np.array([OPS.index(n) if n in OPS else -1 for n in names] + [-1], np.int8)[codes]
    key, keys = factorize(ops["key"])
    value, values = factorize(ops["value"])
    target = np.full(len(ops), -1, dtype=np.int64)
    renames = np.flatnonzero(op == RENAME)
    if len(renames):
        known = {k: i for i, k in enumerate(keys)}
        for i, new in zip(renames.tolist(), ops["value"].iloc[renames].tolist(), strict=True):
            if new not in known:
                known[new] = len(keys)
                keys.append(new)
            target[i] = known[new]
    return Coded(
        op,
        group[ops["pos"].to_numpy()],
        key.astype(np.int64),
        value.astype(np.int64),
        target,
        keys,
        values,
    )
