"""One apply run's reading and sending: `ApplyRun` reads the state while it sends
(batchtag.read._feed), guards, builds the engine and records every result."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from batchtag.commands._guards import check_max_changes, describe_target, writes_needed
from batchtag.commands._options import ApplyOptions
from batchtag.errors import AbortRun, ApiError, UsageError, option
from batchtag.gcore import LIST_PAGE, Breaker, Client, RateLimiter, RetrySettings
from batchtag.memory import release_memory
from batchtag.model import Plan, PlanEntry, PlanIndex, iter_masked
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
    undo_write_error,
)
from batchtag.send import Engine, EngineOptions

log = logging.getLogger("batchtag")

# Pages read at once while the engine has nothing to send, at most: each holds 1,000
# snapshots as JSON while it is picked over, and the reader keeps 2x this many ahead
# (memory), so more gains little.
READ_CONCURRENCY = 16
# While the engine sends, pages read at once: the sends have a page's entries ahead
# already, and pages read in a burst stall them (the server serves the pages meanwhile).
STREAM_READ_CONCURRENCY = 2
# Entries ready ahead of the engine at which the read pauses until they fall below again:
# two pages' worth. Reading only what the sends need soon spreads the pages over the run,
# so each one stalls the sends in flight alone (the server builds a page of 1,000 in one
# go, the client parses it in one go) instead of a dozen back to back.
READ_AHEAD = 2 * LIST_PAGE


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


class ApplyRun:
    """One apply run's state read, guards and sending, and the two files it owns: the
    state (its spill file) and the undo file.

    Every run goes one way (`go`): the engine takes its entries from an `EntryFeed` as the
    read announces them ready. A state known before the run (`state`, enforce's inventory)
    fills the feed at once; so does a run with nothing to read (a dry run offline); with
    ``max_changes`` the whole state is read, and the guard passed, before the engine starts.

    A context manager: entering opens the undo file (a bad name is exit 2 before any
    request); leaving closes it (a failure that nothing else raised is a `ReportWriteError`,
    exit 3) and drops the state. The recorder only writes to the undo file.

    Parameters
    ----------
    client : Client or None
        The open client (None: a dry run that reads nothing).
    plan : Plan
    options : ApplyOptions
    summary : Summary
    report_path : Path
    undo_file : Path, optional
        Where ``--undo-file`` goes.
    state : State, optional
        The plan's state known already (with ``read`` and ``requests`` set): nothing is
        read, and the run closes it.
    resumed : ReportScan, optional
        The resumed report's keys, handed to the report writer.
    """

    def __init__(
        self,
        client: Client | None,
        plan: Plan,
        options: ApplyOptions,
        summary: Summary,
        report_path: Path,
        *,
        undo_file: Path | None = None,
        state: State | None = None,
        resumed: ReportScan | None = None,
    ):
        self.client = client
        self.plan = plan
        self.options = options
        self.summary = summary
        self.report_path = report_path
        self.state = state  # known, or set as the read starts
        self.known = state is not None
        self.resumed = resumed
        self.undo: ChangeWriter | None = None  # opened on entering
        self.aborted: str | None = None  # why reading the state failed (the run then aborts)
        self.engine: Engine | None = None  # set by `send`
        self.breaker = Breaker()
        self.limiter = RateLimiter(options.rate)  # the reads' and the sends'
        self._undo_file = undo_file
        self._feed: EntryFeed | None = None
        self._state_reader: Reader | None = None
        # The engine starts as soon as entries are ready (False while ``max_changes`` holds
        # it back until the whole state is read): the read's pace follows from then on.
        self._sends_when_ready = False

    def __enter__(self) -> ApplyRun:
        try:
            if self._undo_file is not None:
                self.undo = ChangeWriter(self._undo_file)
        except BaseException:
            self._close_state()
            raise
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, tb: Any) -> None:
        try:
            self._close_state()
        finally:
            if self.undo is not None:
                undo, self.undo = self.undo, None
                try:
                    undo.close()
                except OSError as failure:
                    if error is None:  # else the run's own failure is what is raised
                        raise undo_write_error(undo.path, failure) from None

    def _close_state(self) -> None:
        if self.state is not None:
            self.state.close()  # its spill file

    async def go(
        self,
        pending: np.ndarray | None,
        to_send: int,
        confirm: Callable[[int, str], bool] | None,
        on_engine: Callable[[Engine], None] | None,
    ) -> None:
        """Read the state (unless known), guard, send each entry as soon as its state is
        known (batchtag.read._feed).

        The guards come before anything is written: the prompt (it counts the plan's
        snapshots) before the read, or, with ``max_changes`` (it counts what would really
        change), after the whole read. A read that fails before the engine starts ends the
        run as when nothing was sent (a scope that does not exist: exit 2)."""
        options = self.options
        gated = not options.dry_run and options.max_changes not in (None, "")
        if not options.dry_run and not gated:
            await self.guard(pending, to_send, confirm)
        self._sends_when_ready = not gated
        # (A resume reads its done pages last, and they announce nothing: paused, they
        # would all be left for the end, the engine idle meanwhile. It reads on.)
        ahead = READ_AHEAD if pending is None else 0
        feed = self._feed = EntryFeed(
            self.plan.entries, pending, self._pace, ahead=ahead, on_ahead=self._pace
        )
        reading: asyncio.Task | None = None
        if self.known:
            self.summary.state_read(self.state.read, self.state.requests)
        if self.known or self.client is None:
            feed.close()  # every entry is ready as it is
        else:
            # The index before the digest's thread starts: their temporaries would add up.
            self.state = State(PlanIndex.of(self.plan.entries))  # read-only index from here
            reading = asyncio.create_task(self.read(pending, feed))
        # The report's plan digest (a pass over every entry) while the first page is on its way.
        digest = asyncio.get_running_loop().run_in_executor(None, self.plan.fingerprint)

        def started(engine: Engine) -> None:
            feed.attach(engine)
            self._pace()
            if on_engine is not None:
                on_engine(engine)

        try:
            if gated:
                if reading is not None:
                    await asyncio.wait([reading])
                    reading.result()  # a read's UsageError: nothing was sent
                    release_memory()  # the listing pages: the run's memory stays near this
                await self.guard(pending, to_send, confirm)
                self._sends_when_ready = True
            await feed.wait_ready()
            await digest
            release_memory()  # the digest's temporaries (its thread's own malloc arena)
            if reading is not None and reading.done():
                reading.result()  # raises a read's UsageError: nothing was sent
            await self.send(feed, to_send, started)
        finally:
            if reading is not None:
                reading.cancel()  # the engine stopped first (or nothing was started)
                await asyncio.wait([reading])
        if reading is not None and not reading.cancelled() and reading.exception() is not None:
            raise reading.exception()

    async def guard(
        self,
        pending: np.ndarray | None,
        to_send: int,
        confirm: Callable[[int, str], bool] | None,
    ) -> None:
        """``max_changes`` (counting what would really change, once the state is known) and
        the confirmation prompt."""
        options = self.options
        changes = to_send
        if options.max_changes not in (None, ""):
            entries = iter_masked(self.plan.entries, pending)
            changes = writes_needed(self.state, entries, options.force)
        reader = None if self.client is None else self.reader(options.concurrency)
        await check_max_changes(reader, self.plan, changes, options)
        target = describe_target(self.client.settings.base_url, self.plan.scopes)
        if confirm is not None and changes and not confirm(changes, target):
            raise AbortRun("cancelled at the confirmation prompt")

    async def read(self, pending: np.ndarray | None, feed: EntryFeed) -> None:
        """Read the state the run needs into `feed` (and `state`), while the engine sends
        what is known already.

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
        except Exception as error:  # a bug: stop sending (`go` raises it again)
            self._abort(f"unexpected error: {error!r}")
            raise
        finally:
            feed.close()

    def _abort(self, reason: str) -> None:
        self.aborted = reason
        if self.engine is not None:
            self.engine.abort(f"reading the state: {reason}")

    def _pace(self, change: bool | None = None) -> None:
        """The state read's concurrency, as the feed's supply changes (`change` is what it
        heard: unused, the feed is asked).

        At the full read concurrency while the engine has nothing to send (nothing is
        ready yet: the read is all there is to do; a resume's done snapshots; or
        ``max_changes`` holds the engine back until the read ends); paused while
        `READ_AHEAD` entries are ready ahead of the engine (not in a resume); at
        `STREAM_READ_CONCURRENCY` in between, from the first entries ready on (pages read
        in a burst stall the sends: the server's answers to them as much as the client's
        parsing; a burst sent just before the engine starts meets its first requests)."""
        reader, feed = self._state_reader, self._feed
        if reader is None or feed is None:
            return
        if not self._sends_when_ready or feed.hungry:
            limit = READ_CONCURRENCY
        elif feed.ahead:
            limit = 0
        else:
            limit = STREAM_READ_CONCURRENCY
        reader.limit(min(self.options.concurrency, limit))

    async def send(
        self,
        entries: Iterable[PlanEntry],
        to_send: int,
        on_engine: Callable[[Engine], None] | None,
    ) -> None:
        """Run the engine over `entries` with the state read, recording every result;
        always closes the report."""
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

    async def _read_state(self, pending: np.ndarray | None, feed: EntryFeed) -> None:
        """Read what the run must know before sending (see batchtag.read._state), if anything."""
        options = self.options
        reader = self._state_reader = self.reader(min(options.concurrency, READ_CONCURRENCY))
        self._pace()
        state = await read_state(
            reader,
            self.plan.entries,
            read_mode(options),
            pending=pending,
            state=self.state,
            ready=feed.announce,
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
    """The engine's options; the engine only writes: the state is read by the run
    (batchtag.read._state), entries without state are written blind."""
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
