"""The Python API: DataFrame in, DataFrame out; works with or without a running loop.

Signatures and docstrings are generated from the option table (`batchtag.defaults`), so
`help(batchtag.apply)` lists every keyword-only option with the CLI's names.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pandas as pd

from batchtag.commands import (
    PLAN_NAMES,
    UNDO_NAMES,
    ApplyOptions,
    load,
    run_apply,
    run_plan,
    run_undo,
)
from batchtag.defaults import MANIFEST_OPTIONS, OPTIONS, PYTHON_OPTIONS, numpydoc_parameters
from batchtag.errors import AbortRun, BatchtagError, UsageError
from batchtag.manifest import describe_manifest
from batchtag.record import read_report
from batchtag.send import Engine

T = TypeVar("T")


class OptionError(UsageError, TypeError):
    """An unknown keyword option; the message lists close matches and the valid names."""


def make_options(options: dict[str, Any], allowed: tuple[str, ...], func: str) -> ApplyOptions:
    """`ApplyOptions` from keyword arguments, refusing names `func` does not take."""
    refuse_unknown(options, allowed, func)
    return ApplyOptions(**options)


def refuse_unknown(options: dict[str, Any], allowed: tuple[str, ...], func: str) -> None:
    """Raise `OptionError` naming close matches when `options` has a name not `allowed`."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, allowed, n=2, cutoff=0.5)
            hints.append(f"{name!r}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
        raise OptionError(
            f"{func}() got unexpected keyword argument(s) {', '.join(hints)}; "
            f"valid: {', '.join(allowed)}"
        )


APPLY_NAMES = tuple(o.name for o in PYTHON_OPTIONS)


async def apply_async(manifest: Any, /, **options: Any) -> pd.DataFrame:
    try:
        return await _run(manifest, make_options(options, APPLY_NAMES, "apply_async"), [])
    except BatchtagError as error:
        raise error.with_traceback(None) from None


async def _run(manifest: Any, options: ApplyOptions, engines: list[Engine]) -> pd.DataFrame:
    try:
        outcome = await run_apply(manifest, options, on_engine=engines.append)
    except BatchtagError as error:  # the summary file says so, as on the command line
        if options.summary_json:
            from batchtag.logs import redact
            from batchtag.record import save_error_summary

            save_error_summary(options.summary_json, redact(str(error)), error.exit_code)
        raise
    if outcome.summary_json_error:
        import warnings

        warnings.warn(outcome.summary_json_error, RuntimeWarning, stacklevel=3)
    frame = read_report(outcome.report_path)
    frame.attrs["summary"] = outcome.summary
    if outcome.summary["aborted"]:  # the report is written: raise, with it attached
        error = AbortRun(f"{outcome.summary['aborted']} (report: {outcome.report_path})")
        error.report = frame
        raise error
    return frame


def apply(manifest: Any, /, **options: Any) -> pd.DataFrame:
    try:
        settings = make_options(options, APPLY_NAMES, "apply")
        return run_blocking(lambda engines: _run(manifest, settings, engines), "batchtag-apply")
    except BatchtagError as error:
        # Short for the caller: the message says it all, internal frames would not help.
        raise error.with_traceback(None) from None


def run_blocking(make: Callable[[list[Engine]], Coroutine[Any, Any, T]], name: str) -> T:
    """Run the coroutine ``make(engines)`` to the end and return its result, from sync code.

    Without a running loop it runs here (`asyncio.run`). Inside one (Jupyter) it gets its
    own loop in a helper thread named `name`; Ctrl-C interrupts the first engine the
    coroutine appended to `engines` (a clean stop), or cancels it when it has none, waits
    for it to end and re-raises; errors re-raise in the calling thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make([]))
    return _in_thread(make, name)


def _in_thread(make: Callable[[list[Engine]], Coroutine[Any, Any, T]], name: str) -> T:
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
            loop.close()
            ready.set()

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    try:
        while not ready.wait(0.1):  # short waits keep KeyboardInterrupt deliverable
            pass
    except KeyboardInterrupt:
        _stop(box.get("loop"), engines[0].interrupt if engines else _cancel(box))
        ready.wait()
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]


def _cancel(box: dict[str, Any]) -> Callable[[], None]:
    def cancel() -> None:
        task = box.get("task")
        if task is not None:
            task.cancel()

    return cancel


def _stop(loop: asyncio.AbstractEventLoop | None, stop: Callable[[], None]) -> None:
    if loop is None:
        return
    try:
        loop.call_soon_threadsafe(stop)
    except RuntimeError:
        pass  # the run finished (and closed its loop) just now


def _split(options: dict[str, Any], allowed: tuple[str, ...], func: str, *own: str):
    """(ApplyOptions of the shared options, the function's own ones) from keywords."""
    unknown = set(options) - set(allowed)
    mine = {name: options.pop(name) for name in own if name in options and not unknown}
    return make_options(options, allowed, func), mine


async def plan_async(manifest: Any, /, **options: Any) -> pd.DataFrame:
    try:
        settings, own = _split(dict(options), PLAN_NAMES, "plan_async", "output")
        return await run_plan(manifest, settings, **own)
    except BatchtagError as error:
        raise error.with_traceback(None) from None


def plan(manifest: Any, /, **options: Any) -> pd.DataFrame:
    try:
        settings, own = _split(dict(options), PLAN_NAMES, "plan", "output")
        return run_blocking(lambda _: run_plan(manifest, settings, **own), "batchtag-plan")
    except BatchtagError as error:
        raise error.with_traceback(None) from None


async def undo_async(report: Any, /, **options: Any) -> pd.DataFrame:
    try:
        settings, own = _split(dict(options), UNDO_NAMES, "undo_async", "output", "force")
        return _undo_frame(await run_undo(report, settings, **own))
    except BatchtagError as error:
        raise error.with_traceback(None) from None


def undo(report: Any, /, **options: Any) -> pd.DataFrame:
    try:
        settings, own = _split(dict(options), UNDO_NAMES, "undo", "output", "force")
        outcome = run_blocking(lambda _: run_undo(report, settings, **own), "batchtag-undo")
    except BatchtagError as error:
        raise error.with_traceback(None) from None
    return _undo_frame(outcome)


def _undo_frame(outcome: Any) -> pd.DataFrame:
    frame = outcome.undo.changes
    frame.attrs["skipped"] = outcome.undo.skipped
    frame.attrs["summary"] = outcome.as_dict()
    return frame


def validate(manifest: Any, /, **options: Any) -> dict[str, Any]:
    try:
        return describe_manifest(
            load(manifest, make_options(options, MANIFEST_OPTIONS, "validate"))
        )
    except BatchtagError as error:
        raise error.with_traceback(None) from None


# -- generated signatures and docstrings ----------------------------------------------------

_MANIFEST_DOC = """manifest : str, Path or DataFrame
    The manifest: a .csv / .parquet / .jsonl path, or a DataFrame (long, wide or json form);
    or a change file or frame (`batchtag.plan`, `batchtag.undo`), applied exactly where each
    key still holds its old value (the rest is ``conflict``, unless ``force``)."""


def _signature(names: tuple[str, ...], returns: Any, first: str = "manifest") -> inspect.Signature:
    manifest = inspect.Parameter(first, inspect.Parameter.POSITIONAL_ONLY, annotation=Any)
    keywords = [
        inspect.Parameter(
            n,
            inspect.Parameter.KEYWORD_ONLY,
            default=OPTIONS[n].default,
            annotation=OPTIONS[n].annotation,
        )
        for n in names
    ]
    return inspect.Signature([manifest, *keywords], return_annotation=returns)


def _document(
    func: Any,
    summary: str,
    names: tuple[str, ...],
    returns: str,
    example: str,
    first: tuple[str, str] = ("manifest", _MANIFEST_DOC),
) -> None:
    func.__signature__ = _signature(names, returns.split(None, 1)[0], first[0])
    func.__doc__ = (
        f"{summary}\n\nParameters\n----------\n{first[1]}\n{numpydoc_parameters(names)}\n\n"
        f"Returns\n-------\n{returns}\n\nRaises\n------\nManifestError\n"
        "    The manifest is invalid (``.problems`` lists every problem); nothing was sent.\n"
        "UsageError\n    Bad options or configuration; nothing was sent.\n"
        "AbortRun\n    The run stopped on purpose (credentials, max_changes, breaker); when a\n"
        "    report was written, ``error.report`` is its frame (as `apply` would return it).\n\n"
        f"Examples\n--------\n{example}\n"
    )


_APPLY_EXAMPLE = """>>> report = batchtag.apply("snapshots.csv", report="run1.csv", project_id=1,
...                         region_id=1)  # doctest: +SKIP
>>> report.attrs["summary"]["exit_code"]  # doctest: +SKIP
0"""
_RETURNS = (
    "DataFrame\n    The report, one row per snapshot; ``.attrs['summary']`` holds the summary."
)
_document(
    apply,
    "Apply a manifest and return the report. Works inside a running event loop (Jupyter).",
    APPLY_NAMES,
    _RETURNS,
    _APPLY_EXAMPLE,
)
_document(
    apply_async,
    "Apply a manifest from async code (``await batchtag.apply_async(...)``).",
    APPLY_NAMES,
    _RETURNS,
    _APPLY_EXAMPLE.replace("batchtag.apply(", "await batchtag.apply_async("),
)
_document(
    validate,
    "Validate a manifest without any network.",
    MANIFEST_OPTIONS,
    "dict\n    Counts of snapshots, operations and scopes.",
    '>>> batchtag.validate("snapshots.csv", project_id=1, region_id=1)  # doctest: +SKIP',
)

_PLAN_RETURNS = (
    "DataFrame\n    The change frame, one row per (snapshot, key): project_id, region_id,\n"
    "    snapshot_id, verdict (change, noop, not_found, locked, conflict), field (tag/name),\n"
    "    key, change (add, remove, change; notes: read_only, conflict), old (the value now,\n"
    "    checked when applied), new, rows; ``batchtag.apply(frame)`` applies exactly these\n"
    "    changes where each key still holds its old value. ``.attrs['summary']`` the counts\n"
    "    per verdict and per key, ``writes`` (PATCHes an apply would send) and ``requests``."
)
_PLAN_EXAMPLE = """>>> diff = batchtag.plan("snapshots.csv", project_id=1, region_id=1)  # doctest: +SKIP
>>> diff.attrs["summary"]["verdicts"]  # doctest: +SKIP
{'change': 2, 'noop': 5, 'not_found': 0, 'locked': 1}"""
_document(
    plan,
    "What applying a manifest would change now, read from the API; sends no write.",
    PLAN_NAMES,
    _PLAN_RETURNS,
    _PLAN_EXAMPLE,
)
_document(
    plan_async,
    "`plan` from async code (``await batchtag.plan_async(...)``).",
    PLAN_NAMES,
    _PLAN_RETURNS,
    _PLAN_EXAMPLE.replace("batchtag.plan(", "await batchtag.plan_async("),
)
_UNDO_DOC = """report : str, Path or DataFrame
    A run's report: its ``ok`` rows are reverted where their before-state was read (every
    default run; rows written blind with ``check_current=False`` are listed as skipped)."""
_UNDO_RETURNS = (
    "DataFrame\n    The change frame that reverts the run (one row per snapshot and key the run\n"
    "    changed: old = what it holds now, new = its value before the run), ready for\n"
    "    `batchtag.apply`, which checks every old value again; ``.attrs['skipped']`` the\n"
    "    snapshots left out (status ``conflict``: a key the run changed was changed since;\n"
    "    ``not_found``; ``skipped``: cannot be undone, with why), ``.attrs['summary']`` counts."
)
_UNDO_EXAMPLE = """>>> inverse = batchtag.undo("run1.csv", output="run1.undo.jsonl")  # doctest: +SKIP
>>> batchtag.apply(inverse, report="undo1.csv")  # doctest: +SKIP"""
_document(
    undo,
    "The change file that reverts a run, key by key; a snapshot whose changed keys were changed\n"
    "again since the run is left out (conflict) unless ``force``.\n\n"
    "``output`` (.csv, .parquet or .jsonl) is never replaced when it exists (``overwrite=True``\n"
    "writes beside it); without it nothing is written and the returned frame is what to pass\n"
    "to `batchtag.apply`. A report a running apply still writes is refused unless ``force``.",
    UNDO_NAMES,
    _UNDO_RETURNS,
    _UNDO_EXAMPLE,
    ("report", _UNDO_DOC),
)
_document(
    undo_async,
    "`undo` from async code (``await batchtag.undo_async(...)``).",
    UNDO_NAMES,
    _UNDO_RETURNS,
    _UNDO_EXAMPLE.replace("batchtag.undo(", "await batchtag.undo_async("),
    ("report", _UNDO_DOC),
)
