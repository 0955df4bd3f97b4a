"""The Python API: DataFrame in, DataFrame out; works with or without a running loop.

Signatures and docstrings are generated from the option table (`batchtag.defaults`), so
`help(batchtag.apply)` lists every keyword-only option with the CLI's names.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pandas as pd

from batchtag.api._interrupt import Resume, finish, run_blocking
from batchtag.api._validation import Validation
from batchtag.commands import (
    PLAN_NAMES,
    UNDO_NAMES,
    ApplyOptions,
    load,
    locates,
    run_apply,
    run_plan,
    run_undo,
)
from batchtag.defaults import MANIFEST_OPTIONS, OPTIONS, PYTHON_OPTIONS, numpydoc_parameters
from batchtag.errors import AbortRun, BatchtagError, Interrupted, ManifestError, UsageError
from batchtag.manifest import describe_manifest
from batchtag.record import read_report
from batchtag.send import Engine


class OptionError(UsageError, TypeError):
    """An unknown keyword option; the message lists close matches and the valid names."""


def make_options(options: dict[str, Any], allowed: tuple[str, ...], func: str) -> ApplyOptions:
    """`ApplyOptions` from keyword arguments, refusing names `func` does not take; ``{started}``
    in the report, undo file and summary names is filled in now (the run's start)."""
    refuse_unknown(options, allowed, func)
    return ApplyOptions(**options).stamped()


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
        settings = make_options(options, APPLY_NAMES, "apply_async")
        with _dry_run_report(settings) as temporary:
            frame = await _run(manifest, settings, [])
        if temporary:
            frame.attrs["summary"]["report"] = None
        return frame
    except BatchtagError as error:
        raise error.with_traceback(None) from None


async def _run(
    manifest: Any, options: ApplyOptions, engines: list[Engine], plan: Any = None
) -> pd.DataFrame:
    try:
        outcome = await run_apply(manifest, options, plan=plan, on_engine=engines.append)
    except BatchtagError as error:  # the summary file says so, as on the command line
        if options.summary_json:
            from batchtag.logs import redact
            from batchtag.record import save_error_summary

            save_error_summary(options.summary_json, redact(str(error)), error.exit_code)
        raise
    if outcome.summary_json_error:
        import warnings

        warnings.warn(outcome.summary_json_error, RuntimeWarning, stacklevel=3)
    return report_of(outcome)


def report_of(outcome: Any, *, abort: bool = True) -> pd.DataFrame:
    """The report frame of a finished apply run (``attrs["summary"]``); a run that was
    interrupted raises `Interrupted`, one that aborted (with `abort`) `AbortRun`, each with
    the frame."""
    frame = read_report(outcome.report_path)
    frame.attrs["summary"] = summary = outcome.summary
    if summary["aborted"] and abort:  # the report is written: raise, with it attached
        error = AbortRun(f"{summary['aborted']} (report: {outcome.report_path})")
        error.report = frame
        raise error
    if summary["interrupted"]:
        counts = summary["counts"]
        done = sum(counts.get(s, 0) for s in ("ok", "noop", "planned"))
        shown = ", ".join(f"{status} {n}" for status, n in counts.items() if n)
        error = Interrupted(
            f"{done} of {summary['total']} snapshots done ({shown}), report {outcome.report_path}",
            report=frame,
        )
        error.report_path = outcome.report_path
        raise error
    return frame


@contextlib.contextmanager
def _dry_run_report(settings: ApplyOptions) -> Iterator[bool]:
    """A dry run from Python writes no file unless asked: without ``report`` (or
    ``resume``) its report goes to a temporary folder, removed once the frame is read.
    Yields whether it did so."""
    if not settings.dry_run or settings.report or settings.resume:
        yield False
        return
    with tempfile.TemporaryDirectory(prefix="batchtag-dry-run-") as folder:
        settings.report = os.path.join(folder, "dry-run.csv")
        try:
            yield True
        except Interrupted as error:
            error.report_path = None  # nothing to resume: run it again
            raise


def apply(manifest: Any, /, **options: Any) -> pd.DataFrame:
    try:
        settings = make_options(options, APPLY_NAMES, "apply")
        loaded = loaded_plan(manifest, settings)
        with _dry_run_report(settings) as temporary:
            frame = run_blocking(
                lambda engines: _run(manifest, settings, engines, loaded), "batchtag-apply"
            )
        if temporary:
            frame.attrs["summary"]["report"] = None  # removed with its folder
        return frame
    except Interrupted as error:
        again = resume_options(error, options)
        resume = Resume(apply, "batchtag.apply", manifest, again)
        raise finish(error, resume, "apply").with_traceback(None) from None
    except BatchtagError as error:
        # Short for the caller: the message says it all, internal frames would not help.
        raise error.with_traceback(None) from None


def loaded_plan(manifest: Any, settings: ApplyOptions) -> Any:
    """The manifest's plan, read in the calling thread (before the run's helper thread
    starts), so a note about it (values that are not text) warns at the caller's line;
    None when finding its snapshots' scopes needs the network (``all_regions``), which
    the run does."""
    settings.check()
    if locates(settings):
        return None
    return load(manifest, settings)


def resume_options(error: Interrupted, options: dict[str, Any]) -> dict[str, Any]:
    """The options of the call that finishes an interrupted apply: ``resume=`` its report
    (when it has one), the other options as they were given."""
    if error.report_path is None:
        return dict(options)
    again = {k: v for k, v in options.items() if k not in ("report", "overwrite", "resume")}
    return {"resume": str(error.report_path), **again}


def _interrupted(error: Interrupted, func: Any, name: str, first: Any, options: dict) -> Any:
    """`error` with the call that runs `func` again (a read: nothing to resume from)."""
    return finish(error, Resume(func, f"batchtag.{name}", first, options), name)


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
        loaded = loaded_plan(manifest, settings)
        return run_blocking(
            lambda _: run_plan(manifest, settings, plan=loaded, **own), "batchtag-plan"
        )
    except Interrupted as error:
        raise _interrupted(error, plan, "plan", manifest, options).with_traceback(None) from None
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
    except Interrupted as error:
        raise _interrupted(error, undo, "undo", report, options).with_traceback(None) from None
    except BatchtagError as error:
        raise error.with_traceback(None) from None
    return _undo_frame(outcome)


def _undo_frame(outcome: Any) -> pd.DataFrame:
    frame = outcome.undo.changes
    frame.attrs["skipped"] = outcome.undo.skipped
    frame.attrs["summary"] = outcome.as_dict()
    return frame


def validate(manifest: Any, /, **options: Any) -> Validation:
    try:
        settings = make_options(options, MANIFEST_OPTIONS, "validate")
        try:
            plan = load(manifest, settings)
        except ManifestError as error:
            return Validation.failed(error.with_traceback(None))
        return Validation.passed(describe_manifest(plan))
    except BatchtagError as error:
        raise error.with_traceback(None) from None


# -- generated signatures and docstrings ----------------------------------------------------

_MANIFEST_DOC = """manifest : str, Path or DataFrame
    The manifest: a .csv / .parquet / .jsonl path, or a DataFrame in the long, wide or json
    form (see ``help(batchtag)``); or a change file or frame (`batchtag.plan`,
    `batchtag.undo`), applied exactly where each key still holds its old value (the rest
    is ``conflict``, unless ``force``)."""

RAISES = {
    "ManifestError": "The manifest is invalid (``.problems``: a DataFrame of every problem,\n"
    "    as `validate` gives it); nothing was sent.",
    "UsageError": "Bad options or configuration; nothing was sent.",
    "AbortRun": "The run stopped on purpose (credentials, max_changes, breaker); when a\n"
    "    report was written, ``error.report`` is its frame (as `apply` would return it).",
    "Interrupted": "Ctrl-C (a notebook's stop button) stopped the run: ``error.report`` is the\n"
    "    frame so far, ``error.resume()`` finishes the run.",
}
_REPORT_HELP = (
    "Report path (.csv/.parquet/.jsonl); default ``reports/batchtag-YYYYmmdd-HHMMSS.csv``\n"
    "    under the current directory (``attrs['summary']['report']`` names it). A dry run\n"
    "    from Python writes no report unless this is given."
)
_UNDO_OUTPUT_HELP = (
    "Also write the change file back to this file (.csv, .parquet or .jsonl); an existing\n"
    "    file is never replaced: ``overwrite=True`` writes a new one beside it."
)


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
    raises: tuple[str, ...] = ("ManifestError", "UsageError", "AbortRun", "Interrupted"),
    helps: dict[str, str] | None = None,
) -> None:
    func.__signature__ = _signature(names, returns.split(None, 1)[0], first[0])
    raised = "".join(f"{name}\n    {RAISES[name]}\n" for name in raises)
    func.__doc__ = (
        f"{summary}\n\nParameters\n----------\n{first[1]}\n"
        f"{numpydoc_parameters(names, helps)}\n\n"
        f"Returns\n-------\n{returns}\n\nRaises\n------\n{raised}\n"
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
    helps={"report": _REPORT_HELP},
)
_document(
    apply_async,
    "Apply a manifest from async code (``await batchtag.apply_async(...)``).",
    APPLY_NAMES,
    _RETURNS,
    _APPLY_EXAMPLE.replace("batchtag.apply(", "await batchtag.apply_async("),
    raises=("ManifestError", "UsageError", "AbortRun"),
    helps={"report": _REPORT_HELP},
)
_document(
    validate,
    "Validate a manifest without any network: every problem at once, or what it holds.",
    MANIFEST_OPTIONS,
    "Validation\n    ``.ok``, ``.summary`` (form, rows, snapshots, operations, scopes, ...),\n"
    "    ``.problems`` (a DataFrame: row_label, position, line, column, message) and\n"
    "    ``.raise_for_problems()``.",
    """>>> checked = batchtag.validate("snapshots.csv", project_id=1, region_id=1)  # doctest: +SKIP
>>> checked.ok, checked.summary["snapshots"]  # doctest: +SKIP
(True, 120)""",
    raises=("UsageError",),
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
    raises=("ManifestError", "UsageError", "AbortRun"),
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
    raises=("UsageError", "AbortRun", "Interrupted"),
    helps={"output": _UNDO_OUTPUT_HELP},
)
_document(
    undo_async,
    "`undo` from async code (``await batchtag.undo_async(...)``).",
    UNDO_NAMES,
    _UNDO_RETURNS,
    _UNDO_EXAMPLE.replace("batchtag.undo(", "await batchtag.undo_async("),
    ("report", _UNDO_DOC),
    raises=("UsageError", "AbortRun"),
    helps={"output": _UNDO_OUTPUT_HELP},
)
