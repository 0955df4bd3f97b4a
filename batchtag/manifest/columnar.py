"""Whole-column helpers over text columns, via pyarrow: no Python object per row.

The checks and the plan builder use these to work on a million rows at a time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def arrow(series: pd.Series) -> pa.Array | pa.ChunkedArray:
    """The column as Arrow: zero-copy for pyarrow-backed text; a pandas NA becomes null."""
    return pa.array(series, from_pandas=True)


def factorize(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes (first-seen order, -1 for null) and the unique values."""
    encoded = _encoded(arrow(series))
    return _codes(encoded), encoded.dictionary.to_pylist()


def group_codes(values: pa.Array | pa.ChunkedArray | np.ndarray) -> np.ndarray:
    """Codes in first-seen order, without the unique values (which may be many).

    A dense rank sorts rather than hashes: on 500k distinct snapshot ids it needs a few MB
    where dictionary_encode's hash table and dictionary take ~100 MB."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    rank = pc.rank(
        pa.array(values) if isinstance(values, np.ndarray) else values,
        "ascending",
        tiebreaker="dense",
    )
    return first_seen(np.asarray(rank).view(np.int64) - 1)


def first_seen(codes: np.ndarray) -> np.ndarray:
    """Renumber dense codes by where each first appears."""
    count = int(codes.max()) + 1
    first = np.full(count, len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    relabel = np.empty(count, dtype=np.int64)
    relabel[np.argsort(first)] = np.arange(count)
    return relabel[codes]


def _encoded(values: pa.Array | pa.ChunkedArray) -> pa.DictionaryArray:
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = (
            encoded.combine_chunks()
            if encoded.num_chunks
            else pa.array([], values.type).dictionary_encode()
        )
    return encoded


def _codes(encoded: pa.DictionaryArray) -> np.ndarray:
    return np.asarray(encoded.indices.fill_null(-1), dtype=np.int64)


def fullmatch(series: pd.Series, pattern: str) -> np.ndarray:
    """Which cells match `pattern` (RE2) as a whole; null cells do not."""
    result = pc.match_substring_regex(arrow(series), f"^(?:{pattern})$")
    return np.asarray(pc.fill_null(result, False), dtype=bool)


def lengths(series: pd.Series) -> np.ndarray:
    """Characters per cell (0 for null)."""
    return np.asarray(pc.fill_null(pc.utf8_length(arrow(series)), 0), dtype=np.int64)


def take(values: pd.Series | list, positions: np.ndarray) -> list:
    """The values at `positions`, as a list."""
    if isinstance(values, pd.Series):
        return values.iloc[positions].tolist()
    return [values[i] for i in positions.tolist()]
