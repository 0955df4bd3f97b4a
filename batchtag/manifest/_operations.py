"""The table of operations every form is turned into, and its integer-coded version.

An operation row is (pos, op, key, value, key_col, value_col, over): the frame position it
came from, what it does, the columns to name in a problem about its key or its value, and
whether a rename may replace a value (`over`). The text columns are categoricals (codes
into the distinct texts), so a million operations take a few bytes each and no Python
object.

Besides the manifest operations (`OPS`), a change file's rows give checks: ``expect`` (the
key holds the value now; "" = absent) and ``expect_name``. They are never written by a
manifest (`OPS` is what a long form's op column may say).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from batchtag.manifest._columnar import categorical, compact_codes, index_type
from batchtag.model import OPS

CODES = (*OPS, "expect", "expect_name")  # a Coded op is an index into this
SET, DELETE, CLEAR, RENAME, NAME, EXPECT, EXPECT_NAME = range(len(CODES))
CHECKS = frozenset({EXPECT, EXPECT_NAME})


def ops_frame(pos, op, key, value, key_col, value_col, over=False) -> pd.DataFrame:
    """An operations table; `op`, `key`, `value`, `key_col`, `value_col` are a column each
    (text, or a categorical) or one string for all; `over` a bool array or one bool."""
    n = len(pos)
    return pd.DataFrame(
        {
            "pos": np.asarray(pos, dtype=index_type(n)),
            "op": _labels(op, n),
            "key": _labels(key, n),
            "value": _labels(value, n),
            "key_col": _labels(key_col, n),
            "value_col": _labels(value_col, n),
            "over": np.broadcast_to(np.asarray(over, dtype=bool), (n,)).copy(),
            "ok": np.ones(n, dtype=bool),  # False once a problem is found in the operation
        },
        copy=False,
    )


def no_ops() -> pd.DataFrame:
    """An empty operations table."""
    return ops_frame([], [], [], [], "", "")


def _labels(texts: str | Sequence[str] | pd.Series, n: int) -> pd.Categorical:
    """One text for all `n` operations, or one each; categorical, so one byte a row."""
    if isinstance(texts, str):
        return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), [texts])
    return categorical(texts)


def concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Operation tables of several columns as one, in frame order (stable within a row)."""
    parts = [p for p in parts if len(p)] or parts[:1] or [no_ops()]
    if len(parts) == 1:
        return parts[0]
    columns = {
        name: (
            union_categoricals([p[name] for p in parts])
            if isinstance(parts[0][name].dtype, pd.CategoricalDtype)
            else np.concatenate([p[name].to_numpy() for p in parts])
        )
        for name in parts[0].columns
    }
    order = np.argsort(columns["pos"], kind="stable")
    return pd.DataFrame({name: values[order] for name, values in columns.items()})


@dataclass
class Coded:
    """Operations as integer codes into shared string lists (cheap to compare and to plan)."""

    op: np.ndarray  # int8, index into CODES
    group: np.ndarray  # int32 (int64 past 2**31 rows)
    key: np.ndarray  # index into `keys` (int8 to int32: as few bytes as they need)
    value: np.ndarray  # index into `values` (int8 to int32)
    target: np.ndarray  # rename: the new key as an index into `keys`; else -1
    keys: list[str]
    values: list[str]
    over: np.ndarray | None = None  # bool: a rename that may replace a value (None: none)


def encode(ops: pd.DataFrame, group: np.ndarray) -> Coded:
    """Code valid operations; `group` is the snapshot group of every frame position."""
    codes, names = _coded(ops["op"])
    op = np.array([CODES.index(n) if n in CODES else -1 for n in names] + [-1], np.int8)[codes]
    key, keys = _coded(ops["key"])
    value, values = _coded(ops["value"])
    target = np.full(len(ops), -1, dtype=np.int32)
    renames = np.flatnonzero(op == RENAME)
    if len(renames):
        known = {k: i for i, k in enumerate(keys)}
        for i, new in zip(renames.tolist(), ops["value"].iloc[renames].tolist(), strict=True):
            if new not in known:
                known[new] = len(keys)
                keys.append(new)
            target[i] = known[new]
    over = ops["over"].to_numpy(dtype=bool) if "over" in ops else None
    return Coded(
        op,
        group[ops["pos"].to_numpy()],
        compact_codes(key, len(keys)),
        compact_codes(value, len(values)),
        compact_codes(target, len(keys)),
        keys,
        values,
        over if over is not None and over.any() else None,
    )


def _coded(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """A categorical column's own codes (as small as they are) and its texts."""
    coded = categorical(column)
    return coded.codes, coded.categories.tolist()
