"""One `apply` run end to end: plan, guards, report, engine, summary. Shared by CLI and API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from batchtag.apply_options import ApplyOptions
from batchtag.client import Client
from batchtag.config import resolve_settings
from batchtag.defaults import MANIFEST_OPTIONS
from batchtag.engine import Engine, EngineOptions
from batchtag.errors import AbortRun, ApiError, option
from batchtag.guards import (  # noqa: F401  (check_max_changes, parse_max_changes: API)
    check_max_changes,
    check_report_target,
    check_undo_target,
    check_writable,
    parse_max_changes,
)
from batchtag.limiter import RateLimiter
from batchtag.logs import register_secret
from batchtag.manifest import read_plan
from batchtag.memory import release_memory
from batchtag.plan import Plan, PlanEntry
from batchtag.planindex import PlanIndex, iter_masked, needs_current_mask
from batchtag.progress import Progress
from batchtag.reader import Reader
from batchtag.recording import Recorder
from batchtag.report import (
    ReportLock,
    ReportWriter,
    default_report_path,
)
from batchtag.report.store import done_mask
from batchtag.retry import Breaker, RetrySettings
from batchtag.state import State, read_state, writes_needed
from batchtag.summary import Summary, write_summary_json
from batchtag.undo import UndoWriter

log = logging.getLogger("batchtag")
# Pages read at once before sending, at most: each holds 1,000 snapshots as JSON while it is
# picked over, and the reader keeps 2x this many ahead (memory), so more gains little.
READ_CONCURRENCY = 16


@dataclass
class RunOutcome:
    summary: dict[str, Any]
    report_path: Path
    exit_code: int
    summary_json_error: str | None = None  # set when --summary-json could not be written


def needs_network(plan: Plan, options: ApplyOptions) -> bool:
    if not options.dry_run:
        return True
    return read_mode(options) is True or bool(needs_current_mask(plan.entries).any())


def read_mode(options: ApplyOptions) -> bool | None:
    """Which snapshots to read first (`batchtag.state.read_state`): True all, False only
    those that need their current tags, None auto (per scope: when cheaper than blind
    writes). An undo file needs every before-state; a dry run in auto mode stays offline."""
    if options.check_current is None:
        if options.undo_file:
            return True
        return False if options.dry_run else None
    return options.check_current


def load(source: Any, options: ApplyOptions) -> Plan:
    """Read and validate the manifest with the options that shape how it is read."""
    return read_plan(source, **{name: getattr(options, name) for name in MANIFEST_OPTIONS})


def pending_entries(plan: Plan, pending: np.ndarray | None) -> Iterator[PlanEntry]:
    """The entries still to run: those `pending` marks (a mask over positions), or all."""
    return iter_masked(plan.entries, pending)


def pending_mask(plan: Plan, report_path: Path, options: ApplyOptions) -> np.ndarray | None:
    """On a resume, a mask over the plan's positions: not yet `ok`/`noop` in the report."""
    if not options.resume:
        return None
    return ~done_mask(report_path, PlanIndex.of(plan.entries))


async def run_apply(
    source: Any,
    options: ApplyOptions,
    *,
    plan: Plan | None = None,
    confirm: Callable[[int], bool] | None = None,
    on_engine: Callable[[Engine], None] | None = None,
) -> RunOutcome:
    """Validate, guard, send, report. Raises ManifestError/UsageError/AbortRun before sending.

    A summary file that cannot be written at the end does not raise: the outcome's
    ``summary_json_error`` says why (the caller shows the summary first, then the error).
    """
    options.check()
    plan = plan if plan is not None else load(source, options)
    report_path = Path(options.resume or options.report or default_report_path())
    # Held for the whole run; exit 2 (nothing sent) when in use or cannot be written.
    with ReportLock(report_path):
        return await _run_locked(source, options, plan, report_path, confirm, on_engine)


