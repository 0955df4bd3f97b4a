"""Appending rows to a text table (CSV, JSON Lines): `RowAppender`, and the one-line CSV
encoding shared with whole writes.

Each batch of rows is handed to the OS at once (one `write`), so a ``kill -9`` loses
nothing already written; a crash can only tear the last line, which the readers drop.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from batchtag.tabular._kinds import ANY


class TextFormat(Protocol):
    """What an appender needs of a text format (CSV or JSON Lines)."""

    name: str

    def encoders(self, columns: list[str], kinds: dict) -> list: ...

    def line(self, columns: Sequence[str], encoders: list, values: Sequence[Any]) -> str: ...


Record = dict[str, Any]
PathLike = str | os.PathLike[str]


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of `data` to the file descriptor (os.write may write fewer)."""
    written = os.write(fd, data)  # all of it, almost always
    view = memoryview(data)[written:]
    while view:
        view = view[os.write(fd, view) :]


class RowAppender:
    """Appends rows of one text format to a file, each batch handed to the OS at once.

    Raises OSError (for instance ENOSPC: no space left on device) as it happens.
    """

    def __init__(self, fmt: TextFormat, path: PathLike, columns: Sequence[str], kinds):
        self.format = fmt
        self.path = Path(path)
        self.columns = list(columns)
        self._encoders = fmt.encoders(self.columns, kinds or {})
        # Per column: its encoder, and whether a text cell is written as it is (most cells
        # are None or text: no call for them on the per-result path).
        self._cell_encoders = [
            (enc, fmt.name == "csv" and (kinds or {}).get(c, ANY).text_as_is)
            for c, enc in zip(self.columns, self._encoders, strict=True)
        ]
        self._sink = _LastLine()  # per appender: no state shared between threads
        self._csv = csv.writer(self._sink, lineterminator="\r\n")
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if fmt.name == "csv" and os.fstat(self._fd).st_size == 0:
            write_all(self._fd, _csv_line(self.columns).encode("utf-8"))  # a new file's header

    def write_rows(self, records: Iterable[Record]) -> None:
        """Append `records` (each a dict; missing columns are empty)."""
        self.write_cells([[r.get(c) for c in self.columns] for r in records])

    def write_cells(self, rows: Iterable[Sequence[Any]]) -> None:
        """Append rows given as values in column order (the fast path)."""
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        if self.format.name == "csv":  # the per-result hot path: this appender's own csv writer
            writerow, sink, encoders = self._csv.writerow, self._sink, self._cell_encoders
            lines = []
            for row in rows:
                writerow(
                    [
                        "" if v is None else v if as_is and type(v) is str else enc(v)
                        for (enc, as_is), v in zip(encoders, row, strict=True)
                    ]
                )
                lines.append(sink.text[:-2] + "\n")
            text = "".join(lines)
        else:
            text = "".join(self.format.line(self.columns, self._encoders, row) for row in rows)
        write_all(self._fd, text.encode("utf-8"))

    def close(self, *, sync: bool = True) -> None:
        """Flush to disk (unless `sync` is false) and close; safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)


class _LastLine:
    """A file-like that keeps the one line csv.writer hands it."""

    text = ""

    def write(self, text: str) -> None:
        self.text = text


def _csv_line(cells: Sequence[str]) -> str:
    # csv.writer quotes a cell only for characters of its line terminator: with "\n" alone
    # a bare "\r" would go out unquoted and split the row for every reader. So lines end
    # in "\r\n" here and the file keeps plain "\n" line ends. A writer per call: no state
    # shared between threads.
    sink = _LastLine()
    csv.writer(sink, lineterminator="\r\n").writerow(cells)
    return sink.text[:-2] + "\n"
