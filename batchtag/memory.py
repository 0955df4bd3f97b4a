"""Memory housekeeping for large manifests: handing freed memory back to the system between
the big steps, no cyclic GC while the plan's objects are made, and none over them while
the run goes on; and what a run keeps out of its memory, in an unlinked temporary file
(`SpillFile`, `Spill`: the page cache holds it, not the process).
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import gc
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from batchtag.errors import AbortRun


@functools.cache
def _native_pool() -> Any:
    """Arrow's own pool (mimalloc or jemalloc), taken before `malloc_arrow` first swaps it."""
    import pyarrow as pa

    return pa.default_memory_pool()


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc only
    except (OSError, AttributeError, TypeError):
        return None


def release_memory() -> None:
    """Give back what Arrow's pool and malloc keep after big temporaries are freed.

    Both allocators hold on to freed blocks; Python objects (the plan) never reuse them, so
    without this they add to the peak RSS of a large manifest by a few hundred MB. A
    process that has not imported pyarrow has nothing in its pools (and does not import it
    for this)."""
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        pa.default_memory_pool().release_unused()
        _native_pool().release_unused()  # what Arrow's C++ readers (Parquet) allocate from
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@contextmanager
def malloc_arrow() -> Iterator[None]:
    """Arrow allocates with malloc inside, so `release_memory` can hand its freed temporaries
    back (Arrow's default pool keeps more of them).
    Buffers made inside stay valid after; each is freed by the pool that made it."""
    import pyarrow as pa

    _native_pool()
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC inside: a plan's million entries hold no cycles, but every full collection
    while they are made walks all of them again (seconds on a 1M-row manifest)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def gc_frozen() -> Iterator[None]:
    """The objects that exist now (the plan, the imported modules) are left out of cyclic
    GC inside: collections during the run, set off by request churn, then skip them.

    It acts on the whole process, so only the CLI uses it, never the library API."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def cheap_exit() -> None:
    """Freeze every object as the interpreter exits (an atexit hook, run before its module
    teardown): its last cyclic collection then skips them instead of walking pandas',
    pyarrow's and the plan's objects once more (~0.1 s of CPU after a run). The CLI only:
    the process ends, every file was closed by its owner."""
    atexit.register(gc.freeze)


class SpillFile:
    """Bytes appended to an unlinked temporary file and read back by offset.

    The file is made at the first write, in `folder` (default: the temporary folder,
    ``$TMPDIR``), and deleted at `close` (or when the process ends, whatever the way). Any
    failure to write (a full disk, no temporary folder) raises `AbortRun` naming what was
    to be kept and the folder.

    Parameters
    ----------
    what : str
        What the file keeps, for messages ("the state read before sending").
    folder : str, optional
        Where the file goes.
    """

    def __init__(self, what: str, folder: str | None = None):
        import tempfile  # (at use: a run that keeps nothing aside does not import it)

        self.what = what
        self.folder = folder or tempfile.gettempdir()
        self.size = 0  # bytes written
        self._file: Any = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append all of `data`; returns the offset it starts at."""
        import tempfile

        start = self.size
        view = memoryview(data).cast("B")
        size = len(view)
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=self.folder, buffering=0)
            while view:
                view = view[self._file.write(view) :]
        except OSError as error:
            raise AbortRun(
                f"cannot keep {self.what} in {self.folder}: {error.strerror or error} "
                "(point TMPDIR to a folder with room)"
            ) from None
        self.size += size
        return start

    def read(self, offset: int, size: int) -> bytes:
        """The `size` bytes written at `offset`."""
        data = self.read_some(offset, size)
        while len(data) < size:
            part = self.read_some(offset + len(data), size - len(data))
            if not part:
                raise AbortRun(f"{self.what} were cut short in their temporary file")
            data += part
        return data

    def read_some(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes from `offset` (one read: fewer at the end of the file)."""
        if self._file is None:
            return b""
        return os.pread(self._file.fileno(), size, offset)

    def close(self) -> None:
        """Delete the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.size = 0


SPILL_BUFFER = 1 << 20  # bytes gathered before one write to a spill's file
UNIT = 8  # records start at multiples of this many bytes
HEADER = 4  # bytes of a record's length, little-endian, before its data
READ_AHEAD = 512  # bytes read at once: most records (a snapshot's tags) fit


class Spill:
    """Byte records kept in a `SpillFile`, each found by a small number.

    A record is found by where it starts, in units of `UNIT` bytes (records are padded to a
    whole unit). It starts with its own length, so a caller keeps no array of sizes, and 4
    bytes a record hold any offset of a spill up to 32 GiB. Records are gathered and written
    `SPILL_BUFFER` bytes at a time; reading one not yet written writes them first.

    Parameters
    ----------
    what : str
        What the records are, for messages (see `SpillFile`).
    folder : str, optional
        Where the file goes (default: the temporary folder, ``$TMPDIR``).

    Examples
    --------
    >>> spill = Spill("some records")
    >>> first, second = spill.append(b"one"), spill.append(b"two, longer")
    >>> spill.read(second), spill.read(first), second
    (b'two, longer', b'one', 1)
    >>> spill.close()
    """

    def __init__(self, what: str, folder: str | None = None):
        self.file = SpillFile(what, folder)
        self._buffer = bytearray()

    @property
    def folder(self) -> str:
        return self.file.folder

    def append(self, data: bytes) -> int:
        """Store `data`; returns where it starts, in units of `UNIT` bytes."""
        start = self.file.size + len(self._buffer)
        size = HEADER + len(data)
        self._buffer += size.to_bytes(HEADER, "little")
        self._buffer += data
        self._buffer += bytes(-size % UNIT)
        if len(self._buffer) >= SPILL_BUFFER:
            self.flush()
        return start // UNIT

    def flush(self) -> None:
        """Write what is gathered to the file."""
        if self._buffer:
            buffer, self._buffer = self._buffer, bytearray()
            self.file.write(buffer)

    def read(self, offset: int) -> bytes:
        """The record that `append` placed at `offset` (one read for most records)."""
        at = offset * UNIT
        if at >= self.file.size:
            self.flush()
        head = self.file.read_some(at, READ_AHEAD)
        size = int.from_bytes(head[:HEADER], "little")
        if size > len(head):
            head += self.file.read(at + len(head), size - len(head))
        return head[HEADER:size]

    def close(self) -> None:
        """Drop the records (the file is deleted)."""
        self._buffer = bytearray()
        self.file.close()