async def _run_locked(source, options, plan, report_path, confirm, on_engine) -> RunOutcome:
    check_report_target(report_path, plan, options)
    for name in ("summary_json", "undo_file"):
        if getattr(options, name):
            check_writable(getattr(options, name), name)
    check_undo_target(options)
    pending = pending_mask(plan, report_path, options)
    release_memory()  # what the manifest's and the report's reading freed
    to_send = len(plan.entries) if pending is None else int(pending.sum())
    client = make_client(plan, options)
    summary = Summary(report_path)
    summary.already_done = len(plan.entries) - to_send
    run = _Run(client, plan, options, summary, report_path)
    # Opened first: a bad undo file name is exit 2 before any request (the report itself is
    # opened only once the guards passed, so a refused run leaves none behind).
    run.undo = (
        UndoWriter(options.undo_file, append=bool(options.resume)) if options.undo_file else None
    )
    try:
        async with _maybe(client):
            await run.read(pending)
            release_memory()  # the listing pages: the run's memory stays near this from here
            if not options.dry_run:
                await _guards(run, pending, to_send, confirm)
            await run.send(pending, to_send, on_engine)
    finally:
        if run.state is not None:
            run.state.close()  # its spill file
        if run.undo is not None:
            with contextlib.suppress(OSError):  # a failure was already raised by the run
                run.undo.close()  # (a no-op once the run's recorder closed it)
    data = summary.as_dict()
    outcome = RunOutcome(data, report_path, data["exit_code"])
    if options.summary_json:
        outcome.summary_json_error = save_summary_json(data, options.summary_json)
    return outcome


async def _guards(run: _Run, pending: np.ndarray | None, to_send: int, confirm) -> None:
    """--max-changes (counting what would really change, once the state is known) and the
    confirmation prompt."""
    changes = to_send
    if run.options.max_changes not in (None, ""):
        changes = writes_needed(run.state, pending_entries(run.plan, pending))
    await check_max_changes(run.client, run.plan, changes, run.options)
    if confirm is not None and changes and not confirm(changes):
        raise AbortRun("cancelled at the confirmation prompt")


def make_client(plan: Plan, options: ApplyOptions) -> Client | None:
    """The HTTP client when the run needs the network (None for a dry run without reads)."""
    if not needs_network(plan, options):
        return None
    return open_client(options)


def open_client(options: ApplyOptions) -> Client:
    """The HTTP client of a run's connection and timeout options (the key registered as a
    secret, so no log line shows it)."""
    settings = resolve_settings(
        options.base_url,
        options.api_key,
        insecure_http=options.insecure_http,
        ca_bundle=options.ca_bundle,
    )
    register_secret(settings.api_key)
    return Client(
        settings,
        connections=options.concurrency,
        timeout=options.timeout,
        connect_timeout=options.connect_timeout,
        request_deadline=options.request_deadline,
    )


def save_summary_json(data: dict[str, Any], path: str | Path) -> str | None:
    """Write the summary file; return a one-line error instead of raising."""
    try:
        write_summary_json(data, path)
    except OSError as error:
        return f"summary not written to {path}: {error.strerror or error}"
    return None


