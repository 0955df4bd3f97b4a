"""The Python API: DataFrame in, DataFrame out; works with or without a running loop.

Signatures and docstrings are generated from the option table (`batchtag.defaults`), so
`help(batchtag.apply)` lists every keyword-only option with the CLI's names.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import threading
from typing import Any

import pandas as pd

from batchtag.defaults import MANIFEST_OPTIONS, OPTIONS, PYTHON_OPTIONS, numpydoc_parameters
from batchtag.engine import Engine
from batchtag.errors import BatchtagError, UsageError
from batchtag.manifest.describe import describe_manifest
from batchtag.manifest.describe import format_validation as _format
from batchtag.report import load_report
from batchtag.runner import ApplyOptions, load, run_apply


class OptionError(UsageError, TypeError):
    """An unknown keyword option; the message lists close matches and the valid names."""


def make_options(options: dict[str, Any], allowed: tuple[str, ...], func: str) -> ApplyOptions:
    """`ApplyOptions` from keyword arguments, refusing names `func` does not take."""
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
    return ApplyOptions(**options)


APPLY_NAMES = tuple(o.name for o in PYTHON_OPTIONS)


async def apply_async(manifest: Any, /, **options: Any) -> pd.DataFrame:
    try:
        return await _run(manifest, make_options(options, APPLY_NAMES, "apply_async"), [])
    except BatchtagError as error:
        raise error.with_traceback(None) from None


async def _run(manifest: Any, options: ApplyOptions, engines: list[Engine]) -> pd.DataFrame:
    outcome = await run_apply(manifest, options, on_engine=engines.append)
    if outcome.summary_json_error:
        import warnings

        warnings.warn(outcome.summary_json_error, RuntimeWarning, stacklevel=3)
    frame = load_report(outcome.report_path)
    frame.attrs["summary"] = outcome.summary
    return frame


def apply(manifest: Any, /, **options: Any) -> pd.DataFrame:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        runner = _apply_here
    else:
        runner = _apply_in_thread
    try:
        return runner(manifest, make_options(options, APPLY_NAMES, "apply"))
    except BatchtagError as error:
        # Short for the caller: the message says it all, internal frames would not help.
        raise error.with_traceback(None) from None


def _apply_here(manifest: Any, options: ApplyOptions) -> pd.DataFrame:
    return asyncio.run(_run(manifest, options, []))


def _apply_in_thread(manifest: Any, options: ApplyOptions) -> pd.DataFrame:
    """Inside a running loop (Jupyter): the run gets its own loop in a helper thread;
    Ctrl-C interrupts the run cleanly and re-raises; errors re-raise in this thread."""
    box: dict[str, Any] = {}
    ready = threading.Event()
    engines: list[Engine] = []

    def target() -> None:
        loop = asyncio.new_event_loop()
        box["loop"] = loop
        try:
            box["result"] = loop.run_until_complete(_run(manifest, options, engines))
        except BaseException as exc:  # handed to the calling thread
            box["error"] = exc
        finally:
            loop.close()
            ready.set()

    thread = threading.Thread(target=target, name="batchtag-apply", daemon=True)
    thread.start()
    try:
        while not ready.wait(0.1):  # short waits keep KeyboardInterrupt deliverable
            pass
    except KeyboardInterrupt:
        loop = box.get("loop")
        if engines and loop is not None:
            try:
                loop.call_soon_threadsafe(engines[0].interrupt)
            except RuntimeError:
                pass  # the run finished (and closed its loop) just now
        ready.wait()
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]


def validate(manifest: Any, /, **options: Any) -> dict[str, Any]:
    try:
        return describe_manifest(
            load(manifest, make_options(options, MANIFEST_OPTIONS, "validate"))
        )
    except BatchtagError as error:
        raise error.with_traceback(None) from None


def format_validation(summary: dict[str, Any]) -> str:
    """The text `batchtag validate` prints for a `validate()` summary."""
    return _format(summary)


# -- generated signatures and docstrings ----------------------------------------------------

_MANIFEST_DOC = """manifest : str, Path or DataFrame
    The manifest: a .csv / .parquet / .jsonl path, or a DataFrame (long, wide or json form)."""


def _signature(names: tuple[str, ...], returns: Any) -> inspect.Signature:
    manifest = inspect.Parameter("manifest", inspect.Parameter.POSITIONAL_ONLY, annotation=Any)
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


def _document(func: Any, summary: str, names: tuple[str, ...], returns: str, example: str) -> None:
    func.__signature__ = _signature(names, returns.split(None, 1)[0])
    func.__doc__ = (
        f"{summary}\n\nParameters\n----------\n{_MANIFEST_DOC}\n{numpydoc_parameters(names)}\n\n"
        f"Returns\n-------\n{returns}\n\nRaises\n------\nManifestError\n"
        "    The manifest is invalid (``.problems`` lists every problem); nothing was sent.\n"
        "UsageError\n    Bad options or configuration; nothing was sent.\n"
        f"AbortRun\n    The run stopped on purpose (credentials, max_changes, breaker).\n\n"
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
