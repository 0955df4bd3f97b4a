"""The json form's `tags` column: a JSON merge patch a row, parsed once per distinct text.

A big manifest repeats the same few patches: each distinct text is parsed once and its
operations (or problems) are spread to the rows that hold it, so no Python object is made
per row.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from batchtag.manifest._columnar import categorical, from_codes
from batchtag.manifest._jsonl import DuplicateKey, unique_keys
from batchtag.manifest._messages import Collector, shown
from batchtag.manifest._operations import ops_frame
from batchtag.model import TAGS_COLUMN

Patch = tuple[list[tuple[str, str, str]], list[str]]  # (op, key, value) list, problems


def patch_ops(cells: pd.Series, out: Collector) -> pd.DataFrame:
    """The operations of every row's merge patch (rows with an empty cell have none).

    Examples
    --------
    >>> from batchtag.manifest._model import Manifest
    >>> cells = pd.Series(['{"env": "a"}', "", "null"], dtype=str)
    >>> ops = patch_ops(cells, Collector(Manifest(pd.DataFrame(index=range(3)), "frame")))
    >>> ops[["pos", "op", "key", "value"]].values.tolist()
    [[0, 'set', 'env', 'a'], [2, 'clear', '', '']]
    """
    coded = categorical(cells)
    texts = coded.categories.tolist()
    parsed = [parse_patch(text) if text.strip() else ([], []) for text in texts]
    filled = np.append([bool(text.strip()) for text in texts], False)[coded.codes]
    positions = np.flatnonzero(filled)
    of_row = coded.codes[positions].astype(np.int64)  # which text each filled row holds
    del filled
    _add_problems(parsed, positions, of_row, out)
    counts = np.array([len(ops) for ops, _ in parsed] + [0], dtype=np.int64)
    per_row = counts[of_row]
    starts = np.cumsum(per_row) - per_row  # where each row's operations begin
    flat = np.repeat((np.cumsum(counts) - counts)[of_row] - starts, per_row)
    flat += np.arange(len(flat))  # each operation's index into the texts' operations, flattened
    listed = [op for ops, _ in parsed for op in ops]
    fields = [categorical([op[i] for op in listed]) for i in range(3)]
    op, key, value = (from_codes(f.codes[flat], f.categories) for f in fields)
    return ops_frame(np.repeat(positions, per_row), op, key, value, TAGS_COLUMN, TAGS_COLUMN)


def _add_problems(
    parsed: list[Patch], positions: np.ndarray, of_row: np.ndarray, out: Collector
) -> None:
    """The problems of each refused text, on every row that holds it (in row order)."""
    bad = np.array([bool(problems) for _, problems in parsed] + [False])
    hits = np.flatnonzero(bad[of_row])
    for pos, text in zip(positions[hits].tolist(), of_row[hits].tolist(), strict=True):
        for message in parsed[text][1]:
            out.add(message, TAGS_COLUMN, pos)


def parse_patch(text: str) -> Patch:
    """(op, key, value) of one merge patch written as JSON text, and its problems.

    Examples
    --------
    >>> parse_patch('{"env": "prod", "old": null}')
    ([('set', 'env', 'prod'), ('delete', 'old', '')], [])
    >>> parse_patch("[]")[1]
    ['tags must be a JSON object or null, not list']
    """
    try:
        patch = json.loads(text, object_pairs_hook=unique_keys)
    except DuplicateKey as exc:
        return [], [f"tags names the key {exc} twice: which one is meant is ambiguous"]
    except json.JSONDecodeError as exc:
        return [], [f"tags is not valid JSON ({exc.msg} at character {exc.pos + 1})"]
    if patch is None:
        return [("clear", "", "")], []
    if not isinstance(patch, dict):
        return [], [f"tags must be a JSON object or null, not {type(patch).__name__}"]
    ops, problems = [], []
    for k, v in patch.items():
        if v is None:
            ops.append(("delete", k, ""))
        elif isinstance(v, str):
            ops.append(("set", k, v))
        else:
            kind = type(v).__name__
            problems.append(f"tag {shown(k)}: a value must be a string or null, not {kind}")
    return ops, problems