@dataclass
class _Run:
    client: Client | None
    plan: Plan
    options: ApplyOptions
    summary: Summary
    report_path: Path

    state: State | None = None  # set by `read`
    aborted: str | None = None  # why reading the state failed (the run then aborts)
    limiter: RateLimiter | None = None
    breaker: Breaker = field(default_factory=Breaker)
    undo: UndoWriter | None = None  # --undo-file, opened before the state is read

    async def read(self, pending: np.ndarray | None) -> None:
        """Read the state the run needs (before the guards and the report are opened).

        A read that fails for good (credentials, the breaker, retries spent) does not
        raise: `send` then aborts at once and reports every snapshot `skipped`."""
        self.limiter = RateLimiter(self.options.rate)
        try:
            self.state = await self._read_state(pending, self.limiter, self.breaker)
        except AbortRun as error:
            self.aborted = str(error)
        except ApiError as error:  # a read still failing after its retries
            blind = option("check_current", False)
            self.aborted = f"{error} (retry later, or write blind with {blind})"

    async def send(
        self, pending: np.ndarray | None, to_send: int, on_engine: Callable[[Engine], None] | None
    ) -> None:
        """Run the engine over the pending entries with the state `read` found, recording
        every result; always closes the report (and the undo file)."""
        options, summary = self.options, self.summary
        recorder = self._recorder(to_send)
        engine = _engine(
            self.client,
            options,
            recorder,
            limiter=self.limiter or RateLimiter(options.rate),
            breaker=self.breaker,
            state=self.state,
        )
        if self.aborted:
            engine.abort(f"reading the state: {self.aborted}")
        if on_engine is not None:
            on_engine(engine)
        log.info(
            "%d snapshots to send (%d already done), rate %s/s, concurrency %d, report %s",
            *(to_send, summary.already_done, options.rate, options.concurrency, self.report_path),
        )
        summary.start()
        completed = False
        try:
            await engine.run(pending_entries(self.plan, pending))
            completed = not (engine.interrupted or engine.abort_reason)
        finally:
            recorder.progress.close(ok=completed)
            summary.finish()
            summary.report_counts = recorder.writer.status_counts()
            _record_engine(summary, engine)
            recorder.close()  # raises ReportWriteError if a write failed: nothing more was sent

    def _recorder(self, to_send: int) -> Recorder:
        """The report, the undo file (if asked for), the summary and the progress bar."""
        options = self.options
        writer = ReportWriter(
            self.report_path,
            passthrough=self.plan.passthrough,
            fingerprint=self.plan.fingerprint(),
            resume=bool(options.resume),
        )
        progress = Progress(to_send, enabled=options.progress)
        return Recorder(writer, self.summary, progress, self.undo)

    async def _read_state(
        self, pending: np.ndarray | None, limiter: RateLimiter, breaker: Breaker
    ) -> State | None:
        """Read what the run must know before sending (see batchtag.state); None: nothing."""
        if self.client is None:
            return None
        options = self.options
        reader = Reader(
            self.client,
            concurrency=min(options.concurrency, READ_CONCURRENCY),
            limiter=limiter,
            retry=_retry_settings(options),
            breaker=breaker,
            on_retry=self.summary.count_retry,
        )
        state = await read_state(reader, self.plan.entries, read_mode(options), pending=pending)
        if state.requests:
            log.info("read the state of %d snapshots with %d requests", state.read, state.requests)
        self.summary.state_read(state.read, state.requests)
        return state


def _engine(
    client: Client | None,
    options: ApplyOptions,
    recorder: Recorder | ReportWriter,
    summary: Summary | None = None,
    progress: Progress | None = None,
    **engine_kwargs: Any,
) -> Engine:
    """The run's engine, recording through `recorder` (or, as the layers bench calls it,
    a writer, summary and progress bar); `engine_kwargs` go to `Engine` (limiter, state)."""
    if not isinstance(recorder, Recorder):
        recorder = Recorder(recorder, summary, progress)
    engine_kwargs.setdefault("limiter", RateLimiter(options.rate))
    engine = Engine(
        client,
        _engine_options(options),
        recorder.record,
        on_retry=recorder.summary.count_retry,
        **engine_kwargs,
    )

    def stop(reason: str) -> None:
        engine.abort_reason = reason  # set first: the CLI prints it, once (no log line)
        engine.abort(reason)

    recorder.stop = stop
    return engine


def _retry_settings(options: ApplyOptions) -> RetrySettings:
    return RetrySettings(lock_budget=options.lock_budget, transient_retries=options.retries)


def _engine_options(options: ApplyOptions) -> EngineOptions:
    """The engine's options; it never GETs by itself for `check_current`: the state was
    read before (batchtag.state), entries without state are written blind."""
    return EngineOptions(
        concurrency=options.concurrency,
        rate=options.rate,
        timeout=options.timeout,
        connect_timeout=options.connect_timeout,
        request_deadline=options.request_deadline,
        retry=_retry_settings(options),
        dry_run=options.dry_run,
    )


def _record_engine(summary: Summary, engine: Engine) -> None:
    summary.aborted = engine.abort_reason
    summary.interrupted = engine.interrupted
    summary.rate_changes = engine.limiter.changes


class _maybe:
    """`async with` a client that may be None (dry-run without reads)."""

    def __init__(self, client: Client | None):
        self.client = client

    async def __aenter__(self):
        if self.client is not None:
            await self.client.__aenter__()
        return self.client

    async def __aexit__(self, *exc):
        if self.client is not None:
            await self.client.__aexit__(*exc)


def install_signal_handlers(engine: Engine) -> None:
    """SIGINT/SIGTERM/SIGHUP stop dispatching (CLI only: the main thread's loop).

    SIGHUP (the terminal closed, or a scheduler's stop) is treated like SIGTERM."""
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is None:
            continue
        try:
            loop.add_signal_handler(sig, engine.interrupt)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
