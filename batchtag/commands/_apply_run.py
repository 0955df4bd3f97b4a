"""One apply run's reading and sending: `ApplyRun` reads the state (first, or while it sends:
`ApplyRun.stream`, batchtag.read._feed), builds the engine and records every result."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from batchtag.commands._options import ApplyOptions
from batchtag.errors import AbortRun, ApiError, UsageError, option
from batchtag.gcore import Breaker, Client, RateLimiter, RetrySettings
from batchtag.memory import release_memory
from batchtag.model import Plan, PlanEntry, PlanIndex
from batchtag.read import EntryFeed, Reader, State, read_state
from batchtag.record import (
    BLIND_META,
    READ_META,
    ChangeWriter,
    Progress,
    Recorder,
    ReportScan,
    ReportWriter,
    Summary,
)
from batchtag.send import Engine, EngineOptions

log = logging.getLogger("batchtag")

# Pages read at once before sending, at most: each holds 1,000 snapshots as JSON while it is
# picked over, and the reader keeps 2x this many ahead (memory), so more gains little.
READ_CONCURRENCY = 16
# While it sends (`stream`), pages read at once: the sends have a page's entries ahead
# already, and pages read in a burst stall them (the server serves the pages meanwhile).
STREAM_READ_CONCURRENCY = 2


def read_mode(options: ApplyOptions) -> bool:
    """Which snapshots to read first (`batchtag.read.read_state`): True every one (the
    default of a run that writes: its report keeps each before-state, so it can be
    undone), False only those that need their current tags (``--no-check-current`` writes
    the rest blind; a dry run by default, which stays offline)."""
    if options.check_current is None:
        return not options.dry_run
    return bool(options.check_current)


def before_state(options: ApplyOptions) -> str | None:
    """What the report's metadata says of the run's before-state: read, blind (it cannot be
    undone), or None for a dry run (it writes nothing)."""
    if options.dry_run:
        return None
    return READ_META if read_mode(options) else BLIND_META


@dataclass
class ApplyRun:
    client: Client | None
    plan: Plan
    options: ApplyOptions
    summary: Summary
    report_path: Path

    state: State | None = None  # set by `read` (by `stream` as it starts reading)
    aborted: str | None = None  # why reading the state failed (the run then aborts)
    engine: Engine | None = None  # set by `send`
    breaker: Breaker = field(default_factory=Breaker)
    undo: ChangeWriter | None = None  # --undo-file, opened before the state is read
    resumed: ReportScan | None = None  # the resumed report's keys, read for the done mask

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.options.rate)  # the reads' and the sends'

    async def read(self, pending: np.ndarray | None, feed: EntryFeed | None = None) -> None:
        """Read the state the run needs: before the guards and the report are opened, or,
        into `feed`, while the engine sends what is known already (`stream`).

        A read that fails for good (credentials, the breaker, retries spent; a scope that
        does not exist once something was sent) does not raise: the run aborts and reports
        every snapshot not sent `skipped` (all of them when it aborts before sending)."""
        try:
            await self._read_state(pending, feed)
        except AbortRun as error:
            self._abort(str(error))
        except ApiError as error:  # a read still failing after its retries
            self._abort(
                f"{error} (retry later, or write blind with {option('check_current', False)})"
            )
        except UsageError as error:  # no such project/region: exit 2 when nothing was sent
            if self.engine is None:
                raise
            self._abort(str(error))
        except Exception as error:  # a bug: stop sending (`stream` raises it again)
            self._abort(f"unexpected error: {error!r}")
            raise
        finally:
            if feed is not None:
                feed.close()

    def _abort(self, reason: str) -> None:
        self.aborted = reason
        if self.engine is not None:
            self.engine.abort(f"reading the state: {reason}")

    async def stream(
        self, pending: np.ndarray | None, to_send: int, on_engine: Callable[[Engine], None] | None
    ) -> None:
        """Send while the state is read (batchtag.read._feed): each entry as soon as its state is
        known. The engine (and the report) start once the first entries are ready, so a read
        that fails before that ends the run as when the state is read first."""
        feed = EntryFeed(self.plan.entries, pending)
        self.state = State(PlanIndex.of(self.plan.entries))  # the index first: read-only from here
        # The report's plan digest (a pass over every entry) while the first page is on its way.
        digest = asyncio.get_running_loop().run_in_executor(None, self.plan.fingerprint)
        reading = asyncio.create_task(self.read(pending, feed))

        def started(engine: Engine) -> None:
            feed.attach(engine)
            if on_engine is not None:
                on_engine(engine)

        try:
            await feed.wait_ready()
            await digest
            release_memory()  # the digest's temporaries (its thread's own malloc arena)
            if reading.done():
                reading.result()  # raises a read's UsageError: nothing was sent
            await self.send(feed, to_send, started)
        finally:
            reading.cancel()  # the engine stopped first (or nothing was started)
            await asyncio.wait([reading])
        if not reading.cancelled() and reading.exception() is not None:
            raise reading.exception()

    async def send(
        self,
        entries: Iterable[PlanEntry],
        to_send: int,
        on_engine: Callable[[Engine], None] | None,
    ) -> None:
        """Run the engine over `entries` with the state read, recording every result;
        always closes the report (and the undo file)."""
        options, summary = self.options, self.summary
        recorder = self._recorder(to_send)
        engine = build_engine(
            self.client,
            options,
            recorder,
            limiter=self.limiter,
            breaker=self.breaker,
            state=self.state,
        )
        self.engine = engine
        if self.aborted:
            engine.abort(f"reading the state: {self.aborted}")
        if on_engine is not None:
            on_engine(engine)
        log.info(
            "%d snapshots to send (%d already done), rate %s/s, concurrency %d, report %s",
            *(to_send, summary.already_done, options.rate, options.concurrency, self.report_path),
        )
        summary.start()  # the first entries are ready: the sending rate counts from here
        completed = False
        try:
            await engine.run(entries)
            completed = not (engine.interrupted or engine.abort_reason)
        finally:
            recorder.progress.close(ok=completed)
            summary.finish()
            summary.report_counts = recorder.writer.status_counts()
            record_engine(summary, engine)
            recorder.close()  # raises ReportWriteError if a write failed: nothing more was sent

    def _recorder(self, to_send: int) -> Recorder:
        """The report, the undo file (if asked for), the summary and the progress bar."""
        options = self.options
        writer = ReportWriter(
            self.report_path,
            passthrough=self.plan.passthrough,
            fingerprint=self.plan.fingerprint(),
            resume=bool(options.resume),
            scan=self.resumed,
            before_state=before_state(options),
        )
        self.resumed = None  # the writer's status log holds what it needs of it
        progress = Progress(to_send, enabled=options.progress)
        return Recorder(writer, self.summary, progress, self.undo)

    def reader(self, concurrency: int) -> Reader:
        """A reader on the run's client, limiter, retry budgets and breaker: every read of
        the run (state, counts) goes through the same loop as its writes' limits."""
        return Reader(
            self.client,
            concurrency=concurrency,
            limiter=self.limiter,
            retry=retry_settings(self.options),
            breaker=self.breaker,
            on_retry=self.summary.count_retry,
        )

    async def _read_state(self, pending: np.ndarray | None, feed: EntryFeed | None) -> None:
        """Read what the run must know before sending (see batchtag.read._state), if anything."""
        if self.client is None:
            return
        options = self.options
        most = READ_CONCURRENCY if feed is None else STREAM_READ_CONCURRENCY
        reader = self.reader(min(options.concurrency, most))
        ready = None if feed is None else feed.announce
        state = await read_state(
            reader,
            self.plan.entries,
            read_mode(options),
            pending=pending,
            state=self.state,
            ready=ready,
        )
        self.state = state
        if state.requests:
            log.info("read the state of %d snapshots with %d requests", state.read, state.requests)
        self.summary.state_read(state.read, state.requests)


def build_engine(
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
        engine_options(options),
        recorder.record,
        on_retry=recorder.summary.count_retry,
        **engine_kwargs,
    )

    def stop(reason: str) -> None:
        engine.abort_reason = reason  # set first: the CLI prints it, once (no log line)
        engine.abort(reason)

    recorder.stop = stop
    return engine


def retry_settings(options: ApplyOptions) -> RetrySettings:
    return RetrySettings(lock_budget=options.lock_budget, transient_retries=options.retries)


def engine_options(options: ApplyOptions) -> EngineOptions:
    """The engine's options; it never GETs by itself for `check_current`: the state was
    read before (batchtag.read._state), entries without state are written blind."""
    return EngineOptions(
        concurrency=options.concurrency,
        rate=options.rate,
        retry=retry_settings(options),
        dry_run=options.dry_run,
        force=options.force,
    )


def record_engine(summary: Summary, engine: Engine) -> None:
    summary.aborted = engine.abort_reason
    summary.interrupted = engine.interrupted
    summary.rate_changes = engine.limiter.changes
