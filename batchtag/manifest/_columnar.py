"""Whole-column helpers over text columns, via pyarrow: no Python object per row.

The checks and the plan builder use these to work on a million rows at a time. A column is
Arrow-backed text, or a categorical (codes into a few distinct texts, as the CSV reader and
the operations table hold most columns): on a categorical, a test runs once per distinct
text and is spread to the rows through the codes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def arrow(series: pd.Series) -> pa.Array | pa.ChunkedArray:
    """The column as Arrow: zero-copy for pyarrow-backed text; a pandas NA becomes null."""
    return pa.array(series, from_pandas=True)


def _split(series: pd.Series) -> tuple[np.ndarray, pd.Series] | None:
    """(codes, distinct texts) of a categorical column; None for a plain one."""
    if not isinstance(series.dtype, pd.CategoricalDtype):
        return None
    return series.cat.codes.to_numpy(), pd.Series(series.cat.categories, dtype=str)


def _spread(per_text: np.ndarray, codes: np.ndarray, missing) -> np.ndarray:
    """Per-text results spread to the rows (code -1, a missing cell, gets `missing`)."""
    return np.append(per_text, np.array([missing], dtype=per_text.dtype))[codes]


def factorize(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """int32 codes (-1 for null) and the unique values (first-seen order for plain text)."""
    split = _split(series)
    if split is not None:
        return split[0].astype(np.int32), split[1].tolist()
    encoded = _encoded(arrow(series))
    return _codes(encoded), encoded.dictionary.to_pylist()


def categorical(values: pd.Series | list | np.ndarray) -> pd.Categorical:
    """Texts as a categorical: codes (1-4 bytes a row) into the distinct texts, which stay
    Arrow-backed; a categorical is returned as it is."""
    if isinstance(values, pd.Categorical):
        return values
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        return values.array
    if isinstance(values, pd.Series) and len(values):
        encoded = _encoded(arrow(values))
        texts = pd.Index(encoded.dictionary.to_pandas(), dtype=str)
        return pd.Categorical.from_codes(
            compact_codes(_codes(encoded), len(texts)), dtype=_dtype(texts)
        )
    return pd.Categorical(pd.Series(values, dtype=str))


def from_codes(codes: np.ndarray, texts: list[str] | pd.Index) -> pd.Categorical:
    """A categorical of `codes` into the distinct `texts`."""
    return pd.Categorical.from_codes(
        compact_codes(codes, len(texts)), dtype=_dtype(pd.Index(texts, dtype=str))
    )


def normalised(cells: pd.Categorical) -> pd.Categorical:
    """The cells stripped and lowercased, worked out once per distinct text."""
    texts = pd.Index(cells.categories, dtype=str).str.strip().str.lower()
    codes, distinct = pd.factorize(texts)  # "Set" and "set " become one text
    return from_codes(np.append(codes, -1)[cells.codes], pd.Index(distinct, dtype=str))


def _dtype(texts: pd.Index) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(texts)


def compact_codes(codes: np.ndarray, count: int) -> np.ndarray:
    """Codes into `count` items in the smallest signed int type that holds them (and -1)."""
    for kind in (np.int8, np.int16, np.int32):
        if count < np.iinfo(kind).max:
            return codes.astype(kind, copy=False)
    return codes.astype(np.int64, copy=False)


def group_codes(values: pa.Array | pa.ChunkedArray | np.ndarray) -> np.ndarray:
    """Codes in first-seen order, without the unique values (which may be many).

    A dense rank sorts rather than hashes: with many distinct snapshot ids it needs a small
    fraction of what dictionary_encode's hash table and dictionary take."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    rank = pc.rank(
        pa.array(values) if isinstance(values, np.ndarray) else values,
        "ascending",
        tiebreaker="dense",
    )
    if pc.max(rank).as_py() == len(values):  # no value repeats: row i is group i
        return np.arange(len(values), dtype=index_type(len(values)))
    codes = np.asarray(rank).astype(index_type(len(values)))  # its own writable copy
    del rank
    codes -= 1
    return first_seen(codes)


def index_type(n: int) -> type:
    """int32 for positions below 2**31 (half the memory of int64), else int64."""
    return np.int32 if n < np.iinfo(np.int32).max else np.int64


def first_seen(codes: np.ndarray) -> np.ndarray:
    """Renumber dense codes by where each first appears (`codes` is overwritten)."""
    kind = index_type(len(codes))
    count = int(codes.max()) + 1
    first = np.full(count, len(codes), dtype=kind)
    np.minimum.at(first, codes, np.arange(len(codes), dtype=kind))
    starts = np.zeros(len(codes), dtype=bool)
    starts[first] = True  # the rows where some code appears first, numbered in row order
    relabel = np.cumsum(starts, dtype=kind)[first]
    relabel -= 1
    del first, starts
    np.take(relabel, codes, out=codes)
    return codes


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
    return np.asarray(encoded.indices.fill_null(-1), dtype=np.int32)


def same_text(left: pd.Series, right: pd.Series) -> np.ndarray:
    """Where the two columns hold the same text, compared through their categorical codes.

    Examples
    --------
    >>> same_text(pd.Series(["a", "b"]), pd.Series(["a", "c"])).tolist()
    [True, False]
    """
    a, b = categorical(left), categorical(right)
    # each of left's texts as a code of right's (-1: not there), then code against code
    in_right = pd.Index(b.categories, dtype=str).get_indexer(pd.Index(a.categories, dtype=str))
    mapped = _spread(in_right, a.codes, -2)
    return (mapped == b.codes) & (mapped >= 0)


def fullmatch(series: pd.Series, pattern: str) -> np.ndarray:
    """Which cells match `pattern` (RE2) as a whole; null cells do not."""
    split = _split(series)
    if split is not None:
        return _spread(fullmatch(split[1], pattern), split[0], False)
    result = pc.match_substring_regex(arrow(series), f"^(?:{pattern})$")
    return np.asarray(pc.fill_null(result, False), dtype=bool)


def lengths(series: pd.Series) -> np.ndarray:
    """Characters per cell (0 for null)."""
    split = _split(series)
    if split is not None:
        return _spread(lengths(split[1]), split[0], 0)
    return np.asarray(pc.fill_null(pc.utf8_length(arrow(series)), 0), dtype=np.int64)


def take(values: pd.Series | list, positions: np.ndarray) -> list:
    """The values at `positions`, as a list."""
    if isinstance(values, pd.Series):
        return values.iloc[positions].tolist()
    return [values[i] for i in positions.tolist()]
