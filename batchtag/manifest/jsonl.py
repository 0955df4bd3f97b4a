"""JSON Lines manifests: one object a line; blank lines are skipped.

An object that names a key twice (`tags` twice, or one tag twice inside `tags`) is refused
as ambiguous, naming its line: JSON parsers disagree on which copy wins.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from batchtag.errors import ManifestError, Problem
from batchtag.manifest.cells import python_cell
from batchtag.manifest.csvfile import BOM, SAVE_AS_UTF8, UTF16_BOMS
from batchtag.manifest.model import Manifest
from batchtag.manifest.schema import TAGS_COLUMN


class DuplicateKey(ValueError):
    """An object names the same key twice."""


def load_jsonl(data: bytes) -> Manifest:
    """Read JSON Lines; `"tags": null` is kept as "null" (it clears the tags)."""
    if data.startswith(UTF16_BOMS):
        raise ManifestError([Problem(f"the file looks like UTF-16 text: {SAVE_AS_UTF8}")])
    if data.startswith(BOM):
        data = data[len(BOM) :]
    problems: list[Problem] = []
    records: list[dict[str, str]] = []
    lines: list[int] = []
    rows: list[int] = []
    row = 0
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        row += 1
        value, problem = _parse(raw)
        if problem is not None:
            problems.append(Problem(problem, row=row, line=number))
            continue
        records.append({str(k): _json_cell(str(k), v) for k, v in value.items()})
        lines.append(number)
        rows.append(row)
    if problems and not records:  # nothing readable: the column checks would only add noise
        first = data.lstrip()[:1]
        if first in (b"[", b"{") and len(problems) > 1:
            message = "the file is one JSON document, not JSON Lines (one object a line)"
            raise ManifestError([Problem(message, line=1)])
        raise ManifestError(problems)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    frame = frame.fillna("").astype(str) if len(frame.columns) else frame
    all_lines = np.zeros(row, dtype=np.int64)
    all_lines[np.array(rows, dtype=np.int64) - 1] = lines
    for p in problems:
        all_lines[p.row - 1] = p.line
    return Manifest(
        frame,
        "jsonl",
        problems=problems,
        row_numbers=np.array(rows, dtype=np.int64),
        line_finder=lambda: all_lines,
        total_rows=row,
    )


def _parse(raw: bytes) -> tuple[Any, str | None]:
    """The object on one line, or why there is none."""
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys)
    except UnicodeDecodeError:
        return None, f"not valid UTF-8 text ({SAVE_AS_UTF8})"
    except DuplicateKey as exc:
        return None, f"the key {exc} appears twice in one object: which one is meant is ambiguous"
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg}"
    if not isinstance(value, dict):
        return None, "a JSON Lines record must be an object"
    return value, None


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` for json.loads: a dict, or DuplicateKey if a key repeats."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(repr(key))
        result[key] = value
    return result


def _json_cell(column: str, value: Any) -> str:
    if value is None:
        return "null" if column == TAGS_COLUMN else ""  # JSON null in `tags` clears them
    return python_cell(value)
