"""One `apply` run end to end: plan, guards, report, engine, summary. Shared by CLI and API."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchtag.client import Client
from batchtag.config import Settings, resolve_settings
from batchtag.engine import Engine, EngineOptions
from batchtag.errors import AbortRun, UsageError
from batchtag.limiter import RateLimiter
from batchtag.logs import register_secret
from batchtag.manifest import read_plan
from batchtag.plan import Plan, PlanEntry
from batchtag.progress import Progress
from batchtag.report import (
    ReportWriter,
    check_resumable,
    default_report_path,
    done_keys,
    report_exists,
)
from batchtag.result import Result
from batchtag.retry import RetrySettings
from batchtag.summary import Summary, write_summary_json

log = logging.getLogger("batchtag")


@dataclass
class ApplyOptions:
    report: str | Path | None = None
    resume: str | Path | None = None
    dry_run: bool = False
    concurrency: int = 16
    rate: float = 20.0
    timeout: float = 30.0
    connect_timeout: float = 10.0
    lock_budget: float = 300.0
    transient_retries: int = 3
    check_current: bool = False
    project_id: int | None = None
    region_id: int | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    insecure_http: bool = False
    form: str | None = None
    delete_marker: str = "<delete>"
    max_changes: str | int | None = None  # "N" or "N%"
    summary_json: str | Path | None = None
    overwrite: bool = False  # replace an existing report instead of refusing
    progress: bool | None = False  # None: auto (on a terminal)

    def check(self) -> None:
        if self.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        if not self.rate > 0:
            raise UsageError("--rate must be greater than 0")
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise UsageError("--timeout must be greater than 0")
        if self.resume and self.report and Path(self.report) != Path(self.resume):
            raise UsageError("--resume continues its own report; do not also pass --report")


@dataclass
class RunOutcome:
    summary: dict[str, Any]
    report_path: Path
    exit_code: int


def parse_max_changes(value: str | int | None) -> tuple[float, bool] | None:
    """'500' -> (500, False); '10%' -> (10, True)."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    percent = text.endswith("%")
    try:
        number = float(text.rstrip("%"))
    except ValueError:
        raise UsageError(f"--max-changes must be N or N%, got {value!r}") from None
    if number < 0 or (percent and number > 100):
        raise UsageError(f"--max-changes out of range: {value!r}")
    return number, percent


def needs_network(plan: Plan, options: ApplyOptions) -> bool:
    if not options.dry_run:
        return True
    return options.check_current or any(e.needs_current for e in plan.entries)


def load(source: Any, options: ApplyOptions) -> Plan:
    return read_plan(
        source,
        form=options.form,
        delete_marker=options.delete_marker,
        project_id=options.project_id,
        region_id=options.region_id,
    )


async def scope_total(client: Client, plan: Plan) -> int:
    """How many snapshots the plan's scopes hold (one tiny list call per scope)."""
    total = 0
    for project_id, region_id in plan.scopes:
        page = await client.list_page(project_id, region_id, limit=1)
        total += int(page.get("count", 0))
    return total


async def check_max_changes(
    client: Client | None, plan: Plan, to_send: int, options: ApplyOptions
) -> None:
    limit = parse_max_changes(options.max_changes)
    if limit is None:
        return
    number, percent = limit
    if percent:
        if client is None:
            raise UsageError("--max-changes N% needs the API to count snapshots (not in dry-run)")
        allowed = math.floor(await scope_total(client, plan) * number / 100)
    else:
        allowed = int(number)
    if to_send > allowed:
        raise AbortRun(
            f"refusing to start: the plan would change {to_send} snapshots, "
            f"more than --max-changes {options.max_changes} ({allowed})"
        )


def check_report_target(path: Path, plan: Plan, options: ApplyOptions) -> None:
    """Before anything is sent: a resume must match its report; a new run must not
    silently replace an earlier run's results."""
    if options.resume:
        check_resumable(path, plan.fingerprint())
    elif report_exists(path) and not options.overwrite:
        raise UsageError(
            f"report {path} already exists; continue it with --resume {path}, "
            "or pass --overwrite to replace it"
        )


def pending_entries(plan: Plan, done: set) -> Iterator[PlanEntry]:
    return (e for e in plan.entries if e.key not in done)


async def run_apply(
    source: Any,
    options: ApplyOptions,
    *,
    plan: Plan | None = None,
    confirm: Callable[[int], bool] | None = None,
    on_engine: Callable[[Engine], None] | None = None,
) -> RunOutcome:
    """Validate, guard, send, report. Raises ManifestError/UsageError/AbortRun before sending."""
    options.check()
    plan = plan if plan is not None else load(source, options)
    report_path = Path(options.resume or options.report or default_report_path())
    check_report_target(report_path, plan, options)
    done = done_keys(report_path) if options.resume else set()
    to_send = sum(1 for e in plan.entries if e.key not in done)
    settings: Settings | None = None
    if needs_network(plan, options):
        settings = resolve_settings(
            options.base_url, options.api_key, insecure_http=options.insecure_http
        )
        register_secret(settings.api_key)
    client = (
        Client(
            settings,
            connections=options.concurrency,
            timeout=options.timeout,
            connect_timeout=options.connect_timeout,
        )
        if settings
        else None
    )
    summary = Summary(report_path)
    summary.already_done = len(done)
    async with _maybe(client):
        if not options.dry_run:
            await check_max_changes(client, plan, to_send, options)
            if confirm is not None and to_send and not confirm(to_send):
                raise AbortRun("cancelled at the confirmation prompt")
        writer = ReportWriter(
            report_path,
            passthrough=plan.passthrough,
            fingerprint=plan.fingerprint(),
            resume=bool(options.resume),
        )
        progress = Progress(to_send, enabled=options.progress)
        engine = _engine(client, options, writer, summary, progress)
        if on_engine is not None:
            on_engine(engine)
        log.info(
            "%d snapshots to send (%d already done), rate %s/s, concurrency %d, report %s",
            to_send,
            len(done),
            options.rate,
            options.concurrency,
            report_path,
        )
        summary.start()
        try:
            await engine.run(pending_entries(plan, done))
        finally:
            progress.close()
            writer.close()
            summary.finish()
            _record_engine(summary, engine)
            if options.summary_json:
                write_summary_json(summary.as_dict(), options.summary_json)
    data = summary.as_dict()
    return RunOutcome(data, report_path, data["exit_code"])


def _engine(
    client: Client | None,
    options: ApplyOptions,
    writer: ReportWriter,
    summary: Summary,
    progress: Progress,
) -> Engine:
    def on_result(result: Result) -> None:
        writer.write(result)
        summary.add(result)
        progress.update(result)

    engine_options = EngineOptions(
        concurrency=options.concurrency,
        rate=options.rate,
        timeout=options.timeout,
        connect_timeout=options.connect_timeout,
        retry=RetrySettings(
            lock_budget=options.lock_budget, transient_retries=options.transient_retries
        ),
        dry_run=options.dry_run,
        check_current=options.check_current,
    )
    limiter = RateLimiter(options.rate)
    return Engine(client, engine_options, on_result, on_retry=summary.count_retry, limiter=limiter)


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
    """SIGINT/SIGTERM stop dispatching (CLI only: the main thread's loop)."""
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, engine.interrupt)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
