"""The run summary: counts, timing, retries, top errors and the exit code."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchtag.model import CONFLICT, FAILED, NOOP, NOT_FOUND, PLANNED, SKIPPED, STATUSES, Result
from batchtag.model import UUID as UUID_PATTERN
from batchtag.tabular import atomic_write, is_stdout

RETRY_KINDS = ("lock", "rate_limit", "transient")
TOP_ERRORS = 5

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ABORTED = 3
EXIT_INTERRUPTED = 130


def exit_code(counts: dict[str, int], *, aborted: object = False, interrupted: bool = False) -> int:
    """The process exit code for a run with these status counts.

    0: everything ok / noop / planned. 1: some failed, not_found or conflict. 3: aborted.
    130: interrupted. An abort is reported over an interrupt (it needs fixing before a
    resume helps). `skipped` rows only come from an abort or an interrupt; if some are
    left without either, the run did not do everything, so that is 1, not 0.
    """
    if aborted:
        return EXIT_ABORTED
    if interrupted:
        return EXIT_INTERRUPTED
    if any(counts.get(status, 0) for status in (FAILED, NOT_FOUND, CONFLICT, SKIPPED)):
        return EXIT_FAILED
    return EXIT_OK


# A run's before-state, as its report's metadata and its summary say: it read every
# snapshot first (it can be undone), or it wrote blind (it cannot).
READ_META, BLIND_META = "read", "blind"
BLIND_TEXT = "written blind ({flag}): this run cannot be undone"


UUID = re.compile(UUID_PATTERN)


def _error_text(result: Result) -> str | None:
    """The error as grouped in the summary: ids masked, so one cause counts once."""
    if not result.error and not result.error_class:
        return None
    if result.error_class and result.error:
        text = f"{result.error_class}: {result.error}"
    else:
        text = result.error_class or result.error
    return UUID.sub("<id>", text)


class Summary:
    """Collects one run. The engine calls `start()`, `add()` per result, the counters, and
    `finish()`; the CLI prints `format_summary(summary.as_dict())`."""

    def __init__(
        self,
        report_path: str | os.PathLike[str] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.report_path = None if report_path is None else str(report_path)
        self.clock = clock
        self.counts: Counter[str] = Counter()  # this run's results
        # The whole report's statuses (a resumed report's earlier rows too), when known.
        self.report_counts: Mapping[str, int] | None = None
        self.retries: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.rate_changes = 0
        self.sent = 0  # snapshots for which at least one PATCH went out
        self.aborted: str | None = None
        self.interrupted = False
        self.already_done = 0  # ok/noop rows a resumed report had before this run
        self.state_snapshots: int | None = None  # snapshots whose state was read first
        self.state_requests = 0  # requests that read it (pages, GETs)
        self.before_state: str | None = None  # read, blind (cannot be undone), None: dry run
        self.undo_file: str | None = None  # where the undo file went (--undo-file)
        self.notes: list[str] = []  # for the user: blank cells ignored, an undo file kept
        self._started: float | None = None
        self._finished: float | None = None
        self.started_at: str | None = None
        self.finished_at: str | None = None

    def start(self) -> None:
        self._started = self.clock()
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")

    def finish(self) -> None:
        self._finished = self.clock()
        self.finished_at = datetime.now(UTC).isoformat(timespec="seconds")

    def add(self, result: Result) -> None:
        self.counts[result.status] += 1
        if result.attempts > 0 and result.status not in (PLANNED, NOOP):
            self.sent += 1  # a dry-run or no-op may have read the snapshot, but wrote nothing
        text = _error_text(result)
        if text is not None:
            self.errors[text] += 1

    def state_read(self, snapshots: int, requests: int) -> None:
        """The state of `snapshots` was read with `requests` requests before sending."""
        self.state_snapshots = snapshots
        self.state_requests = requests

    @property
    def writes_saved(self) -> int:
        """Writes a blind run would have sent that this one skipped (noop, known from the
        state read), in this run."""
        return self.counts.get(NOOP, 0)

    def count_retry(self, kind: str) -> None:
        """Count one retry; kinds are "lock", "rate_limit", "transient" (others are kept)."""
        self.retries[kind] += 1

    def rate_change(self) -> None:
        self.rate_changes += 1

    def abort(self, reason: str) -> None:
        self.aborted = reason

    def interrupt(self) -> None:
        self.interrupted = True

    @property
    def elapsed_s(self) -> float:
        if self._started is None:
            return 0.0
        end = self._finished if self._finished is not None else self.clock()
        return max(0.0, end - self._started)

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-able data. `counts`/`total` describe the whole report (after
        a resume: earlier runs' rows too); `this_run` has this run's own figures."""
        counts = _all_statuses(self.counts)
        whole = counts if self.report_counts is None else _all_statuses(self.report_counts)
        elapsed = self.elapsed_s
        retries = {kind: self.retries.get(kind, 0) for kind in RETRY_KINDS}
        retries.update(self.retries)
        return {
            "counts": whole,
            "total": sum(whole.values()),
            "this_run": {"counts": counts, "total": sum(counts.values()), "sent": self.sent},
            "sent": self.sent,
            "already_done": self.already_done,
            "elapsed_s": round(elapsed, 3),
            "rate_per_s": round(self.sent / elapsed, 2) if elapsed > 0 else None,
            "retries": retries,
            "rate_changes": self.rate_changes,
            "state_read": None
            if self.state_snapshots is None
            else {"snapshots": self.state_snapshots, "requests": self.state_requests},
            "writes_saved": self.writes_saved,
            "before_state": self.before_state,
            "undoable": None if self.before_state is None else self.before_state != BLIND_META,
            "undo_file": self.undo_file,
            "notes": list(self.notes),
            "top_errors": [
                {"error": text, "count": n} for text, n in self.errors.most_common(TOP_ERRORS)
            ],
            "exit_code": exit_code(counts, aborted=self.aborted, interrupted=self.interrupted),
            "report": self.report_path,
            "aborted": self.aborted,
            "interrupted": self.interrupted,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


def _all_statuses(counts: Mapping[str, int]) -> dict[str, int]:
    """Every known status (0 if absent), then any unexpected one, so it still shows."""
    out = {status: counts.get(status, 0) for status in STATUSES}
    for status, n in counts.items():
        out.setdefault(status, n)
    return out


def _shorten(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_summary(d: dict[str, Any], *, resumable: bool = True, forceable: bool = True) -> str:
    """A few lines for the terminal.

    Parameters
    ----------
    d : dict
        `Summary.as_dict()`.
    resumable : bool
        The command has ``--resume`` (apply); else (enforce) an unfinished run is finished
        by running the same command again.
    forceable : bool
        The command has ``--force`` (apply): a conflict's line says it writes them anyway;
        else (enforce) that a rule's ``overwrite = true`` lets a rename replace a value.

    Returns
    -------
    str
        The lines, without a trailing newline.
    """
    total = d.get("total", 0)
    noun = "snapshot" if total == 1 else "snapshots"
    head = f"{total} {noun} in {d.get('elapsed_s', 0.0):.1f} s"
    if d.get("rate_per_s") is not None:
        head += f", {d.get('sent', 0)} sent ({d['rate_per_s']:.1f}/s)"
    lines = [head]
    if d.get("already_done"):
        lines.append(f"  resumed: {d['already_done']} already done, not sent again")
    lines.extend(_counts_line("  ", d.get("counts", {})))
    run = d.get("this_run")
    if run and run.get("total") != total:
        lines.extend(_counts_line(f"  this run: {run['total']} snapshots: ", run["counts"]))
    lines.extend(_state_line(d))
    retries = {k: v for k, v in d.get("retries", {}).items() if v}
    if retries or d.get("rate_changes"):
        parts = [f"{kind.replace('_', ' ')} {n}" for kind, n in retries.items()]
        text = "  retries: " + (", ".join(parts) if parts else "none")
        if d.get("rate_changes"):
            text += f"; rate changed {d['rate_changes']} times"
        lines.append(text)
    if d.get("top_errors"):
        lines.append("  most common errors:")
        lines.extend(f"    {e['count']} x {_shorten(e['error'])}" for e in d["top_errors"])
    for scope in d.get("failed_scopes") or ():
        where = f"{scope['project_id']}/{scope['region_id']}"
        lines.append(f"  scope {where} could not be read, left out: {scope['error']}")
    if d.get("counts", {}).get(CONFLICT):
        how = (
            "--force writes them anyway"
            if forceable
            else "overwrite = true in a rule's rename lets it replace a value"
        )
        lines.append(
            "  conflicts left alone (a key changed since the change was written, or a rename"
            f" onto another value); {how}"
        )
    if d.get("before_state") == BLIND_META:
        lines.append("  " + BLIND_TEXT.format(flag="--no-check-current"))
    if d.get("undo_file"):
        lines.append(f"  undo file: {d['undo_file']}")
    lines.extend(f"  note: {note}" for note in d.get("notes") or ())
    if d.get("aborted"):
        lines.append(f"  aborted: {d['aborted']}")
    elif d.get("interrupted"):
        lines.append("  interrupted")
    if d.get("report"):
        lines.append(f"  report: {d['report']}")
        if d.get("aborted") or d.get("interrupted"):
            how = f"with --resume {d['report']}" if resumable else "again"
            lines.append(f"  to finish: run the same command {how}")
    lines.append(f"  exit code {d.get('exit_code', 0)}")
    return "\n".join(lines)


def _state_line(d: dict[str, Any]) -> list[str]:
    """``writes saved: 95 (noop, read with 3 requests)`` when the state was read."""
    read = d.get("state_read")
    if not read or not read.get("snapshots"):
        return []
    requests = read["requests"]
    noun = "request" if requests == 1 else "requests"
    return [f"  writes saved: {d.get('writes_saved', 0)} (noop, read with {requests} {noun})"]


def _counts_line(prefix: str, counts: Mapping[str, int]) -> list[str]:
    shown = [f"{status} {n}" for status, n in counts.items() if n]
    return [prefix + ", ".join(shown)] if shown else []


def write_summary_json(d: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the summary for schedulers (atomically, so a reader never sees half of it);
    ``-`` prints it on stdout, one line."""
    if is_stdout(path):
        sys.stdout.write(json.dumps(d, default=str) + "\n")
        sys.stdout.flush()
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(d, indent=2) + "\n")


def error_summary(error: str, code: int) -> dict[str, Any]:
    """The summary of a run that ended with `error` before (or instead of) its own: every
    count 0, ``exit_code`` `code`, ``error`` (and ``aborted`` for exit 3) the reason."""
    data = Summary().as_dict()
    data.update(exit_code=code, error=error, aborted=error if code == EXIT_ABORTED else None)
    data["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return data


def save_error_summary(path: str | os.PathLike[str], error: str, code: int) -> bool:
    """Replace the summary file with `error_summary` (for a run that ended with `error`).

    Parameters
    ----------
    path : str or PathLike
        The ``--summary-json`` file (written atomically).
    error : str
        The one-line reason, masked: the ``error`` field (and ``aborted`` for exit 3).
    code : int
        The process exit code: the ``exit_code`` field (the counts are all 0).

    Returns
    -------
    bool
        False when the file could not be written (the caller's error is reported anyway).

    Examples
    --------
    >>> save_error_summary("night.json", "refusing to start: ...", 3)  # doctest: +SKIP
    True
    """
    try:
        write_summary_json(error_summary(error, code), path)
    except OSError:
        return False
    return True
