"""The Python API: DataFrame in, DataFrame out; works with or without a running loop."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import fields
from typing import Any

import pandas as pd

from batchtag.engine import Engine
from batchtag.errors import UsageError
from batchtag.manifest import describe
from batchtag.report import load_report
from batchtag.runner import ApplyOptions, load, run_apply

OPTION_NAMES = {f.name for f in fields(ApplyOptions)}


def make_options(options: dict[str, Any]) -> ApplyOptions:
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        raise UsageError(f"unknown option(s): {', '.join(unknown)}")
    return ApplyOptions(**options)


async def apply_async(manifest: Any, **options: Any) -> pd.DataFrame:
    """Apply a manifest (path or DataFrame); return the report as a DataFrame.

    `df.attrs["summary"]` holds the run summary (counts, exit_code, report path).
    """
    return await _run(manifest, options, [])


async def _run(manifest: Any, options: dict[str, Any], engines: list[Engine]) -> pd.DataFrame:
    outcome = await run_apply(manifest, make_options(options), on_engine=engines.append)
    frame = load_report(outcome.report_path)
    frame.attrs["summary"] = outcome.summary
    return frame


def apply(manifest: Any, **options: Any) -> pd.DataFrame:
    """Blocking `apply_async`. Inside a running loop (Jupyter) the run gets its own loop
    in a helper thread; Ctrl-C there interrupts the run cleanly and re-raises."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _apply_here(manifest, options)
    return _apply_in_thread(manifest, options)


def _apply_here(manifest: Any, options: dict[str, Any]) -> pd.DataFrame:
    return asyncio.run(_run(manifest, options, []))


def _apply_in_thread(manifest: Any, options: dict[str, Any]) -> pd.DataFrame:
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


def validate(manifest: Any, **options: Any) -> dict[str, Any]:
    """Validate without any network; return the summary or raise ManifestError."""
    return describe.describe_manifest(load(manifest, make_options(options)))


def format_validation(summary: dict[str, Any]) -> str:
    return describe.format_validation(summary)
