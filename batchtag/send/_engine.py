"""The run: a fixed pool of workers, a bounded queue, one shared limiter, per-class retries.

Each snapshot is a Job owned by one worker at a time, so a snapshot never has two requests
in flight. When its state was read (`state`, batchtag.read._state, perhaps while the run goes: see
batchtag.read._feed), a job sends only the keys that change (`diff_entry(...).body`), ends `noop`
with no request when nothing changes, `not_found` with none when the read did not find it,
and `conflict` with none when the entry must leave it alone (a change file's key changed
since, a rename onto a different value: `PlanEntry.conflicts`) unless ``force``; without a
state it writes the manifest's merge patch blind. A job that must wait (task lock,
transient failure) is parked on a timer and its worker moves on; a 429 pauses all workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from batchtag.defaults import default
from batchtag.diff import diff_entry
from batchtag.errors import ApiError
from batchtag.gcore import (
    GONE,
    LOCK,
    RATE_LIMIT,
    REAL_CLOCK,
    TRANSIENT,
    Breaker,
    Client,
    Clock,
    RateLimiter,
    RetryAfterCap,
    RetrySettings,
    classify,
    describe,
    fatal_reason,
)
from batchtag.model import (
    CONFLICT,
    FAILED,
    NOOP,
    NOT_FOUND,
    OK,
    PLANNED,
    SKIPPED,
    PlanEntry,
    Result,
    Snapshot,
    json_text,
)
from batchtag.read import NOT_FOUND_TEXT, NOT_READ, NOT_YET, State
from batchtag.send._jobs import (
    IN_FLIGHT,
    MAYBE_APPLIED,
    BlindBodies,
    Final,
    Job,
    Park,
    build_result,
    iso_utc,
)

log = logging.getLogger("batchtag.send._engine")
NOT_FOUND_ERROR = ApiError(0, "NotFoundError", NOT_FOUND_TEXT)  # no request was sent
CONFLICT_CLASS = "Conflict"  # the error_class of a `conflict` row (no request was sent)
# An entry that needs its snapshot's current tags (`PlanEntry.needs_current`) whose state
# was not read: the run reads them before the engine takes them, so this is a bug.
NOT_READ_ERROR = ApiError(0, "NotRead", "its current tags were not read first")


@dataclass
class EngineOptions:
    concurrency: int = default("concurrency")
    rate: float = default("rate")
    retry: RetrySettings = field(default_factory=RetrySettings)
    snapshot_deadline: float = 900.0  # no snapshot is retried past this many seconds
    dry_run: bool = False
    force: bool = False  # write conflicting snapshots too (a change file's stale keys, renames)
    drain_timeout: float = 5.0  # grace for in-flight requests after Ctrl-C
    breaker: dict[str, Any] = field(default_factory=dict)  # Breaker(**breaker)


class Engine:
    """Runs entries to results. `on_result` is called once per snapshot, as it completes.

    If `on_result` raises (e.g. the report cannot be written), the run stops dispatching at
    once, records nothing more, and `run` re-raises that exception after shutting down.
    """

    def __init__(
        self,
        client: Client | None,
        options: EngineOptions,
        on_result: Callable[[Result], None],
        *,
        on_retry: Callable[[str], None] = lambda kind: None,
        limiter: RateLimiter | None = None,
        breaker: Breaker | None = None,
        state: State | None = None,
        clock: Clock = REAL_CLOCK,
    ):
        self.client = client
        self.options = options
        self.on_result = on_result
        self.on_retry = on_retry
        self.clock = clock
        self.limiter = limiter or RateLimiter(
            options.rate, clock=clock.monotonic, sleep=clock.sleep
        )
        self.policies = options.retry.policies(clock)
        self.breaker = breaker or Breaker(**options.breaker)
        self.state = state  # read before the run (batchtag.read._state); None: nothing read
        self.abort_reason: str | None = None
        self.interrupted = False
        self._callback_error: BaseException | None = None
        self._retry_after_cap = RetryAfterCap()
        self._stopping = asyncio.Event()
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self._window = max(options.concurrency * 4, 64)  # jobs taken from the plan, unfinished
        self._entries: Iterator[PlanEntry] = iter(())
        self._exhausted = False
        self._source_error: BaseException | None = None
        self._bodies = BlindBodies()
        self._parked: dict[asyncio.TimerHandle, Job] = {}
        self._active: dict[asyncio.Task, Job] = {}
        self._pending = 0
        self._idle = asyncio.Event()
        self._dispatch_open = asyncio.Event()
        self._dispatch_open.set()

    # -- control ----------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def interrupt(self) -> None:
        """Ctrl-C / SIGTERM: stop dispatching; in-flight requests get a short grace."""
        if not self.stopping:
            log.warning("interrupted: finishing in-flight requests")
        self.interrupted = True
        self._stopping.set()
        self._dispatch_open.set()

    def abort(self, reason: str) -> None:
        if self.abort_reason is None:
            self.abort_reason = reason
            log.error("aborting run: %s", reason)
        self._stopping.set()
        self._dispatch_open.set()

    # -- main loop --------------------------------------------------------------------

    async def run(self, entries: Iterable[PlanEntry]) -> None:
        workers = [
            asyncio.create_task(self._worker(), name=f"batchtag-worker-{i}")
            for i in range(self.options.concurrency)
        ]
        self._entries = iter(entries)
        try:
            self.refill()
            await self._unless_stopped(self._idle.wait())
            if self._source_error is not None:
                raise self._source_error  # the plan's iterator failed
        except asyncio.CancelledError:
            self.interrupt()  # the caller cancelled us (Ctrl-C in a notebook)
            raise
        finally:
            await self._shutdown(workers)
            self._skip_rest(self._entries)
        if self._callback_error is not None:
            raise self._callback_error

    def refill(self) -> None:
        """Top the queue up from the plan, up to `_window` unfinished jobs: at the start, when
        a job finishes, and when an `EntryFeed` that said `NOT_YET` has entries ready. Nothing
        is awaited: no entry is lost to a cancel half-way, no task wakes just to queue one."""
        while self._pending < self._window and not self._exhausted and not self.stopping:
            try:
                entry = next(self._entries, None)
            except Exception as exc:  # re-raised by run()
                self._source_error = exc
                entry = None
            if entry is NOT_YET:
                break  # the feed refills us
            if entry is None:
                self._exhausted = True
                break
            job = Job(entry)
            job.queued = True
            self._pending += 1
            self._queue.put_nowait(job)
        if self._pending == 0 and (self._exhausted or self.stopping):
            self._idle.set()

    async def _unless_stopped(self, awaitable) -> None:
        """Wait for `awaitable`, or return early when the run is told to stop."""
        task = asyncio.ensure_future(awaitable)
        stop = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if task is not awaitable:
                task.cancel()

    async def _shutdown(self, workers: list[asyncio.Task]) -> None:
        for handle, job in list(self._parked.items()):
            handle.cancel()
            self._finish(job, SKIPPED, error=self._cut_message(job))
        self._parked.clear()
        for _ in workers:
            self._queue.put_nowait(None)
        grace = self.options.drain_timeout if self.stopping else None  # interrupt or abort
        if self._callback_error is not None:
            grace = 0  # nothing more can be recorded: do not wait for it
        done, running = await asyncio.wait(workers, timeout=grace)
        for task in running:
            task.cancel()  # the worker records its job as interrupted
        await asyncio.gather(*running, return_exceptions=True)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()

    def _skip_rest(self, entries: Iterable[PlanEntry]) -> None:
        """Unsent snapshots are reported `skipped`, so the report accounts for every one."""
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not None:
                self._finish(job, SKIPPED, error=self._cut_message(job))
        if self.stopping and self._callback_error is None:
            for entry in entries:
                self._finish(Job(entry), SKIPPED, error=self._stop_message())

    def _stop_message(self) -> str:
        if self.abort_reason:
            return f"not sent: run aborted ({self.abort_reason})"
        return "not sent: run interrupted"

    def _stop_class(self) -> str:
        """The error class of the rows a stop skips: one cause, one class."""
        return "Aborted" if self.abort_reason else "Interrupted"

    def _cut_message(self, job: Job) -> str:
        """Why a job the run stopped is `skipped`: never written, or perhaps applied."""
        if not job.wrote:
            return self._stop_message()
        if self.abort_reason:
            return f"run aborted ({self.abort_reason}): {MAYBE_APPLIED}"
        return IN_FLIGHT

    # -- workers ----------------------------------------------------------------------

    async def _worker(self) -> None:
        task, queue = asyncio.current_task(), self._queue
        while True:
            job = queue.get_nowait() if queue.qsize() else await queue.get()  # no coroutine
            if job is None:
                return
            if self.stopping:
                self._finish(job, SKIPPED, error=self._cut_message(job))
                continue
            self._active[task] = job
            try:
                await self._handle(job)
            except asyncio.CancelledError:  # cut off after the drain grace
                self._finish(job, SKIPPED, error=self._cut_message(job))
                raise
            finally:
                self._active.pop(task, None)
            if not job.attempts:  # no request (dry run, noop, not found): nothing awaited,
                await asyncio.sleep(0)  # so let the loop run (signals, report hand-over)

    async def _handle(self, job: Job) -> None:
        entry = job.entry
        if job.started_at is None:
            job.started = self.clock.monotonic()
            job.started_at = iso_utc(self.clock.time())
        try:
            if job.snapshot is None and self.state is not None:
                known = self.state.take(entry)
                if known is None:
                    self._finish(job, NOT_FOUND, api_error=NOT_FOUND_ERROR)
                    return
                if known is not NOT_READ:
                    job.snapshot = known
            if job.snapshot is None and entry.needs_current:  # (the read gives it: a bug)
                self._finish(job, FAILED, api_error=NOT_READ_ERROR)
                return
            if job.snapshot is not None:  # only the keys that change (and not the same name)
                diff = diff_entry(entry, job.snapshot)
                if diff.conflict and not self.options.force:
                    error = ApiError(0, CONFLICT_CLASS, f"{diff.conflict}; left alone")
                    self._finish(job, CONFLICT, api_error=error)
                    return
                body = diff.body
                text = json_text(body) if body else ""
            else:
                body, text = self._bodies.get(entry)
            if not body:
                self._finish(job, NOOP, after=job.snapshot, body=body)
            elif self.options.dry_run:
                self._finish(job, PLANNED, body=body)
            else:
                after = Snapshot.from_wire(await self._patch(job, text.encode()))
                self._finish(job, OK, after=after, http_status=200, body=body, sent=text)
        except Park as park:
            self._park(job, park.delay)
        except Final as final:
            self._finish(job, final.status, api_error=final.error)
        except Exception as exc:  # a bug or odd response must not sink the run
            log.exception("unexpected error on %s", entry.snapshot_id)
            self._finish(job, FAILED, api_error=ApiError(0, type(exc).__name__, str(exc)))

    async def _patch(self, job: Job, body: bytes) -> dict:
        """One PATCH with the rate-limit loop; other failures raise Park or Final."""
        entry = job.entry
        while True:
            if not self._dispatch_open.is_set():  # a breaker pause (checked first: it is rare)
                await self._dispatch_open.wait()
            if not self.limiter.try_acquire():  # a token free now: no coroutine to run
                await self.limiter.acquire()
            if self.stopping:
                raise Final(SKIPPED, ApiError(0, self._stop_class(), self._cut_message(job)))
            if job.last_error is not None and self._past_deadline(job):
                raise Final(FAILED, job.last_error)  # a later 429 pause outlasted its deadline
            job.attempts += 1
            job.wrote = True
            try:
                result = await self.client.patch_snapshot(*entry.key, body)
            except ApiError as error:
                self._on_failure(job, error)  # returns only for a 429 retry
                continue
            self.limiter.on_success()
            verdict = self.breaker.record(False)
            if verdict is not None:
                self._verdict(verdict)
            return result

    def _on_failure(self, job: Job, error: ApiError) -> None:
        job.last_error = error
        kind = classify(error)
        self._verdict(self.breaker.record(kind == TRANSIENT, describe(error)))
        fatal = fatal_reason(kind, error)
        if fatal is not None:
            self.abort(fatal)
            raise Final(FAILED, error)
        if kind == GONE:
            raise Final(NOT_FOUND, error)
        if kind not in (LOCK, RATE_LIMIT, TRANSIENT):
            raise Final(FAILED, error)
        self._retry_after_cap.note(error.retry_after)
        pause = 0.0
        if kind == RATE_LIMIT:
            pause = self.limiter.on_throttle(error.retry_after)
        deadline = self.options.snapshot_deadline
        delay = job.next_delay(kind, error, self.policies, self.clock, deadline, pause)
        if delay is None:
            raise Final(FAILED, error)
        self.on_retry(kind)
        if kind != RATE_LIMIT:
            raise Park(delay)

    def _past_deadline(self, job: Job) -> bool:
        return job.past_deadline(self.clock.monotonic(), self.options.snapshot_deadline)

    def _verdict(self, verdict: str | None) -> None:
        """Act on the breaker's verdict on the latest attempt ("pause", "abort" or None)."""
        if verdict == "abort":
            self.abort(
                f"circuit breaker: most recent requests kept failing: {self.breaker.cause()}"
            )
        elif verdict == "pause" and self._dispatch_open.is_set():
            cause, cooldown = self.breaker.cause(), self.breaker.cooldown
            log.warning("circuit breaker open (%s): pausing %.1fs", cause, cooldown)
            self._dispatch_open.clear()
            self.clock.call_later(self.breaker.cooldown, self._dispatch_open.set)

    def _park(self, job: Job, delay: float) -> None:
        if self.stopping:
            self._finish(job, SKIPPED, error=self._cut_message(job))
            return
        handle: asyncio.TimerHandle

        def wake() -> None:
            self._parked.pop(handle, None)
            self._queue.put_nowait(job)

        handle = self.clock.call_later(delay, wake)
        self._parked[handle] = job

    # -- results ----------------------------------------------------------------------

    def _finish(self, job: Job, status: str, **outcome: Any) -> None:
        """Record the job's result (unless recording failed earlier) and free its slot."""
        if status == SKIPPED and "api_error" not in outcome:  # skipped by a stop
            outcome["api_error"] = ApiError(0, self._stop_class(), outcome.pop("error"))
        if self._callback_error is None:
            result = build_result(
                job,
                status,
                finished=self.clock.monotonic(),
                finished_at=iso_utc(self.clock.time()),
                **outcome,
            )
            try:
                self.on_result(result)
            except Exception as exc:  # e.g. the report's disk is full: stop at once
                self._callback_error = exc
                self.abort(f"recording a result failed: {exc}")
        if job.queued:
            job.queued = False
            self._pending -= 1
            self.refill()
