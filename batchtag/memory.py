"""Memory housekeeping for large manifests: handing freed memory back to the system between
the big steps, no cyclic GC while the plan's objects are made, and none over them while
the run goes on."""

from __future__ import annotations

import atexit
import ctypes
import functools
import gc
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


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
