"""How problems are worded, and the collector that turns frame positions into rows."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import numpy as np
import pandas as pd

from batchtag.errors import Problem
from batchtag.manifest._columnar import take
from batchtag.manifest._model import Manifest
from batchtag.model import NAME_MAX, NAME_MIN, TAG_MAX

WHITESPACE = " \t\n\r\v\f\x85"


def shown(text: str, limit: int = 40) -> str:
    """A cell quoted for a message, cut at `limit` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def control_character(text: str) -> str | None:
    """The first control character of `text` (tabs and newlines count as whitespace), as
    U+XXXX, or None."""
    for char in text:
        if char not in WHITESPACE and unicodedata.category(char) == "Cc":
            return f"U+{ord(char):04X}"
    return None


def tag_text_problem(text: str, what: str) -> str:
    """Why `text` is not a valid tag key or value (only called on failures)."""
    if text == "":
        return f"{what} is empty"
    if len(text) > TAG_MAX:
        return f"{what} is {len(text)} characters long; the limit is {TAG_MAX}"
    if "=" in text:
        return f"{what} {shown(text)} contains '='"
    control = control_character(text)
    if control is not None:
        return f"{what} {shown(text)} contains the control character {control}"
    return f"{what} {shown(text)} contains whitespace"


def name_problem(text: str) -> str:
    """Why `text` is not a valid snapshot name (only called on failures)."""
    control = control_character(text)
    if control is not None:
        return f"name {shown(text)} contains the control character {control}"
    return f"name {shown(text)} is {len(text)} characters long; names take {NAME_MIN}-{NAME_MAX}"


class Collector:
    """Problems found on frame positions, kept with their data row numbers."""

    def __init__(self, manifest: Manifest):
        self.manifest = manifest
        self.problems: list[Problem] = list(manifest.problems)
        self.notes: list[str] = []  # for the user, not problems (blank cells ignored)

    def row(self, pos: int) -> int:
        """The data row at frame position `pos` (no array of every row is made for this)."""
        numbers = self.manifest.row_numbers
        return int(pos) + 1 if numbers is None else int(numbers[pos])

    def add(self, message: str, column: str | None = None, pos: int | None = None) -> None:
        """One problem, about the row at frame position `pos` (None: the whole manifest)."""
        row = None if pos is None else self.row(pos)
        self.problems.append(Problem(message, row=row, column=column))

    def refused(self) -> np.ndarray:
        """Per frame position: whether the reader already found a problem in that row."""
        refused = np.zeros(len(self.manifest.frame), dtype=bool)
        rows = np.array([p.row for p in self.manifest.problems if p.row is not None], np.int64)
        if not len(rows):
            return refused
        numbers = self.manifest.rows()
        pos = np.searchsorted(numbers, rows)  # rows ascend: a row's position by bisection
        inside = pos < len(numbers)
        pos, rows = pos[inside], rows[inside]
        refused[pos[numbers[pos] == rows]] = True
        return refused

    def where(self, pos: int) -> str:
        """The row at frame position `pos` as a message names it ("row 3", "row label 20")."""
        return self.manifest.row_text(self.row(pos))

    def cells(
        self,
        mask: np.ndarray,
        texts: pd.Series | list,
        word: Callable[[str], str],
        column: str | pd.Series,
        pos: np.ndarray | None = None,
    ) -> None:
        """One problem per failing entry: `word(text)` phrases it, `column` is one name or a
        name per entry, `pos` maps entries to frame positions (default: the same)."""
        hits = np.flatnonzero(mask)
        if len(hits) == 0:
            return
        values = take(texts, hits)
        columns = [column] * len(hits) if isinstance(column, str) else take(column, hits)
        where = hits if pos is None else pos[hits]
        for text, name, at in zip(values, columns, where.tolist(), strict=True):
            self.add(word(text), name, int(at))

    def result(self) -> list[Problem]:
        """Every problem in row order, with file lines or DataFrame labels filled in."""
        problems = sorted(self.problems, key=lambda p: (p.row is not None, p.row or 0, p.line or 0))
        return self.manifest.locate(problems)
