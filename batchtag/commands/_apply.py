"""One `apply` run end to end: plan, guards, report, engine, summary. Shared by CLI and API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from batchtag.commands._apply_run import ApplyRun, before_state, read_mode
from batchtag.commands._connect import open_client
from batchtag.commands._guards import (  # noqa: F401  (check_max_changes, parse_max_changes: API)
    check_max_changes,
    check_report_target,
    check_undo_target,
    check_writable,
    parse_max_changes,
)
from batchtag.commands._locate import locate, locates
from batchtag.commands._options import ApplyOptions
from batchtag.defaults import MANIFEST_OPTIONS
from batchtag.errors import UsageError, option
from batchtag.gcore import Client
from batchtag.manifest import read_plan
from batchtag.memory import release_memory
from batchtag.model import Plan, PlanIndex, needs_current_mask
from batchtag.read import ScopeError, State
from batchtag.record import (
    BLIND_META,
    EXIT_FAILED,
    READ_META,
    ReportLock,
    ReportScan,
    Summary,
    default_report_path,
    scan_report,
    write_summary_json,
)
from batchtag.send import Engine


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


def load(source: Any, options: ApplyOptions) -> Plan:
    """Read and validate the manifest with the options that shape how it is read."""
    return read_plan(source, **{name: getattr(options, name) for name in MANIFEST_OPTIONS})


async def load_located(source: Any, options: ApplyOptions) -> tuple[Plan, list[ScopeError]]:
    """`load`, after finding each snapshot's scope when the options ask for it
    (``all_regions`` / ``all_projects``, `batchtag.commands._locate`): the plan and the
    scopes that could not be read."""
    if not locates(options):
        return load(source, options), []
    manifest, failed = await locate(source, options)
    return load(manifest, options), failed


def read_resumed(plan: Plan, report_path: Path, options: ApplyOptions) -> ReportScan | None:
    """On a resume, the report's key columns read once (`scan_report`): its done mask over
    the plan's positions, and the statuses the report writer starts from."""
    if not options.resume:
        return None
    return scan_report(report_path, PlanIndex.of(plan.entries))


async def run_apply(
    source: Any,
    options: ApplyOptions,
    *,
    plan: Plan | None = None,
    state: State | None = None,
    confirm: Callable[[int, str], bool] | None = None,
    on_engine: Callable[[Engine], None] | None = None,
) -> RunOutcome:
    """Validate, guard, send, report. Raises ManifestError/UsageError/AbortRun before sending.

    `state`, when given, is the plan's current state known already (enforce's inventory,
    with ``state.requests`` the requests that read it): nothing is read again.
    `confirm(count, target)` is asked before a run that writes (count: the snapshots that will
    change; target: the API host and the scopes, `describe_target`); False cancels it.

    A summary file that cannot be written at the end does not raise: the outcome's
    ``summary_json_error`` says why (the caller shows the summary first, then the error).
    ``{started}`` in the report, undo file and summary names is the run's start.
    """
    options.check()
    options = options.stamped()
    failed: list[ScopeError] = []
    if plan is None:
        plan, failed = await load_located(source, options)
    report_path = Path(options.resume or options.report or default_report_path())
    # Held for the whole run; exit 2 (nothing sent) when in use or cannot be written.
    with ReportLock(report_path):
        outcome = await _run_locked(source, options, plan, report_path, confirm, on_engine, state)
    if failed:  # scopes listed to find the snapshots in, that could not be read
        outcome.summary["failed_scopes"] = [f.as_dict() for f in failed]
        outcome.exit_code = outcome.summary["exit_code"] = outcome.exit_code or EXIT_FAILED
        if options.summary_json:
            outcome.summary_json_error = save_summary_json(outcome.summary, options.summary_json)
    return outcome


async def _run_locked(
    source, options, plan, report_path, confirm, on_engine, known: State | None = None
) -> RunOutcome:
    meta = check_report_target(report_path, plan, options)
    options = keep_mode(options, meta, report_path)
    for name in ("summary_json", "undo_file"):
        if getattr(options, name):
            check_writable(getattr(options, name), name)
    undo_file, kept = check_undo_target(options)
    resumed = read_resumed(plan, report_path, options)
    pending = None if resumed is None else ~resumed.done
    release_memory()  # what the manifest's and the report's reading freed
    to_send = len(plan.entries) if pending is None else int(pending.sum())
    client = make_client(plan, options)
    summary = Summary(report_path)
    summary.already_done = len(plan.entries) - to_send
    summary.before_state = before_state(options)
    summary.notes = list(plan.notes)
    if kept is not None:
        summary.notes.append(f"undo file {kept} exists and is kept: this run's goes to {undo_file}")
    summary.undo_file = None if undo_file is None else str(undo_file)
    run = ApplyRun(
        client,
        plan,
        options,
        summary,
        report_path,
        undo_file=undo_file,
        state=known,
        resumed=resumed,
    )
    del resumed  # the run hands it to its report writer, which keeps what it needs
    # The undo file is opened first: a bad name is exit 2 before any request (the report
    # itself is opened only once the guards passed, so a refused run leaves none behind).
    with run:
        async with _maybe(client):
            await run.go(pending, to_send, confirm, on_engine)
    data = summary.as_dict()
    outcome = RunOutcome(data, report_path, data["exit_code"])
    if options.summary_json:
        outcome.summary_json_error = save_summary_json(data, options.summary_json)
    return outcome


def keep_mode(options: ApplyOptions, meta: dict | None, report_path: Path) -> ApplyOptions:
    """A resume reads (or writes blind) as the run it resumes did (its report's metadata),
    so the report stays one kind of run: a different explicit choice is refused."""
    stored = (meta or {}).get("before_state")
    if stored not in (READ_META, BLIND_META) or options.dry_run:
        return options
    reads = stored == READ_META
    if options.check_current is not None and bool(options.check_current) != reads:
        how = "read every snapshot first" if reads else "wrote blind"
        raise UsageError(
            f"{report_path} is a run that {how}; its resume does the same: drop "
            f"{option('check_current', bool(options.check_current))}, or start a new report"
        )
    return replace(options, check_current=reads)


def make_client(plan: Plan, options: ApplyOptions) -> Client | None:
    """The HTTP client when the run needs the network (None for a dry run without reads)."""
    if not needs_network(plan, options):
        return None
    return open_client(options)


def save_summary_json(data: dict[str, Any], path: str | Path) -> str | None:
    """Write the summary file; return a one-line error instead of raising."""
    try:
        write_summary_json(data, path)
    except OSError as error:
        return f"summary not written to {path}: {error.strerror or error}"
    return None


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
