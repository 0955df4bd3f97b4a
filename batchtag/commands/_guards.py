"""Checks an apply run makes before it sends anything: the report and undo file it
would write, output files it cannot write, and the max-changes guard."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from batchtag.errors import AbortRun, ApiError, UsageError, option
from batchtag.model import Plan, PlanEntry
from batchtag.read import NOT_READ, Reader, State
from batchtag.record import check_resumable, fresh_path, report_exists
from batchtag.tabular import is_stdout

if TYPE_CHECKING:
    from batchtag.commands._options import ApplyOptions


SCOPES_SHOWN = 6  # scopes a confirmation prompt names before "... N scopes in all"


def describe_target(base_url: str, scopes: Iterable[tuple[int, int]]) -> str:
    """Where a run writes, for a confirmation prompt: the API host and the scopes.

    Examples
    --------
    >>> describe_target("https://api.gcore.com", [(1, 1), (1, 7), (2, 1)])
    'api.gcore.com (project 1 regions 1, 7; project 2 region 1)'
    """
    from urllib.parse import urlsplit

    chosen = list(dict.fromkeys(scopes))
    by_project: dict[int, list[int]] = {}
    for project_id, region_id in chosen[:SCOPES_SHOWN]:
        by_project.setdefault(project_id, []).append(region_id)
    parts = [
        f"project {p} region{'s' if len(rs) > 1 else ''} {', '.join(map(str, rs))}"
        for p, rs in by_project.items()
    ]
    if len(chosen) > SCOPES_SHOWN:
        parts.append(f"... {len(chosen)} scopes in all")
    host = urlsplit(base_url).netloc or base_url
    return f"{host} ({'; '.join(parts)})" if parts else host


def parse_max_changes(value: str | int | None) -> tuple[float, bool] | None:
    """'500' -> (500, False); '10%' -> (10, True)."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    percent = text.endswith("%")
    try:
        number = float(text.rstrip("%"))
    except ValueError:
        raise UsageError(f"{option('max_changes')} must be N or N%, got {value!r}") from None
    if number < 0 or (percent and number > 100):
        raise UsageError(f"{option('max_changes')} out of range: {value!r}")
    return number, percent


async def scope_total(reader: Reader, plan: Plan) -> int:
    """How many snapshots the plan's scopes hold (one tiny list call per scope), read under
    the run's limiter, retries and breaker."""
    total = 0
    for project_id, region_id in plan.scopes:
        try:
            total += await reader.count(project_id, region_id)
        except ApiError as error:
            what = option("max_changes")
            raise AbortRun(f"cannot count the snapshots for {what}: {error}") from None
    return total


async def check_max_changes(
    reader: Reader | None, plan: Plan, to_send: int, options: ApplyOptions
) -> None:
    limit = parse_max_changes(options.max_changes)
    if limit is None:
        return
    number, percent = limit
    if percent:
        if reader is None:
            raise UsageError(
                f"{option('max_changes')} N% needs the API to count snapshots (not in dry-run)"
            )
        allowed = math.floor(await scope_total(reader, plan) * number / 100)
    else:
        allowed = int(number)
    if to_send > allowed:
        raise AbortRun(
            f"refusing to start: the plan would change {to_send} snapshots, "
            f"more than {option('max_changes', options.max_changes)} ({allowed})"
        )


def writes_needed(state: State | None, entries: Iterable[PlanEntry], force: bool = False) -> int:
    """How many snapshots a run of `entries` would write, given what was read: one not read
    is written blind (counts), one not found, with nothing to change or a conflict (unless
    `force`) does not.

    Parameters
    ----------
    state : State or None
        What was read (None: nothing).
    entries : iterable of PlanEntry
    force : bool
        Conflicts are written too.

    Returns
    -------
    int
        Snapshots that get a PATCH (what ``max_changes`` limits).
    """
    from batchtag.diff import diff_entry  # pandas: only when a guard asks

    count = 0
    for entry in entries:
        snapshot = NOT_READ if state is None else state.peek(entry)
        if snapshot is NOT_READ:
            count += 1
        elif snapshot is not None:
            diff = diff_entry(entry, snapshot)
            count += bool(diff.body) and (force or not diff.conflict)
    return count


def check_report_target(path: Path, plan: Plan, options: ApplyOptions) -> dict | None:
    """Before anything is sent: a resume must match its report (its metadata is returned);
    a new run must not silently replace an earlier run's results."""
    if options.resume:
        return check_resumable(path, plan.fingerprint())
    if report_exists(path) and not options.overwrite:
        raise UsageError(
            f"report {path} already exists; continue it with {option('resume', str(path))}, "
            f"or pass {option('overwrite', True)} to replace it"
        )
    return None


def check_undo_target(options: ApplyOptions) -> tuple[Path | None, Path | None]:
    """Where the run's undo file goes, and the earlier one it keeps (or None).

    An undo file is never emptied or replaced: it may be the only way back from an earlier
    run. A resume appends to its own; a new run refuses an existing one, or with
    ``overwrite`` keeps it and writes a new file beside it (``run.undo-2.jsonl``)."""
    if not options.undo_file:
        return None, None
    path = Path(options.undo_file)
    if options.resume:
        return path, None
    fresh = fresh_path(path)
    if fresh == path:
        return path, None
    if not options.overwrite:
        raise UsageError(
            f"undo file {path} already exists: it may be the only way to undo an earlier run; "
            f"choose another {option('undo_file')}, or pass {option('overwrite', True)} to keep "
            "it and write this run's beside it"
        )
    return fresh, path


def check_writable(path: str | Path, name: str) -> None:
    """Before anything is sent: refuse an output file that cannot be written (exit 2);
    ``-`` (stdout) always can."""
    if is_stdout(path):
        return
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        existed = target.exists()
        with open(target, "a"):
            pass
        if not existed:
            target.unlink()
    except OSError as error:
        raise UsageError(
            f"cannot write {option(name, str(path))}: {error.strerror or error}"
        ) from None
