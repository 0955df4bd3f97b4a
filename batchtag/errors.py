"""Exception types shared by the library and the CLI."""

from __future__ import annotations

import contextvars
import os
from dataclasses import dataclass, field
from typing import Any

# Who is calling: "python" (the library API, the default) or "cli" (set by the command line).
# Messages that name an option spell it the caller's way, via `option()`.
CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("batchtag_caller", default="python")


def option(name: str, value: Any = None) -> str:
    """Spell an option the way the current caller writes it.

    Parameters
    ----------
    name : str
        The option's Python name, e.g. ``"project_id"`` or ``"overwrite"``.
    value : Any, optional
        A value to show with it; ``True`` marks a flag.

    Returns
    -------
    str
        ``--project-id 1`` / ``--overwrite`` on the command line,
        ``project_id=1`` / ``overwrite=True`` in Python.

    Examples
    --------
    >>> option("resume", "run1.csv")
    "resume='run1.csv'"
    """
    if CALLER.get() == "cli":
        flag = "--" + name.replace("_", "-")
        if value is False:  # the off side of a --x/--no-x toggle
            return "--no-" + flag[2:]
        return flag if value is None or value is True else f"{flag} {value}"
    if value is None:
        return name
    return f"{name}={value!r}"


def first_line(error: BaseException) -> str:
    """An exception as one line: its type and the first line of its message.

    Examples
    --------
    >>> first_line(ValueError("bad value")), first_line(KeyError())
    ('ValueError: bad value', 'KeyError')
    """
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


class BatchtagError(Exception):
    """Base class; the CLI maps subclasses to exit codes."""

    exit_code = 1


class UsageError(BatchtagError):
    """Bad options or configuration: nothing was sent."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest. `row` is the 1-based data row, `line` the file line;
    for a DataFrame manifest `row` is the index label (`row_is_label`) and `position` the
    row's 0-based position, which messages show when the index repeats labels
    (`label_repeats`), so a label that names several rows still points at one."""

    message: str
    row: Any = None
    column: str | None = None
    line: int | None = None
    row_is_label: bool = False
    position: int | None = None
    label_repeats: bool = False

    def where(self) -> str:
        """Where the problem is, as messages say it: ``row label 3 (position 1), column
        'key'``, ``row 4, line 5``; "" when nowhere in particular."""
        where = []
        if self.row_is_label:
            shown = self.label_repeats and self.position is not None
            at = f" (position {self.position})" if shown else ""
            where.append(f"row label {self.row!r}{at}")
        elif self.row is not None:
            where.append(f"row {self.row}")
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column:
            where.append(f"column {self.column!r}")
        return ", ".join(where)

    def __str__(self) -> str:
        where = self.where()
        return f"{where}: {self.message}" if where else self.message


# The columns of a problems frame (`ManifestError.problems`, `Validation.problems`).
PROBLEM_COLUMNS = ("row_label", "position", "line", "column", "message")


def problems_frame(problems: list[Problem]) -> Any:
    """Problems as a DataFrame, one row each: ``row_label`` (a DataFrame manifest's index
    label, or a file's 1-based data row, as the message names it; object), ``position``
    (the row's 0-based position; Int64), ``line`` (the file line; Int64), ``column`` and
    ``message`` (the problem alone, without where it is; text). Missing values are NA.

    Examples
    --------
    >>> problems_frame([Problem("bad", row=2, column="key", line=3)]).iloc[0].tolist()
    [2, 1, 3, 'key', 'bad']
    """
    import pandas as pd  # lazy: `import batchtag` stays cheap

    def position(p: Problem) -> int | None:
        if p.position is not None or p.row is None:
            return p.position
        return None if p.row_is_label else p.row - 1

    columns = {
        "row_label": pd.Series([p.row for p in problems], dtype=object),
        "position": pd.Series([position(p) for p in problems], dtype="Int64"),
        "line": pd.Series([p.line for p in problems], dtype="Int64"),
        "column": pd.Series([p.column for p in problems], dtype="str"),  # the string dtype
        "message": pd.Series([p.message for p in problems], dtype="str"),
    }
    return pd.DataFrame(columns, columns=list(PROBLEM_COLUMNS))


class ManifestError(BatchtagError):
    """The manifest is invalid; carries every problem found.

    ``problems`` is a DataFrame (see `problems_frame`: ``row_label``, ``position``,
    ``line``, ``column``, ``message``), as `batchtag.validate` returns it; ``details`` the
    same problems as `Problem` objects.
    """

    exit_code = 2
    max_listed = 50

    def __init__(self, problems: list[Problem]):
        self.details = list(problems)
        self._frame = None
        super().__init__(self.render())

    @property
    def problems(self) -> Any:
        """Every problem as a DataFrame (made on first access)."""
        if self._frame is None:
            self._frame = problems_frame(self.details)
        return self._frame

    def render(self) -> str:
        shown = [f"  {p}" for p in self.details[: self.max_listed]]
        rest = len(self.details) - len(shown)
        if rest > 0:
            shown.append(f"  ... and {rest} more problems")
        noun = "problem" if len(self.details) == 1 else "problems"
        return f"manifest has {len(self.details)} {noun}:\n" + "\n".join(shown)


class AbortRun(BatchtagError):
    """The run stopped early on purpose (credentials, circuit breaker, max-changes guard)."""

    exit_code = 3


class Interrupted(BatchtagError):
    """A run stopped by Ctrl-C (a notebook's stop button): what it did so far, and the call
    that finishes it.

    Attributes
    ----------
    report : DataFrame or None
        The frame so far: an apply's or enforce's report (sent snapshots `ok`, the rest
        `skipped`), a plan's diff of the snapshots read, an export's rows read; None when
        nothing was produced yet.
    resume : callable or None
        Finishes the run: ``error.resume()`` continues an apply from its report
        (``resume=``), or runs a read (plan, export, undo, enforce) again. Its repr is the
        call, options the run was given besides (never the API key) left out.
    """

    exit_code = 130

    def __init__(self, message: str, report: Any = None, resume: Any = None):
        super().__init__(message)
        self.report = report
        self.resume = resume
        self.detail: str | None = None  # what the run did, without the resume advice
        self.report_path: Any = None  # an apply's report file, when there is one to resume


class ReportWriteError(AbortRun):
    """Writing the report (or its journal or metadata) failed mid-run, e.g. a full disk.

    The run stops dispatching at once (a write that cannot be recorded is never sent);
    every result recorded before the failure is in the report, which `resume` continues.
    """

    @classmethod
    def from_os_error(cls, path: object, error: OSError) -> ReportWriteError:
        """``report write failed: no space left on device (reports/r.csv)``."""
        reason = os.strerror(error.errno) if error.errno else str(error)
        return cls(f"report write failed: {reason[:1].lower()}{reason[1:]} ({path})")


@dataclass
class ApiError(Exception):
    """A Gcore API error response, or a transport failure (status 0)."""

    status: int
    exception_class: str = ""
    message: str = ""
    request_id: str | None = None
    retry_after: float | None = None  # seconds, from retry-after-ms or Retry-After
    should_retry: bool | None = None  # from x-should-retry
    invalid_fields: dict[str, Any] | None = field(default=None)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"HTTP {self.status}" if self.status else "transport error"
        text = f"{head} {self.exception_class}: {self.message}".rstrip(": ")
        if self.invalid_fields:
            text += f" {self.invalid_fields}"
        return text
