"""Running a coroutine from sync code, and what a Ctrl-C (a notebook's stop button) leaves.

`run_blocking` runs every blocking call of the Python API on its own event loop in a
helper thread, so it works the same in a script and inside Jupyter's running loop, and the
calling thread only waits: a KeyboardInterrupt lands there, at a known point. It stops the
run cleanly (an apply's engine stops dispatching and writes its report; a read is
cancelled, keeping what it read) and raises `batchtag.Interrupted` with the frame so far.
The API functions then attach the `Resume` call that finishes the run.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from batchtag.config import Secret
from batchtag.errors import Interrupted
from batchtag.send import Engine

T = TypeVar("T")
WAIT_S = 0.1  # the calling thread waits this long at a time: a Ctrl-C is never held longer


def run_blocking(make: Callable[[list[Engine]], Coroutine[Any, Any, T]], name: str) -> T:
    """Run the coroutine ``make(engines)`` to the end and return its result, from sync code.

    It runs on a new event loop in a helper thread named `name` (with the caller's context
    variables), whether or not the calling thread has a running loop (Jupyter has one).
    A KeyboardInterrupt while it runs interrupts the first engine the coroutine appended to
    `engines` (a clean stop: in-flight requests finish, the report is written), or cancels
    the coroutine when it has none yet; a second one cancels it outright. Once it has
    ended, a cancelled run raises `Interrupted` (``report`` None); a run that stopped
    cleanly raises or returns what the coroutine does (an apply raises `Interrupted` with
    its report). Any other exception raised in the waiting thread (a signal handler's, as a
    scheduler stops a task) stops the run the same way, then is raised as it is. Errors of
    the run are re-raised in the calling thread.
    """
    box: dict[str, Any] = {}
    ready = threading.Event()
    engines: list[Engine] = []

    def target() -> None:
        loop = asyncio.new_event_loop()
        box["loop"] = loop
        try:
            box["task"] = loop.create_task(make(engines))
            box["result"] = loop.run_until_complete(box["task"])
        except BaseException as exc:  # handed to the calling thread
            box["error"] = exc
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
                ready.set()

    context = contextvars.copy_context()  # the caller's (e.g. who is calling: python or cli)
    thread = threading.Thread(target=context.run, args=(target,), name=name, daemon=True)
    thread.start()
    stops = 0
    while True:
        try:
            while not ready.wait(WAIT_S):  # short waits keep KeyboardInterrupt deliverable
                pass
            break
        except KeyboardInterrupt:
            stops += 1
            gentle = stops == 1 and engines
            _call_soon(box.get("loop"), engines[0].interrupt if gentle else _cancel(box))
        except BaseException:  # another handler's exception (a scheduler stopping its task)
            _call_soon(box.get("loop"), engines[0].interrupt if engines else _cancel(box))
            ready.wait()  # the run stops as for a Ctrl-C (its report written), then this
            raise
    if "error" in box:
        error = box["error"]
        if isinstance(error, asyncio.CancelledError) and stops:
            raise Interrupted("stopped before it had any result (nothing was sent)") from None
        raise error
    return box["result"]


def _cancel(box: dict[str, Any]) -> Callable[[], None]:
    def cancel() -> None:
        task = box.get("task")
        if task is not None:
            task.cancel()

    return cancel


def _call_soon(loop: asyncio.AbstractEventLoop | None, stop: Callable[[], None]) -> None:
    if loop is None:
        return
    try:
        loop.call_soon_threadsafe(stop)
    except RuntimeError:
        pass  # the run finished (and closed its loop) just now


class Resume:
    """The call that finishes an interrupted run: ``error.resume()`` makes it.

    Its repr is the call as code (an apply's ``resume=`` report and the other options the
    run was given; the API key as ``***``). It holds the key out of sight (`Secret`), so
    printing it or its ``vars()`` shows none. Keyword arguments replace options of the
    call, e.g. ``error.resume(report="run2.csv")`` for an enforce whose report exists.
    """

    def __init__(self, func: Callable[..., Any], name: str, first: Any, options: dict):
        self._func = func
        self._first = first
        self._options = {k: Secret(v) if _secret(k) and v else v for k, v in options.items()}
        self._shown = call_text(name, first, options)

    def __call__(self, **changes: Any) -> Any:
        options = {k: v.reveal() if isinstance(v, Secret) else v for k, v in self._options.items()}
        options.update(changes)
        if self._first is None:
            return self._func(**options)
        return self._func(self._first, **options)

    def __repr__(self) -> str:
        return self._shown


def _secret(name: str) -> bool:
    from batchtag.defaults import OPTIONS

    return name in OPTIONS and OPTIONS[name].secret


def call_text(name: str, first: Any, options: dict[str, Any]) -> str:
    """``batchtag.apply('m.csv', resume='r.csv', rate=50)``: a call as code, for messages;
    a DataFrame shows as ``<DataFrame>``, secrets as ``***``."""
    parts = []
    if first is not None:
        is_path = isinstance(first, str | os.PathLike)
        parts.append(repr(os.fspath(first)) if is_path else f"<{type(first).__name__}>")
    for key, value in options.items():
        parts.append(f"{key}={'***' if _secret(key) and value else repr(value)}")
    return f"{name}({', '.join(parts)})"


def finish(error: Interrupted, resume: Resume, what: str) -> Interrupted:
    """A new `Interrupted` from `error` with `resume` attached and a message saying what the
    run did and how to finish it (raised by the API function without internal frames).

    Parameters
    ----------
    error : Interrupted
        As the run raised it: its message says what was done (``detail``), ``report``
        the frame so far.
    resume : Resume
        The call that finishes the run.
    what : str
        The command, for the message (``"apply"``).
    """
    detail = getattr(error, "detail", None) or str(error)
    fresh = Interrupted(
        f"{what} interrupted: {detail}; finish it with .resume(), i.e. {resume!r}",
        report=error.report,
        resume=resume,
    )
    fresh.detail = detail
    fresh.report_path = getattr(error, "report_path", None)
    return fresh
