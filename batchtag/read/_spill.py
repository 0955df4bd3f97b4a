"""Byte records kept in an unlinked temporary file: the state an apply run read before
sending (`batchtag.read._state`), out of the process's memory (the page cache holds it).

A record is found by a small number: where it starts, in units of `UNIT` bytes (records
are padded to a whole unit). It starts with its own length, so a run keeps no array of
sizes, and 4 bytes a record hold any offset of a spill up to 32 GiB.

Examples
--------
>>> spill = Spill()
>>> first, second = spill.append(b"one"), spill.append(b"two, longer")
>>> spill.read(second), spill.read(first), second
(b'two, longer', b'one', 1)
>>> spill.close()
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from batchtag.errors import AbortRun

SPILL_BUFFER = 1 << 20  # bytes gathered before one write to the spill file
UNIT = 8  # records start at multiples of this many bytes
HEADER = 4  # bytes of a record's length, little-endian, before its data
READ_AHEAD = 512  # bytes read at once: most records (a snapshot's tags) fit


class Spill:
    """Byte records appended to an unlinked temporary file and read back by offset.

    Any failure to write (a full disk, no temporary folder) raises `AbortRun` naming the
    folder: a snapshot is sent only once its state is written, so those were not.

    Parameters
    ----------
    folder : str, optional
        Where the file goes (default: the temporary folder, ``$TMPDIR``).
    """

    def __init__(self, folder: str | None = None):
        self.folder = folder or tempfile.gettempdir()
        self._file: Any = None
        self._buffer = bytearray()
        self._written = 0  # bytes in the file

    def append(self, data: bytes) -> int:
        """Store `data`; returns where it starts, in units of `UNIT` bytes."""
        start = self._written + len(self._buffer)
        size = HEADER + len(data)
        self._buffer += size.to_bytes(HEADER, "little")
        self._buffer += data
        self._buffer += bytes(-size % UNIT)
        if len(self._buffer) >= SPILL_BUFFER:
            self.flush()
        return start // UNIT

    def flush(self) -> None:
        """Write what is gathered to the file."""
        if not self._buffer:
            return
        buffer, self._buffer = self._buffer, bytearray()
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=self.folder, buffering=0)
            view = memoryview(buffer)
            while view:
                view = view[self._file.write(view) :]
        except OSError as error:
            raise AbortRun(
                f"cannot keep the state read before sending in {self.folder}: "
                f"{error.strerror or error} (point TMPDIR to a folder with room)"
            ) from None
        self._written += len(buffer)

    def read(self, offset: int) -> bytes:
        """The record that `append` placed at `offset` (one read for most records)."""
        at = offset * UNIT
        if at >= self._written:
            self.flush()
        head = os.pread(self._file.fileno(), READ_AHEAD, at)
        size = int.from_bytes(head[:HEADER], "little")
        if size > len(head):
            head += os.pread(self._file.fileno(), size - len(head), at + len(head))
        return head[HEADER:size]

    def close(self) -> None:
        """Drop the records (the file is deleted)."""
        self._buffer = bytearray()
        if self._file is not None:
            self._file.close()
            self._file = None
