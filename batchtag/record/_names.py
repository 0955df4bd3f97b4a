"""Per-run file names: ``{started}`` in ``--report``, ``--undo-file``, ``--summary-json`` and
``-o``.

A scheduled run names its files by when it started (``runs/enforce-{started}.csv`` ->
``runs/enforce-20260301T023000Z.csv``), so two runs never meet on one file: a run started
again after an interruption writes beside the first instead of being refused for a report
that already exists. Every name of one run gets the same stamp. Two runs started in the
same second get ``-2``, ``-3``, ... after the stamp (as the default report names do).

``-`` is stdout. A report and an undo file are written as the run goes and read back
(resume, undo), so they must be files; a summary may go to stdout.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from batchtag.errors import UsageError, option
from batchtag.record._store import meta_path, report_exists
from batchtag.tabular import is_stdout

STARTED = "{started}"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"  # UTC, sorts by time, no ':' (valid on every file system)
PLACEHOLDER = re.compile(r"\{[^{}]*\}")
# The names that take {started}, and how to tell that a file of that name is in use.
STAMPED = ("report", "undo_file", "summary_json", "output")
NOT_ON_STDOUT = {
    "report": "the report is written as the run goes and read back by --resume and undo",
    "undo_file": "the undo file is written as the run goes: it is the way back",
    "resume": "a resume continues a report file",
}


def started_stamp(when: datetime | None = None) -> str:
    """The ``{started}`` text of a run started at `when` (default: now), in UTC.

    Examples
    --------
    >>> started_stamp(datetime(2026, 3, 1, 2, 30, tzinfo=UTC))
    '20260301T023000Z'
    """
    when = datetime.now(UTC) if when is None else when.astimezone(UTC)
    return when.strftime(STAMP_FORMAT)


def check_placeholders(name: str, path: str | os.PathLike | None) -> None:
    """Refuse a ``{...}`` other than ``{started}`` in option `name` (a typo would otherwise
    become part of the file name), and ``-`` where a file is needed.

    Examples
    --------
    >>> check_placeholders("report", "runs/{start}.csv")
    Traceback (most recent call last):
    ...
    batchtag.errors.UsageError: report='runs/{start}.csv': unknown placeholder {start}; the only one is {started}
    """
    if path is None:
        return
    text = os.fspath(path)
    if is_stdout(text) and name in NOT_ON_STDOUT:
        raise UsageError(f"{option(name, text)}: stdout is not possible: {NOT_ON_STDOUT[name]}")
    for found in PLACEHOLDER.findall(text):
        if found == STARTED and name in STAMPED:
            continue
        if found == STARTED:
            raise UsageError(
                f"{option(name, text)}: {STARTED} names the new files of a run "
                f"({', '.join(option(n) for n in STAMPED)}), not this one"
            )
        raise UsageError(
            f"{option(name, text)}: unknown placeholder {found}; the only one is {STARTED}"
        )


def in_use(name: str, path: str) -> bool:
    """Whether a run writing `path` as option `name` would find an earlier run's file."""
    if name == "report":
        return report_exists(path) or meta_path(path).exists()
    return name == "undo_file" and Path(path).exists()


def fill_started(
    paths: Mapping[str, str | os.PathLike | None],
    when: datetime | None = None,
    *,
    exists: Callable[[str, str], bool] = in_use,
) -> dict[str, str | None]:
    """The names with ``{started}`` replaced by the run's stamp, the same in each.

    Parameters
    ----------
    paths : Mapping
        Option name (``report``, ``undo_file``, ``summary_json``) -> its path or None.
    when : datetime, optional
        The run's start (default: now).
    exists : callable
        ``exists(name, path)``: a file an earlier run left (then the stamp gets ``-2``...).

    Returns
    -------
    dict
        The same keys; paths without ``{started}`` unchanged (as str).

    Examples
    --------
    >>> fill_started({"report": "r-{started}.csv"}, datetime(2026, 1, 2, tzinfo=UTC))
    {'report': 'r-20260102T000000Z.csv'}
    """
    for name, path in paths.items():
        check_placeholders(name, path)
    texts = {name: None if path is None else os.fspath(path) for name, path in paths.items()}
    if not any(text and STARTED in text for text in texts.values()):
        return texts
    stamp, n = started_stamp(when), 1
    while True:
        suffix = stamp if n == 1 else f"{stamp}-{n}"
        filled = {
            name: None if text is None else text.replace(STARTED, suffix)
            for name, text in texts.items()
        }
        taken = [
            name
            for name, text in texts.items()
            if text and STARTED in text and exists(name, filled[name])
        ]
        if not taken:
            return filled
        n += 1
