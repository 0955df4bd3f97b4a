"""Rows grouped by snapshot, and the compact arrays a plan is held in.

A big manifest usually lists each snapshot once, in its own row: then the grouping is the
identity and nothing is sorted or copied (`Grouping.order` is None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batchtag.manifest._columnar import index_type


@dataclass(frozen=True)
class Grouping:
    """Rows ordered by group (file order within one) and where each group starts.

    Examples
    --------
    >>> g = Grouping.of(np.array([0, 1, 0]), 2)
    >>> g.order.tolist(), g.bounds.tolist()
    ([0, 2, 1], [0, 2, 3])
    >>> Grouping.of(np.array([0, 1]), 2).order is None
    True
    """

    order: np.ndarray | None  # rows by group; None when row i is group i
    bounds: np.ndarray  # group g's rows are order[bounds[g]:bounds[g + 1]]

    @classmethod
    def of(cls, group: np.ndarray, count: int) -> Grouping:
        """The grouping of rows whose groups (0..count-1, first-seen order) are `group`."""
        if len(group) == count and (count < 2 or bool(np.all(group[1:] > group[:-1]))):
            return cls(None, np.arange(count + 1, dtype=index_type(count + 1)))
        order = np.argsort(group, kind="stable")
        bounds = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(np.bincount(group, minlength=count), out=bounds[1:])
        return cls(order, bounds)

    def arrange(self, values: np.ndarray | None) -> np.ndarray | None:
        """Per-row `values` in group order (None stands for the row positions themselves)."""
        if self.order is None:
            return values
        return self.order if values is None else values[self.order]

    def firsts(self, values: np.ndarray | pa.Array | pa.ChunkedArray) -> Any:
        """The value of every group's first row."""
        if self.order is None:
            return values
        first = self.order[self.bounds[:-1]]
        if isinstance(values, np.ndarray):
            return values[first]
        return values.take(pa.array(first))  # Arrow: one array, or the reader's chunks


def compact_ids(values: np.ndarray) -> np.ndarray:
    """Project or region ids per entry, small: one shared value when all are the same (the
    usual case: a read-only broadcast view), else int32 when they fit.

    Examples
    --------
    >>> compact_ids(np.array([7, 7, 7])).strides
    (0,)
    """
    if len(values) and (values == values[0]).all():
        return np.broadcast_to(np.array([values[0]], dtype=values.dtype), values.shape)
    if len(values) and 0 <= values.min() and values.max() <= np.iinfo(np.int32).max:
        return values.astype(np.int32)
    return values


def distinct_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values (first-seen order) and each value's index into them (int32);
    hashed, so a million values with few distinct ones need no sort.

    Examples
    --------
    >>> [a.tolist() for a in distinct_codes(np.array([5, 3, 5]))]
    [[5, 3], [0, 1, 0]]
    """
    if not len(values):
        return values[:0], np.zeros(0, dtype=np.int32)
    encoded = pc.dictionary_encode(pa.array(values))
    return encoded.dictionary.to_numpy(), encoded.indices.to_numpy().astype(np.int32)


def first_rows(codes: np.ndarray) -> np.ndarray:
    """The first position of each code, for codes numbered 0.. in first-seen order: where
    the running maximum first reaches it.

    Examples
    --------
    >>> first_rows(np.array([0, 1, 0, 2, 1])).tolist()
    [0, 1, 3]
    """
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    running = np.maximum.accumulate(codes)
    return np.searchsorted(running, np.arange(int(running[-1]) + 1))
