"""A manifest read into memory, and where each of its rows came from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from batchtag.errors import Problem
from batchtag.manifest._columnar import index_type


@dataclass
class Manifest:
    """A manifest read into memory: every column is text, "" where a value is missing.

    Rows are numbered 1.. in data order (blank lines and the header not counted). Files also
    know the line each row starts on; a DataFrame knows each row's index label, which is what
    problems and the plan's `rows` name for it.
    """

    frame: pd.DataFrame
    kind: str  # csv, jsonl, parquet, frame
    problems: list[Problem] = field(default_factory=list)
    # 1-based data row of each frame row; None means 1..len(frame)
    row_numbers: np.ndarray | None = None
    # returns the file line of every data row (index 0 = row 1); None when lines mean nothing
    line_finder: Callable[[], np.ndarray] | None = None
    total_rows: int = 0
    labels: pd.Index | None = None  # a DataFrame's index: the label of every row
    tags_copy: bool = False  # `tags` holds export()'s dicts next to tag: columns (forms.py)
    tags_copy_edited: list[int] = field(default_factory=list)  # rows where the two disagree
    # value cells that were not text (a DataFrame's or Parquet file's numbers, booleans):
    # (column, 1-based data row of the first one, its value), one per such column
    converted: list[tuple[str, int, Any]] = field(default_factory=list)
    _repeats: bool | None = field(default=None, repr=False)  # does the index repeat labels?

    def rows(self) -> np.ndarray:
        """The 1-based data row of every frame row."""
        if self.row_numbers is None:
            return np.arange(1, len(self.frame) + 1, dtype=index_type(len(self.frame) + 1))
        return self.row_numbers

    def row_ids(self, rows: np.ndarray) -> list[Any]:
        """What the plan records for data rows `rows`: the number, or a DataFrame's label."""
        if self.labels is None:
            return rows.tolist()
        return self.labels[rows - 1].tolist()

    def row_text(self, row: int) -> str:
        """Data row `row` as a message names it: "row 3", or "row label 20" for a DataFrame
        ("row label 20 (position 4)" when its index repeats labels)."""
        if self.labels is None:
            return f"row {row}"
        return self.located(Problem("", row)).where()

    def converted_note(self) -> str | None:
        """One line naming the value columns that held cells other than text, with an
        example of how one is sent (None when every value cell was text)."""
        if not self.converted:
            return None
        from batchtag.manifest._cells import python_cell

        column, row, value = self.converted[0]
        others = [c for c, _, _ in self.converted[1:]]
        more = f" (also in {', '.join(repr(c) for c in others)})" if others else ""
        advice = "convert it with .astype(str)" if self.kind == "frame" else "store it as text"
        return (
            f"column {column!r} holds values that are not text, sent as their text: "
            f"{self.row_text(row)}: {value!r} is sent as {python_cell(value)!r}{more}; "
            f"{advice} to choose the text yourself"
        )

    def located(self, problem: Problem) -> Problem:
        """A DataFrame's problem at data row ``problem.row``, named by the row's label and
        position."""
        assert self.labels is not None and problem.row is not None
        if self._repeats is None:
            self._repeats = not self.labels.is_unique
        return replace(
            problem,
            row=self.label(problem.row),
            row_is_label=True,
            position=problem.row - 1,
            label_repeats=self._repeats,
        )

    def label(self, row: int) -> Any:
        """The DataFrame index label of data row `row`, as a plain Python value."""
        assert self.labels is not None
        return self.labels[row - 1 : row].tolist()[0]

    def locate(self, problems: list[Problem]) -> list[Problem]:
        """Problems with `line` filled in (files) or `row` made the index label (DataFrames)."""
        if self.labels is not None:
            return [p if p.row is None else self.located(p) for p in problems]
        if self.line_finder is None or not any(
            p.row is not None and p.line is None for p in problems
        ):
            return problems
        lines = self.line_finder()  # only computed when some problem needs it
        return [
            replace(p, line=int(lines[p.row - 1]))
            if p.row is not None and p.line is None and 0 < p.row <= len(lines)
            else p
            for p in problems
        ]


def header_problems(header: list[str], line: int | None = 1) -> list[Problem]:
    """Empty and duplicate column names (compared after stripping spaces)."""
    problems = []
    seen: set[str] = set()
    for number, raw in enumerate(header, start=1):
        name = raw.strip()
        if not name:
            problems.append(
                Problem(f"header cell {number} is empty: every column needs a name", line=line)
            )
        elif name in seen:
            problems.append(Problem("duplicate column name", column=name, line=line))
        seen.add(name)
    return problems
